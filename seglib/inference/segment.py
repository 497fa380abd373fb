"""Segment a whole folder of radiographs with per-structure runs, one image at a time:

    OUT/labels/<id>.png     uint8 label map at the image's original size (values: OUT/labels.json)
    OUT/labels.json         structure -> label value
    OUT/overlays/<id>.png   the image with each structure coloured (seglib.reporting.plots.structure_color)
    OUT/areas.csv           id, structure, area_px, area_mm2, left_right_area_ratio, contested_px, warning
                            (seglib.inference.measurements)
    OUT/quality.csv         id, structure, predicted_dice, flag and their evidence (seglib.inference.quality)
    OUT/nifti/, OUT/dicom-seg/   with formats=("nifti", "dicom-seg"): see seglib.inference.viewer_export

labels/ and overlays/ are the "png" format, the default; formats may name several.
Only one image and its maps are in memory at a time, so the folder may be of any length;
images may differ in size and bit depth. A film that cannot be segmented at all (blank, tiny, a strip:
seglib.inference.film_checks) gets an empty label map, a warning line on stderr, and its reason in the
warning column of its rows in areas.csv.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from matplotlib.colors import to_rgb
from scipy.ndimage import binary_erosion

from seglib.data.io import spreadsheet_safe, write_png, write_text
from seglib.data.outputs import check_replaceable, output_folder
from seglib.inference.film_checks import degenerate_reason
from seglib.inference.fusion import fuse
from seglib.inference.measurements import AREA_COLUMNS, area_rows, spacing_pair
from seglib.inference.predictor import predictions, prepared_inference, run_list
from seglib.inference.quality import QualityTable
from seglib.inference.viewer_export import image_spacing, open_exports
from seglib.progress import progress
from seglib.reporting.plots import structure_color

OVERLAY_ALPHA = 0.4


def segment_folder(run_dirs, images_dir, out_dir, tta: bool = False, threshold: float = 0.5,
                   fuse_options: dict | None = None, spacing_mm: dict | None = None,
                   force: bool = False, formats=("png",)) -> Path:
    """Predict, fuse and write OUT (see module doc) in `formats` (seglib.config.SEGMENT_FORMATS).
    Pixel spacing, for area_mm2 and the NIfTI header: `spacing_mm` (id -> mm per pixel, or a
    (row, column) pair) where given, else a DICOM input's header. An existing OUT is replaced only
    with `force`, and only when it is an earlier segment output (seglib.data.outputs)."""
    run_dirs = run_list(run_dirs)
    check_replaceable(Path(out_dir), "segment", [images_dir, *run_dirs], force)  # before the models load
    predictor, images = prepared_inference(run_dirs, images_dir, tta)
    options = _fusion_options(threshold, fuse_options, predictor.structures)
    given_spacing = {image_id: spacing_pair(image_id, value) for image_id, value in (spacing_mm or {}).items()}
    exports = open_exports(formats, run_dirs, images, {"tta": tta, **options})
    # The whole folder appears only when complete, so the table can be streamed straight into it.
    with output_folder(out_dir, "segment", [images_dir, *run_dirs], force) as staging, \
            open(staging / "areas.csv", "w", newline="") as table:
        areas = csv.DictWriter(table, fieldnames=AREA_COLUMNS)
        areas.writeheader()
        quality = QualityTable(predictor, threshold)
        for image_id, image, (probabilities, passes) in progress(
                predictions(predictor, images, tta, passes=True), "segment", len(images)):
            quality.add(image_id, image, passes)
            fused = fuse(probabilities, **options)
            del probabilities  # fused: the film-sized maps go before the overlay is drawn (README, memory)
            path = images[image_id]
            spacing = given_spacing.get(image_id) or image_spacing(path)
            if "png" in formats:
                write_png(staging / "labels" / f"{image_id}.png", fused.label_map)
                write_png(staging / "overlays" / f"{image_id}.png", overlay_rgb(image, fused.masks))
            for export in exports:
                export.write(staging, image_id, path, fused, spacing)
            # said on stderr already, by the predictor, which gives no passes exactly for such a film
            warning = None if passes is not None else degenerate_reason(image)
            areas.writerows(area_rows(spreadsheet_safe(image_id), fused.masks, fused.contested, spacing, warning))
        for export in exports:
            export.finish(staging, fused.labels)
        quality.write(staging / "quality.csv")
        write_text(staging / "labels.json", json.dumps(fused.labels, indent=2))
    return Path(out_dir)


def _fusion_options(threshold, fuse_options, structures) -> dict:
    options = dict(fuse_options or {})
    if "threshold" in options:
        raise ValueError("give the threshold as segment_folder(threshold=...), not in fuse_options")
    options["threshold"] = threshold
    # A dry run on a 1-pixel map: a bad option fails now, not after the output folder is created.
    fuse({s: np.zeros((1, 1), np.float32) for s in structures}, **options)
    return options


def overlay_rgb(image: np.ndarray, masks: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 RGB: the contrast-stretched grey image, each mask tinted and outlined in its colour.
    Only the masks' pixels are computed in floating point: a large film costs 3 bytes a pixel here."""
    rgb = np.repeat(_display_grey(image)[..., None], 3, axis=-1)
    for structure, mask in masks.items():
        colour = np.array(to_rgb(structure_color(structure)), np.float32) * 255
        rgb[mask] = np.round(np.float32(1 - OVERLAY_ALPHA) * rgb[mask] + np.float32(OVERLAY_ALPHA) * colour)
        rgb[mask & ~binary_erosion(mask)] = np.round(colour)  # the outline keeps thin structures visible
    return rgb


def _display_grey(image: np.ndarray) -> np.ndarray:
    """uint8 grey: 16-bit radiographs often use a small part of their range, stretched to be visible."""
    low, high = float(image.min()), float(image.max())
    if high <= low:
        return np.zeros(image.shape, np.uint8)
    return np.round((image.astype(np.float32) - low) * np.float32(255 / (high - low))).astype(np.uint8)
