"""Per-image segmentation metrics for binary 2D masks, and a Dice metric for Keras training logs.

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

import keras
import numpy as np
from keras import ops
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


@keras.saving.register_keras_serializable(package="seglib")
class DiceScore(keras.metrics.Metric):
    """Global Dice over an epoch, for the Keras training log.

    ``y_pred >= threshold`` and ``y_true >= 0.5`` are foreground. Intersections and mask sums are
    accumulated over all batches (a pixel-level Dice of the whole epoch, not a mean of per-image
    Dice). Inputs are channels-last ``(batch, ..., channels)`` of rank 4 or more; a rank-3
    ``(batch, H, W)`` input is one channel. With several channels the result is the mean of the
    per-channel Dice. A channel that is empty in both prediction and truth scores 1, as in
    ``segmentation_metrics`` (so does a metric that has seen no data yet). ``sample_weight``
    (per sample, or broadcastable to ``y``) weights each pixel's contribution.
    """

    def __init__(self, name="dice", threshold=0.5, dtype=None):
        super().__init__(name=name, dtype=dtype)
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        self.threshold = threshold
        # Sized on the first update, when the number of channels is known (as keras' FBetaScore).
        self._built = False

    def _build(self, channels):
        def per_channel_sum(name):
            return self.add_variable(shape=(channels,), initializer="zeros", name=name)

        self.intersection = per_channel_sum("intersection")
        self.pred_sum = per_channel_sum("pred_sum")
        self.true_sum = per_channel_sum("true_sum")
        self._built = True

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = self._channels_last(ops.convert_to_tensor(y_true, dtype=self.dtype))
        y_pred = self._channels_last(ops.convert_to_tensor(y_pred, dtype=self.dtype))
        if not self._built:
            self._build(y_pred.shape[-1])
        pred = ops.cast(y_pred >= self.threshold, self.dtype)
        true = ops.cast(y_true >= 0.5, self.dtype)
        weight = self._broadcast_weight(sample_weight, pred)
        reduce_axes = tuple(range(len(pred.shape) - 1))
        self.intersection.assign_add(ops.sum(pred * true * weight, axis=reduce_axes))
        self.pred_sum.assign_add(ops.sum(pred * weight, axis=reduce_axes))
        self.true_sum.assign_add(ops.sum(true * weight, axis=reduce_axes))

    def result(self):
        if not self._built:
            return ops.convert_to_tensor(1.0, dtype=self.dtype)
        total = self.pred_sum + self.true_sum
        both_empty = ops.equal(total, 0.0)
        dice = 2.0 * self.intersection / ops.maximum(total, 1e-12)
        return ops.mean(ops.where(both_empty, 1.0, dice))

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}

    @staticmethod
    def _channels_last(y):
        return ops.expand_dims(y, -1) if len(y.shape) == 3 else y

    def _broadcast_weight(self, sample_weight, like):
        if sample_weight is None:
            return ops.ones_like(like)
        weight = ops.convert_to_tensor(sample_weight, dtype=self.dtype)
        while len(weight.shape) < len(like.shape):
            weight = ops.expand_dims(weight, -1)
        return ops.broadcast_to(weight, ops.shape(like))
