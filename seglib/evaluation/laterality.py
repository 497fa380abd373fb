"""Left/right confusion of predicted masks, per image: does a left_* prediction sit on the
patient's left, and how much of it is really the partner (right_*) structure?

- `wrong_side_fraction`: fraction of the predicted pixels on the wrong side of the midline. The
  patient's left appears on the image's right, so for a left_* structure the wrong side is the
  image's LEFT of the (tilted) axis, for a right_* structure the image's right. Sides follow
  seglib.symmetry.midline.side_channel: pixels exactly on the axis are on neither side, so never wrong.
- `in_partner_fraction`: fraction of the predicted pixels inside the partner's ground truth; 1.0
  means the model drew the other side's bone.

Both are nan for an empty prediction: there are no pixels to be on a side (Dice and the other
metrics already score a missing structure; aggregate with np.nanmean and count the nans).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from seglib.data.folders import DatasetDir, PredictionDir
from seglib.data.io import DataError, read_image, read_mask
from seglib.data.layout import Record, list_images, load_records, read_manifest
from seglib.symmetry.midline import Midline, estimate_midline, side_channel
from seglib.symmetry.partners import partner_of, patient_side

SIDES = ("left", "right")
MANIFEST_MIDLINE_COLUMNS = ("midline_x", "midline_tilt_deg")
COLUMNS = ("id", "structure", "wrong_side_fraction", "in_partner_fraction", "midline_source")


def laterality_confusion(pred: np.ndarray, partner_truth: np.ndarray, midline: Midline, side: str) -> dict[str, float]:
    """wrong_side_fraction and in_partner_fraction of one predicted mask of the PATIENT's `side`
    ("left" for left_* structures), given the partner's true mask and the image's midline."""
    if side not in SIDES:
        raise ValueError(f"side must be 'left' or 'right' (the patient's side), got {side!r}")
    pred, partner_truth = np.asarray(pred, bool), np.asarray(partner_truth, bool)
    if pred.ndim != 2 or pred.shape != partner_truth.shape:
        raise ValueError(f"pred and partner_truth must be 2D masks of one shape, "
                         f"got {pred.shape} and {partner_truth.shape}")
    predicted = int(pred.sum())
    if predicted == 0:
        return {"wrong_side_fraction": math.nan, "in_partner_fraction": math.nan}
    image_right = side_channel(pred.shape, midline)  # > 0 on the image's right = the patient's left
    wrong_side = image_right < 0 if side == "left" else image_right > 0
    return {
        "wrong_side_fraction": np.count_nonzero(pred & wrong_side) / predicted,
        "in_partner_fraction": np.count_nonzero(pred & partner_truth) / predicted,
    }


def laterality_table(pred_dir: str | Path, data_dir: str | Path, structures, ids=None) -> pd.DataFrame:
    """One row per predicted mask PRED/masks/<structure>/<id>.png of each left_X/right_X structure
    (of the images in `ids`, if given): id, structure, wrong_side_fraction, in_partner_fraction,
    midline_source.

    The midline comes from the manifest's midline_x and midline_tilt_deg where it gives both for
    the image (phantoms know their true axis: midline_source "manifest"); otherwise it is
    estimated from the image with seglib.symmetry.midline.estimate_midline ("estimated")."""
    pred_dir, data_dir = PredictionDir(pred_dir), DatasetDir(data_dir)
    sides = _patient_sides(structures)
    partners = {structure: partner_of(structure) for structure in sides}
    records = {r.id: r for r in load_records(data_dir, sorted(set(sides) | set(partners.values())))}
    manifest_midlines = _manifest_midlines(data_dir)
    rows = []
    for structure, side in sides.items():
        for image_id, path in list_images(pred_dir.masks_dir(structure)).items():
            if ids is not None and image_id not in ids:
                continue
            if image_id not in records:
                raise DataError(f"{path}: no image {image_id!r} in {data_dir}")
            record = records[image_id]
            midline, source = _midline(record, manifest_midlines)
            partner_truth = record.masks[partners[structure]].read()
            pred = read_mask(path)
            if pred.shape != partner_truth.shape:
                raise DataError(f"{path}: prediction is {pred.shape}, the image's masks are {partner_truth.shape}")
            rows.append({"id": image_id, "structure": structure,
                         **laterality_confusion(pred, partner_truth, midline, side), "midline_source": source})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _patient_sides(structures) -> dict[str, str]:
    """structure -> 'left' | 'right'; only left_X / right_X names have a side and a partner."""
    sides = {}
    for structure in dict.fromkeys(structures):
        side = patient_side(structure)
        if side is None:
            raise ValueError(f"{structure!r} has no patient side: laterality needs left_X / right_X structures")
        sides[structure] = side
    if not sides:
        raise ValueError("no structures given")
    return sides


def _manifest_midlines(data_dir: DatasetDir) -> dict[str, Midline]:
    """id -> true midline for the images whose manifest row gives both midline columns."""
    manifest = read_manifest(data_dir)
    if manifest is None:
        return {}
    present = [c for c in MANIFEST_MIDLINE_COLUMNS if c in manifest.columns]
    if len(present) == 1:
        raise DataError(f"{data_dir.manifest_path}: has {present[0]} but not "
                        f"{set(MANIFEST_MIDLINE_COLUMNS) - set(present)}; a midline needs both")
    if not present:
        return {}
    known = manifest.dropna(subset=list(MANIFEST_MIDLINE_COLUMNS))
    return {image_id: Midline(x=float(row.midline_x), tilt_deg=float(row.midline_tilt_deg))
            for image_id, row in known.iterrows()}


def _midline(record: Record, manifest_midlines: dict[str, Midline]) -> tuple[Midline, str]:
    if record.id in manifest_midlines:
        return manifest_midlines[record.id], "manifest"
    return _estimated_midline(record.image), "estimated"


@lru_cache(maxsize=4096)
def _estimated_midline(image_path: Path) -> Midline:
    # Once per image, however many structures and prediction folders are measured against it
    # (a report measures every method's folder and the ground truth on the same test images).
    return estimate_midline(read_image(image_path))
