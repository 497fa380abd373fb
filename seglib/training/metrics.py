"""Keras metrics for the training log."""

import keras
from keras import ops


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
