"""Small plotting helpers: mask overlays and sample grids with fixed, colour-blind-safe colours.

Figures are built with matplotlib.figure.Figure directly (no pyplot global state), so the helpers
are safe in scripts, notebooks and headless CI alike.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

# Okabe-Ito palette; a patient side keeps its colour across structures.
STRUCTURE_COLORS: dict[str, str] = {
    "left_hip": "#0072B2",
    "right_hip": "#D55E00",
    "sacrum": "#009E73",
    "cardiomediastinum": "#CC79A7",
    "left_femur": "#56B4E9",
    "right_femur": "#E69F00",
    "left_lung": "#0072B2",
    "right_lung": "#D55E00",
}
_OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")


def structure_color(name: str) -> str:
    """The structure's fixed colour; unknown names get a stable Okabe-Ito colour from their name."""
    if name in STRUCTURE_COLORS:
        return STRUCTURE_COLORS[name]
    if name.startswith("left_"):
        return "#0072B2"
    if name.startswith("right_"):
        return "#D55E00"
    # a hash, not Python's salted hash(), so the colour is the same in every session
    digest = hashlib.sha256(name.encode()).digest()
    return _OKABE_ITO[digest[0] % len(_OKABE_ITO)]


def overlay(ax, image: np.ndarray, masks: dict[str, np.ndarray], alpha: float = 0.35, contour: bool = True,
            title: str | None = None) -> None:
    """Draw a grey image with each mask filled semi-transparently and outlined; axis off."""
    ax.imshow(image, cmap="gray", interpolation="nearest")
    for name, mask in masks.items():
        mask = np.asarray(mask, bool)
        if not mask.any():
            continue
        colour = structure_color(name)
        rgba = np.zeros(mask.shape + (4,), float)
        rgba[mask] = (*to_rgb(colour), alpha)
        ax.imshow(rgba, interpolation="nearest")
        if contour:
            ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=0.8)
    if title is not None:
        ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def sample_grid(images: list[np.ndarray], masks: list[dict], out_path, titles: list[str] | None = None,
                ncols: int = 4, dpi: int = 150) -> Path:
    """Write a grid of overlays with a legend of the structures shown; returns the written path."""
    if len(images) != len(masks) or not images:
        raise ValueError(f"need as many mask dicts as images (and at least one): {len(images)} vs {len(masks)}")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"need one title per image: {len(titles)} titles for {len(images)} images")
    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    fig = Figure(figsize=(2.6 * ncols, 2.7 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i < len(images):
            overlay(ax, images[i], masks[i], title=None if titles is None else titles[i])
        else:
            ax.set_axis_off()
    names = list(dict.fromkeys(name for sample in masks for name in sample))
    handles = [Patch(facecolor=structure_color(n), edgecolor=structure_color(n), label=n) for n in names]
    fig.legend(handles=handles, loc="outside lower center", ncol=max(1, min(len(handles), 2 * ncols)), fontsize=8,
               frameon=False)
    return _save_atomically(fig, Path(out_path), dpi)


def _save_atomically(fig: Figure, out_path: Path, dpi: int) -> Path:
    """Write next to the target and rename, so a reader never sees a half-written figure."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out_path.parent, prefix=f".{out_path.stem}.", suffix=out_path.suffix,
                                     delete=False) as handle:
        temporary = Path(handle.name)
    try:
        fig.savefig(temporary, dpi=dpi, format=out_path.suffix.lstrip(".") or "png")
        temporary.chmod(0o644)  # NamedTemporaryFile is private; a figure is meant to be shared
        temporary.replace(out_path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return out_path
