"""Dice-based losses: soft Dice per image, Dice, and binary cross-entropy + Dice."""

from __future__ import annotations

import keras
from keras import ops


def soft_dice_per_image(y_true, y_pred, smooth: float = 1.0):
    """Soft Dice of each image and channel, shape (batch, channels).

    Per image rather than over the batch, so a small structure in one image counts as much as a
    large one in another; `smooth` keeps empty-vs-empty at 1 and the gradient finite."""
    y_true = ops.cast(y_true, y_pred.dtype)
    axes = (1, 2)
    intersection = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return (2.0 * intersection + smooth) / (total + smooth)


@keras.saving.register_keras_serializable(package="seglib")
class DiceLoss(keras.losses.Loss):
    """1 - soft Dice, averaged over images and structures."""

    def __init__(self, smooth: float = 1.0, name: str = "dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = smooth

    def call(self, y_true, y_pred):
        return 1.0 - ops.mean(soft_dice_per_image(y_true, y_pred, self.smooth), axis=-1)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="seglib")
class BCEDiceLoss(keras.losses.Loss):
    """Binary cross-entropy + Dice: cross-entropy gives smooth per-pixel gradients early in training,
    Dice counters the foreground/background imbalance of small bones."""

    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0, smooth: float = 1.0,
                 name: str = "bce_dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.bce_weight, self.dice_weight, self.smooth = bce_weight, dice_weight, smooth

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=(1, 2))
        dice = 1.0 - ops.mean(soft_dice_per_image(y_true, y_pred, self.smooth), axis=-1)
        return self.bce_weight * bce + self.dice_weight * dice

    def get_config(self):
        return {**super().get_config(), "bce_weight": self.bce_weight, "dice_weight": self.dice_weight,
                "smooth": self.smooth}
