"""Evaluate a prediction folder (dataset layout) against a dataset: one row per (image, structure)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from seglib.data.folders import PredictionDir
from seglib.data.io import DataError, read_mask, spreadsheet_safe, write_text
from seglib.data.layout import available_structures, list_images, load_records
from seglib.data.outputs import check_output_file, covered_ids, first_line
from seglib.evaluation.metrics import DISTANCE_METRICS, segmentation_metrics, uwmgi_score
from seglib.progress import progress

# The first columns of every table evaluate_folder returns: how `evaluate --force` recognises a
# metrics table it may replace (and `report --eval` one it can read).
METRICS_COLUMNS = ("id", "structure", "method", "dice")


def is_metrics_table(path: str | Path) -> bool:
    """Whether `path` is a metrics CSV that `evaluate` wrote (recognised by its header)."""
    return first_line(Path(path)).split(",")[:len(METRICS_COLUMNS)] == list(METRICS_COLUMNS)


def evaluate_folder(pred_dir: str | Path, data_dir: str | Path, structures: list[str] | None = None,
                    method: str = "model", uwmgi: bool = False, allow_missing: bool = False,
                    out: str | Path | None = None, force: bool = False) -> pd.DataFrame:
    """Metrics of every predicted mask PRED/masks/<structure>/<id>.png against the dataset's truth.
    `uwmgi` adds the UW-Madison GI tract competition score (seglib.evaluation.metrics.uwmgi_score, the
    Hausdorff distance normalised by the image diagonal, both in pixels).

    Distances are in pixels, and also in mm (`*_mm` columns) where the manifest gives the spacing:
    `pixel_spacing_row_mm` and `pixel_spacing_col_mm` for non-square pixels, else `pixel_spacing_mm`.

    Every image the folder should cover (the ids seglib recorded when it wrote the folder, else
    every image of the dataset) needs a prediction of each structure: a missing one is an error,
    unless `allow_missing`, which scores the others and lists the missing ones on stderr.

    `out`: a metrics CSV to write too, checked before the work: never an input or inside a dataset,
    and an existing file is replaced only with `force`, only when it is a metrics table."""
    if out is not None:
        check_output_file(out, [pred_dir, data_dir], force, kind="metrics table written by evaluate",
                          written_by_seglib=is_metrics_table)
    pred_dir = PredictionDir(pred_dir)
    structures = structures or [s for s in available_structures(pred_dir)]
    if not structures:
        raise DataError(f"{pred_dir}: no predicted masks (expected masks/<structure>/<id>.png)")
    truth = {r.id: r for r in load_records(data_dir, structures)}
    expected = covered_ids(pred_dir) or set(truth)
    rows = []
    for structure in structures:
        predictions = list_images(pred_dir.masks_dir(structure))
        _check_complete(pred_dir.masks_dir(structure), expected - set(predictions), len(expected), allow_missing)
        for image_id, path in progress(predictions.items(), f"evaluate {structure}", unit="mask"):
            if image_id not in truth:
                raise DataError(f"{path}: no image {image_id!r} in {data_dir}")
            rows.append(_row(read_mask(path), path, truth[image_id], structure, method, uwmgi))
    table = pd.DataFrame(rows)
    if out is not None:  # for people: text a spreadsheet would take for a formula is quoted
        write_text(out, table.map(spreadsheet_safe).to_csv(index=False), overwrite=force)
    return table


def _check_complete(folder: Path, missing: set[str], expected: int, allow_missing: bool) -> None:
    """Scoring 10 of 12 images as if they were all would flatter a method that failed on two."""
    if not missing:
        return
    listed = ", ".join(sorted(missing))
    if not allow_missing:
        shown = ", ".join(sorted(missing)[:10]) + (", ..." if len(missing) > 10 else "")
        raise DataError(f"{folder}: no prediction for {len(missing)} of {expected} images ({shown}); "
                        "pass --allow-missing to score the others")
    print(f"warning: {folder}: no prediction for {len(missing)} of {expected} images, not scored: {listed}",
          file=sys.stderr)


def _row(pred: np.ndarray, pred_path: Path, record, structure: str, method: str, uwmgi: bool = False) -> dict:
    truth = record.masks[structure].read()
    if pred.shape != truth.shape:
        raise DataError(f"{pred_path}: prediction is {pred.shape[1]}x{pred.shape[0]} but its ground truth "
                        f"{record.masks[structure].path} is {truth.shape[1]}x{truth.shape[0]}")
    row = {"id": record.id, "structure": structure, "method": method, **segmentation_metrics(pred, truth)}
    if record.pixel_spacing_mm is not None:
        in_mm = segmentation_metrics(pred, truth, spacing=record.pixel_spacing_mm)
        row.update({f"{name}_mm": in_mm[name] for name in DISTANCE_METRICS})
    if uwmgi:
        row["uwmgi_score"] = uwmgi_score(row["dice"], row["hd"], diagonal=float(np.hypot(*pred.shape)))
    return row
