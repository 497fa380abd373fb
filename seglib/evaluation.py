"""Evaluate a prediction folder (dataset layout) against a dataset: one row per (image, structure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from seglib.datasets import available_structures, list_images, load_records
from seglib.io import DataError, read_mask
from seglib.metrics import DISTANCE_METRICS, METRIC_NAMES, segmentation_metrics


def evaluate_folder(pred_dir: str | Path, data_dir: str | Path, structures: list[str] | None = None,
                    method: str = "model") -> pd.DataFrame:
    """Metrics of every predicted mask PRED/masks/<structure>/<id>.png against the dataset's truth.

    Distances are in pixels, and also in mm (`*_mm` columns) where the manifest gives the spacing."""
    pred_dir = Path(pred_dir)
    structures = structures or [s for s in available_structures(pred_dir)]
    if not structures:
        raise DataError(f"{pred_dir}: no predicted masks (expected masks/<structure>/<id>.png)")
    truth = {r.id: r for r in load_records(data_dir, structures)}
    rows = []
    for structure in structures:
        for image_id, path in list_images(pred_dir / "masks" / structure).items():
            if image_id not in truth:
                raise DataError(f"{path}: no image {image_id!r} in {data_dir}")
            rows.append(_row(read_mask(path), truth[image_id], structure, method))
    return pd.DataFrame(rows)


def _row(pred: np.ndarray, record, structure: str, method: str) -> dict:
    truth = record.masks[structure].read()
    if pred.shape != truth.shape:
        raise DataError(f"prediction for {record.id} ({structure}) is {pred.shape}, truth {truth.shape}")
    row = {"id": record.id, "structure": structure, "method": method, **segmentation_metrics(pred, truth)}
    if record.pixel_spacing_mm:
        in_mm = segmentation_metrics(pred, truth, spacing=(record.pixel_spacing_mm,) * 2)
        row.update({f"{name}_mm": in_mm[name] for name in DISTANCE_METRICS})
    return row


def summarise(table: pd.DataFrame, by=("method", "structure")) -> pd.DataFrame:
    """Mean, std and median per group; `n_nan_*` counts images where a distance was undefined
    (one mask empty), so failures are not averaged away silently."""
    metrics = [m for m in table.columns if m in METRIC_NAMES or m.endswith("_mm")]
    grouped = table.groupby(list(by))
    summary = grouped[metrics].agg(["mean", "std", "median"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    for metric in DISTANCE_METRICS:
        if metric in table.columns:
            summary[f"n_nan_{metric}"] = grouped[metric].apply(lambda v: int(np.isnan(v).sum()))
    summary["n_images"] = grouped.size()
    return summary.reset_index()
