"""Small plotting helpers: the one mask overlay (files and figures) with fixed, colour-blind-safe colours.

Figures are built with matplotlib.figure.Figure directly (no pyplot global state), so the helpers
are safe in scripts, notebooks and headless CI alike.
"""

from __future__ import annotations

import hashlib

import numpy as np
from matplotlib.colors import to_rgb
from scipy.ndimage import binary_erosion

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
# How strongly a mask's colour covers the film in every overlay (segment's files, the report's figures):
# enough to tell the structures apart at a glance, little enough to see the bone's edges through it.
OVERLAY_ALPHA = 0.4


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


def overlay_rgb(image: np.ndarray, masks: dict[str, np.ndarray], outline: bool = True) -> np.ndarray:
    """The one overlay of seglib, uint8 RGB at the image's size: the contrast-stretched grey image, each
    mask tinted in its colour (OVERLAY_ALPHA) and, with `outline`, its edge pixels in the pure colour.
    `segment` writes it as OUT/overlays/<id>.png; `overlay` draws it into a figure. Only the masks'
    pixels are computed in floating point: a large film costs 3 bytes a pixel here."""
    rgb = np.repeat(_display_grey(image)[..., None], 3, axis=-1)
    for structure, mask in masks.items():
        mask = np.asarray(mask, bool)
        colour = np.array(to_rgb(structure_color(structure)), np.float32) * 255
        rgb[mask] = np.round(np.float32(1 - OVERLAY_ALPHA) * rgb[mask] + np.float32(OVERLAY_ALPHA) * colour)
        if outline:
            rgb[mask & ~binary_erosion(mask)] = np.round(colour)  # the outline keeps thin structures visible
    return rgb


def _display_grey(image: np.ndarray) -> np.ndarray:
    """uint8 grey: 16-bit radiographs often use a small part of their range, stretched to be visible."""
    low, high = float(image.min()), float(image.max())
    if high <= low:
        return np.zeros(image.shape, np.uint8)
    return np.round((image.astype(np.float32) - low) * np.float32(255 / (high - low))).astype(np.uint8)


def overlay(ax, image: np.ndarray, masks: dict[str, np.ndarray], contour: bool = True,
            title: str | None = None) -> None:
    """Draw overlay_rgb(image, masks) into `ax`, axis off. With `contour`, each mask is outlined by a
    line rather than by pixels: a figure shows a film smaller than its pixels, and a one-pixel outline
    would break up when scaled down."""
    ax.imshow(overlay_rgb(image, masks, outline=False), interpolation="nearest")
    if contour:
        for name, mask in masks.items():
            mask = np.asarray(mask, bool)
            if mask.any():  # an empty mask has no edge: contour would warn
                ax.contour(mask.astype(float), levels=[0.5], colors=[structure_color(name)], linewidths=0.8)
    if title is not None:
        ax.set_title(title, fontsize=8)
    ax.set_axis_off()
