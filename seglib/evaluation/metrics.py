"""Per-image segmentation metrics for binary 2D masks (the Keras Dice metric for training logs is
seglib.training.metrics.DiceScore).

Definitions (``P`` = predicted mask, ``T`` = true mask, both 2D, non-zero = foreground):

- overlap: ``dice = 2|P&T| / (|P|+|T|)``, ``iou = |P&T| / |P|T|``,
  ``precision = |P&T| / |P|``, ``recall = |P&T| / |T|``.
- surface: the boundary pixels of a mask, ``mask XOR binary_erosion(mask, cross)`` with the
  4-connected (cross) structuring element and pixels outside the image counted as background,
  so a mask touching the image edge has a surface there. This is medpy's default
  (``connectivity=1``).
- directed surface distances ``d(A->B)``: for each surface pixel of A, the Euclidean distance to
  the nearest surface pixel of B, from ``scipy.ndimage.distance_transform_edt(sampling=spacing)``.
  Distances are in the unit of ``spacing`` = (row, col) size of a pixel: pixels for (1, 1),
  mm for mm per pixel.
- ``hd``: symmetric Hausdorff distance, ``max(max d(P->T), max d(T->P))``.
- ``hd95``: 95th percentile (numpy's linear interpolation) of the POOLED distances
  ``d(P->T) ∪ d(T->P)``. This matches ``medpy.metric.binary.hd95``. (MONAI's
  ``compute_hausdorff_distance(percentile=95)`` instead takes the max of the two directed 95th
  percentiles; the two agree closely but not exactly.)
- ``assd``: ``(mean d(P->T) + mean d(T->P)) / 2``, as ``medpy.metric.binary.assd``.
- ``surface_dice`` (Nikolov et al. 2021, normalised surface distance) at ``tolerance`` (unit of
  spacing): ``(#{d(P->T) <= tol} + #{d(T->P) <= tol}) / (#surface(P) + #surface(T))``, with
  every boundary pixel weighted equally.

Empty-mask conventions:

============================  =====  ===  =========  ======  ============  ===============
case                          dice   iou  precision  recall  surface_dice  hd, hd95, assd
============================  =====  ===  =========  ======  ============  ===============
both empty                    1      1    1          1       1             0
prediction empty, truth not   0      0    nan        0       0             nan
truth empty, prediction not   0      0    0          nan     0             nan
============================  =====  ===  =========  ======  ============  ===============

Two empty masks agree perfectly, so every score is perfect. Otherwise a ratio whose denominator is
empty is undefined (nan): precision of an empty prediction, recall of an empty truth. Distances
need a surface on both sides, so they are nan when exactly one mask is empty. Aggregate these
with ``np.nanmean`` and report how many were nan, or the failures silently disappear.
"""

import math

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

METRIC_NAMES = ("dice", "iou", "precision", "recall", "hd95", "hd", "assd", "surface_dice")
DISTANCE_METRICS = ("hd95", "hd", "assd")

# 4-connected structuring element: same surface definition as medpy's default.
_CROSS = generate_binary_structure(2, 1)


def segmentation_metrics(pred, truth, spacing=(1.0, 1.0), tolerance=1.0) -> dict[str, float]:
    """All metrics of ``METRIC_NAMES`` for one predicted and one true 2D mask.

    ``spacing`` is the (row, col) pixel size; distances and ``tolerance`` are in its unit.
    See the module docstring for definitions and the empty-mask conventions.
    """
    pred, truth = _as_mask_pair(pred, truth)
    spacing = _validated_spacing(spacing)
    tolerance = _validated_tolerance(tolerance)
    return {**_overlap_metrics(pred, truth), **_surface_metrics(pred, truth, spacing, tolerance)}


def uwmgi_score(dice: float, hd: float, diagonal: float) -> float:
    """Score of the Kaggle UW-Madison GI tract competition: ``0.4*dice + 0.6*(1 - hd/diagonal)``.

    ``diagonal`` is the largest distance possible in the image (its diagonal, in the unit of
    ``hd``), so the distance term lies in [0, 1]; ``hd / diagonal`` is clipped to 1. As in the
    competition, a missing Hausdorff distance (``hd`` is nan because exactly one mask is empty)
    counts as the worst case, ``hd / diagonal = 1``.
    """
    if not diagonal > 0:
        raise ValueError(f"diagonal must be a positive distance, got {diagonal!r}")
    normalized_hd = 1.0 if math.isnan(hd) else min(hd / diagonal, 1.0)
    return 0.4 * dice + 0.6 * (1.0 - normalized_hd)


def dice(pred, truth) -> float:
    """The Dice of two masks of one shape, 1 when both are empty: the overlap alone, without the surface
    distances (cheap enough to score every candidate threshold of a run's calibration)."""
    return _overlap_metrics(*_as_mask_pair(pred, truth))["dice"]


def _as_mask_pair(pred, truth):
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(
            f"pred and truth must have the same shape: pred {pred.shape}, truth {truth.shape}"
        )
    if pred.ndim != 2:
        raise ValueError(f"masks must be 2D, got shape {pred.shape}")
    return pred.astype(bool), truth.astype(bool)


def _validated_spacing(spacing):
    values = np.asarray(spacing, dtype=float)
    if values.shape != (2,) or not np.all(np.isfinite(values)) or not np.all(values > 0):
        raise ValueError(f"spacing must be 2 positive numbers (row, col), got {spacing!r}")
    return tuple(float(v) for v in values)


def _validated_tolerance(tolerance):
    if not (np.isscalar(tolerance) and np.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a non-negative number, got {tolerance!r}")
    return float(tolerance)


def _overlap_metrics(pred, truth):
    pred_area, truth_area = int(pred.sum()), int(truth.sum())
    if pred_area == 0 and truth_area == 0:
        return {"dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0}
    intersection = int(np.logical_and(pred, truth).sum())
    union = pred_area + truth_area - intersection
    return {
        "dice": 2.0 * intersection / (pred_area + truth_area),
        "iou": intersection / union,
        "precision": intersection / pred_area if pred_area else math.nan,
        "recall": intersection / truth_area if truth_area else math.nan,
    }


def _surface_metrics(pred, truth, spacing, tolerance):
    if not pred.any() and not truth.any():
        return {"hd95": 0.0, "hd": 0.0, "assd": 0.0, "surface_dice": 1.0}
    if not pred.any() or not truth.any():
        return {"hd95": math.nan, "hd": math.nan, "assd": math.nan, "surface_dice": 0.0}
    pred_surface, truth_surface = _surface(pred), _surface(truth)
    pred_to_truth = _directed_surface_distances(pred_surface, truth_surface, spacing)
    truth_to_pred = _directed_surface_distances(truth_surface, pred_surface, spacing)
    pooled = np.concatenate([pred_to_truth, truth_to_pred])
    return {
        "hd95": float(np.percentile(pooled, 95)),
        "hd": float(pooled.max()),
        "assd": float((pred_to_truth.mean() + truth_to_pred.mean()) / 2),
        "surface_dice": float(np.count_nonzero(pooled <= tolerance) / pooled.size),
    }


def _surface(mask):
    # border_value=0: the image edge counts as background, so edge pixels are surface.
    return mask & ~binary_erosion(mask, structure=_CROSS, border_value=0)


def _directed_surface_distances(from_surface, to_surface, spacing):
    # The EDT measures distance to the nearest zero, so the target surface must be the zeros.
    return distance_transform_edt(~to_surface, sampling=spacing)[from_surface]
