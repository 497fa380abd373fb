"""Small plotting helpers: mask overlays and sample grids with fixed, colour-blind-safe colours.

Figures are built with matplotlib.figure.Figure directly (no pyplot global state), so the helpers
are safe in scripts, notebooks and headless CI alike.
"""

from __future__ import annotations

import hashlib

import numpy as np
from matplotlib.colors import to_rgb

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
