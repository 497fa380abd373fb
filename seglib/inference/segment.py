"""Segment a whole folder of radiographs with per-structure runs, one image at a time:

    OUT/labels/<id>.png     uint8 label map at the image's original size (values: OUT/labels.json)
    OUT/labels.json         structure -> label value
    OUT/overlays/<id>.png   the image with each structure coloured (seglib.reporting.plots.structure_color)
    OUT/areas.csv           id, structure, area_px[, area_mm2]

Only one image and its maps are in memory at a time, so the folder may be of any length;
images may differ in size and bit depth.
"""

from __future__ import annotations

import csv
import json
import math
import numbers
from pathlib import Path

import numpy as np
from matplotlib.colors import to_rgb
from scipy.ndimage import binary_erosion

from seglib.data.io import output_directory, read_image, write_png, write_text
from seglib.data.layout import list_images
from seglib.inference.fusion import fuse
from seglib.inference.predictor import Predictor
from seglib.reporting.plots import structure_color

OVERLAY_ALPHA = 0.4


def segment_folder(run_dirs, images_dir, out_dir, tta: bool = False, threshold: float = 0.5,
                   fuse_options: dict | None = None, spacing_mm: dict[str, float] | None = None,
                   force: bool = False) -> Path:
    """Predict, fuse and write OUT (see module doc); `spacing_mm` (id -> mm per pixel) adds area_mm2.
    An existing non-empty OUT is refused unless `force`."""
    predictor = Predictor(run_dirs)
    if tta:
        predictor.tta_partners()  # fail before any work
    options = _fusion_options(threshold, fuse_options, predictor.structures)
    _check_spacing(spacing_mm)
    images = list_images(images_dir)  # paths only; each image is read when its turn comes
    columns = ["id", "structure", "area_px"] + (["area_mm2"] if spacing_mm is not None else [])
    # The whole folder appears only when complete, so the table can be streamed straight into it.
    with output_directory(out_dir, force=force) as staging, open(staging / "areas.csv", "w", newline="") as table:
        areas = csv.DictWriter(table, fieldnames=columns)
        areas.writeheader()
        for image_id, path in images.items():
            labels = _segment_image(predictor, image_id, read_image(path), staging, tta, options,
                                    areas, spacing_mm)
        write_text(staging / "labels.json", json.dumps(labels, indent=2))
    return Path(out_dir)


def _segment_image(predictor, image_id, image, out_dir, tta, options, areas, spacing_mm) -> dict[str, int]:
    fused = fuse(predictor.probabilities(image, tta=tta), **options)
    write_png(out_dir / "labels" / f"{image_id}.png", fused.label_map)
    write_png(out_dir / "overlays" / f"{image_id}.png", overlay_rgb(image, fused.masks))
    for structure, mask in fused.masks.items():
        areas.writerow(_area_row(image_id, structure, int(mask.sum()), spacing_mm))
    return fused.labels


def _fusion_options(threshold, fuse_options, structures) -> dict:
    options = dict(fuse_options or {})
    if "threshold" in options:
        raise ValueError("give the threshold as segment_folder(threshold=...), not in fuse_options")
    options["threshold"] = threshold
    # A dry run on a 1-pixel map: a bad option fails now, not after the output folder is created.
    fuse({s: np.zeros((1, 1), np.float32) for s in structures}, **options)
    return options


def _check_spacing(spacing_mm) -> None:
    for image_id, spacing in (spacing_mm or {}).items():
        valid = isinstance(spacing, numbers.Real) and not isinstance(spacing, bool)
        if not (valid and math.isfinite(spacing) and spacing > 0):
            raise ValueError(f"pixel spacing of {image_id!r} must be a positive number of mm, got {spacing!r}")


def _area_row(image_id, structure, area_px, spacing_mm) -> dict:
    row = {"id": image_id, "structure": structure, "area_px": area_px}
    if spacing_mm is not None:
        spacing = spacing_mm.get(image_id)
        # An image without a known spacing gets an empty cell, never a guessed value.
        row["area_mm2"] = "" if spacing is None else area_px * float(spacing) ** 2
    return row


def overlay_rgb(image: np.ndarray, masks: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 RGB: the contrast-stretched grey image, each mask tinted and outlined in its colour."""
    rgb = np.repeat(_display_grey(image)[..., None], 3, axis=-1)
    for structure, mask in masks.items():
        colour = np.array(to_rgb(structure_color(structure)))
        rgb[mask] = (1 - OVERLAY_ALPHA) * rgb[mask] + OVERLAY_ALPHA * colour
        rgb[mask & ~binary_erosion(mask)] = colour  # the outline keeps thin structures visible
    return np.round(rgb * 255).astype(np.uint8)


def _display_grey(image: np.ndarray) -> np.ndarray:
    # 16-bit radiographs often use a small part of their range: stretch to [0, 1] to be visible.
    image = image.astype(np.float64)
    low, high = image.min(), image.max()
    return (image - low) / (high - low) if high > low else np.zeros_like(image)

