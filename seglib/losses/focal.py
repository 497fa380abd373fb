"""Focal, Tversky, focal Tversky and unified focal losses for sigmoid outputs (channels-last, one
channel per structure); the Dice losses are in seglib.losses.dice.

Each loss is a registered serializable Keras Loss, so a model compiled with it saves and loads
with safe_mode on; `get_loss(spec)` selects one by the name used in configs and on the CLI, or
builds a weighted sum from a spec such as ``"0.5*bce_dice+0.5*focal_tversky"``.

Every loss returns one value per image (Keras then averages over the batch). Overlap losses
(Dice, Tversky and their focal forms) are computed per image and channel, then averaged over
channels, so each structure counts equally whatever its size. Pixel losses (cross-entropy, focal)
are averaged over pixels and channels. Each sigmoid channel is a binary foreground-vs-background
problem of its own: structures may overlap, so channels are never normalised against each other.

References
- Focal: Lin et al. 2017, "Focal Loss for Dense Object Detection", ICCV.
- Tversky: Salehi et al. 2017, "Tversky loss function for image segmentation using 3D fully
  convolutional deep networks", MLMI.
- Focal Tversky: Abraham & Khan 2019, "A novel focal Tversky loss function with improved
  attention U-Net for lesion segmentation", ISBI.
- Unified focal: Yeung et al. 2022, "Unified Focal loss: Generalising Dice and cross
  entropy-based losses to handle class imbalanced medical image segmentation", Comput Med Imaging
  Graph 95:102026; reference implementation github.com/mlyg/unified-focal-loss, loss_functions.py.
"""

from __future__ import annotations

import keras
from keras import ops

# --- Helpers shared by the losses below -----------------------------------------------------------


def _clipped(y_pred):
    """Probabilities kept inside (0, 1), so logarithms and focal powers stay finite."""
    epsilon = keras.config.epsilon()
    return ops.clip(y_pred, epsilon, 1.0 - epsilon)


def mean_per_image(values):
    """Mean over every axis but the batch axis: one value per image."""
    return ops.mean(values, axis=tuple(range(1, len(values.shape))))


def _soft_counts(y_true, y_pred):
    """Soft true positives, false positives, false negatives and true negatives per image and
    channel, each of shape (batch, channels)."""
    axes = (1, 2)
    return (ops.sum(y_true * y_pred, axis=axes), ops.sum((1.0 - y_true) * y_pred, axis=axes),
            ops.sum(y_true * (1.0 - y_pred), axis=axes), ops.sum((1.0 - y_true) * (1.0 - y_pred), axis=axes))


def tversky_index(tp, fp, fn, fp_weight: float, fn_weight: float, smooth: float):
    """TI = (TP + smooth) / (TP + fp_weight * FP + fn_weight * FN + smooth)."""
    return (tp + smooth) / (tp + fp_weight * fp + fn_weight * fn + smooth)


def _focal_power(one_minus_index, exponent: float):
    """(1 - index) ** exponent, floored at epsilon first: an exponent below 1 has an infinite
    derivative at 0, which a perfect prediction would turn into NaN gradients."""
    return ops.power(ops.maximum(one_minus_index, keras.config.epsilon()), exponent)


# --- Focal, Tversky, focal Tversky ----------------------------------------------------------------


@keras.saving.register_keras_serializable(package="seglib")
class FocalLoss(keras.losses.Loss):
    """Binary focal loss (Lin et al. 2017), per pixel and channel, averaged per image:

        FL = -alpha_t * (1 - p_t) ** gamma * log(p_t)
        p_t = p, alpha_t = alpha          where the truth is foreground
        p_t = 1 - p, alpha_t = 1 - alpha  where it is background

    gamma = 0 and alpha = 0.5 give half the binary cross-entropy. The defaults alpha = 0.25,
    gamma = 2 are the paper's best pair (their Table 1): with gamma = 2 the many easy background
    pixels are already suppressed, so the paper found a LOW foreground weight alpha best; raise
    alpha above 0.5 to favour recall of the foreground instead."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, name: str = "focal_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha, self.gamma = alpha, gamma

    def call(self, y_true, y_pred):
        y_true, y_pred = ops.cast(y_true, y_pred.dtype), _clipped(y_pred)
        p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
        alpha_t = y_true * self.alpha + (1.0 - y_true) * (1.0 - self.alpha)
        return mean_per_image(-alpha_t * ops.power(1.0 - p_t, self.gamma) * ops.log(p_t))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="seglib")
class TverskyLoss(keras.losses.Loss):
    """1 - Tversky index (Salehi et al. 2017), per image and channel, averaged over channels:

        TI = (TP + smooth) / (TP + alpha * FP + beta * FN + smooth)

    alpha weights FALSE POSITIVES, beta weights FALSE NEGATIVES (soft counts from the
    probabilities). The defaults alpha = 0.3, beta = 0.7 penalise missed bone more than spill-over,
    trading precision for recall on small structures. alpha = beta = 0.5 is a Dice loss (with the
    smoothing term halved). smooth = 1, as in DiceLoss, makes an empty channel predicted empty
    score TI = 1, i.e. no loss."""

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0, name: str = "tversky_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha, self.beta, self.smooth = alpha, beta, smooth

    def tversky_index(self, y_true, y_pred):
        tp, fp, fn, _ = _soft_counts(ops.cast(y_true, y_pred.dtype), y_pred)
        return tversky_index(tp, fp, fn, self.alpha, self.beta, self.smooth)

    def call(self, y_true, y_pred):
        return ops.mean(1.0 - self.tversky_index(y_true, y_pred), axis=-1)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta, "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="seglib")
class FocalTverskyLoss(TverskyLoss):
    """Focal Tversky loss (Abraham & Khan 2019): (1 - TI) ** gamma per image and channel, averaged
    over channels; TI, alpha (FP weight) and beta (FN weight) as in TverskyLoss.

    Exponent convention: this class's gamma IS the exponent. The paper writes (1 - TI) ** (1/gamma)
    and recommends gamma = 4/3, so the default here is 1 / (4/3) = 0.75. An exponent below 1
    raises the loss (and gradient) of images whose overlap is already good, focusing on them;
    gamma = 1 is the plain Tversky loss."""

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, gamma: float = 0.75, smooth: float = 1.0,
                 name: str = "focal_tversky_loss", **kwargs):
        super().__init__(alpha=alpha, beta=beta, smooth=smooth, name=name, **kwargs)
        self.gamma = gamma

    def call(self, y_true, y_pred):
        return ops.mean(_focal_power(1.0 - self.tversky_index(y_true, y_pred), self.gamma), axis=-1)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}


# --- Unified focal loss (Yeung et al. 2022) -------------------------------------------------------
#
# The paper and its reference code treat binary segmentation as a 2-class softmax problem,
# classes [background, foreground], with delta weighting the classes and gamma the focal
# modulation. For a sigmoid channel with probability p and truth y we use exactly that 2-class
# problem: background probability 1 - p with truth 1 - y, foreground probability p with truth y.
# Each channel (structure) is its own 2-class problem; the per-channel values are averaged.


def modified_focal_loss(y_true, y_pred, delta: float, gamma: float, symmetric: bool):
    """Modified focal term of the unified focal loss, one value per image (mean over pixels and
    channels of the sum over the two classes, as the reference code's ``K.mean(K.sum(..., -1))``):

        background: -(1 - delta) * p ** gamma * (1 - y) * log(1 - p)    [(1 - p_bg) ** gamma]
        foreground: -delta * (1 - p) ** gamma * y * log(p)    symmetric
                    -delta * y * log(p)                       asymmetric (no foreground suppression)
    """
    y_true, y_pred = ops.cast(y_true, y_pred.dtype), _clipped(y_pred)
    background = -(1.0 - delta) * ops.power(y_pred, gamma) * (1.0 - y_true) * ops.log(1.0 - y_pred)
    foreground = -delta * y_true * ops.log(y_pred)
    if symmetric:
        foreground *= ops.power(1.0 - y_pred, gamma)
    return mean_per_image(background + foreground)


def modified_focal_tversky_loss(y_true, y_pred, delta: float, gamma: float, symmetric: bool, smooth: float):
    """Modified focal Tversky term of the unified focal loss, one value per image (mean over the
    two classes, then over channels, as the reference code's ``K.mean(stack([back, fore]))``).

    mTI_c = (TP_c + smooth) / (TP_c + delta * FN_c + (1 - delta) * FP_c + smooth) for each class c;
    the background class's TP, FN, FP are the channel's TN, FP, FN.
        foreground: (1 - mTI_fg) ** (1 - gamma)
        background: (1 - mTI_bg) ** (1 - gamma)   symmetric
                    (1 - mTI_bg)                  asymmetric (no background enhancement)
    The reference code writes (1 - mTI) * (1 - mTI) ** -gamma, the same power."""
    y_true, y_pred = ops.cast(y_true, y_pred.dtype), _clipped(y_pred)
    tp, fp, fn, tn = _soft_counts(y_true, y_pred)
    foreground_index = tversky_index(tp, fp, fn, fp_weight=1.0 - delta, fn_weight=delta, smooth=smooth)
    background_index = tversky_index(tn, fn, fp, fp_weight=1.0 - delta, fn_weight=delta, smooth=smooth)
    foreground = _focal_power(1.0 - foreground_index, 1.0 - gamma)
    background = _focal_power(1.0 - background_index, 1.0 - gamma) if symmetric else 1.0 - background_index
    return ops.mean((foreground + background) / 2.0, axis=-1)


class _UnifiedFocalLoss(keras.losses.Loss):
    """weight * modified focal Tversky + (1 - weight) * modified focal (the paper's lambda = weight).

    Defaults are the published ones: weight = 0.5, delta = 0.6, gamma = 0.5. smooth defaults to the
    reference code's 1e-7 (Keras epsilon). With so small a smoothing term a channel that is empty in
    the truth scores mTI_fg ~ 0 even when predicted empty (its focal Tversky term is then ~1 and
    constant: no gradient, since the clipped probabilities do not move it); pass smooth=1.0 for
    datasets where structures may be absent."""

    symmetric: bool

    def __init__(self, weight: float = 0.5, delta: float = 0.6, gamma: float = 0.5, smooth: float = 1e-7,
                 name: str | None = None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.weight, self.delta, self.gamma, self.smooth = weight, delta, gamma, smooth

    def call(self, y_true, y_pred):
        focal_tversky = modified_focal_tversky_loss(y_true, y_pred, self.delta, self.gamma, self.symmetric,
                                                    self.smooth)
        focal = modified_focal_loss(y_true, y_pred, self.delta, self.gamma, self.symmetric)
        return self.weight * focal_tversky + (1.0 - self.weight) * focal

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "delta": self.delta, "gamma": self.gamma,
                "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="seglib")
class SymmetricUnifiedFocalLoss(_UnifiedFocalLoss):
    """Symmetric unified focal loss (Yeung et al. 2022): both classes get focal suppression in the
    cross-entropy term and focal enhancement in the Tversky term. See _UnifiedFocalLoss."""

    symmetric = True

    def __init__(self, weight: float = 0.5, delta: float = 0.6, gamma: float = 0.5, smooth: float = 1e-7,
                 name: str = "unified_focal_sym_loss", **kwargs):
        super().__init__(weight=weight, delta=delta, gamma=gamma, smooth=smooth, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="seglib")
class AsymmetricUnifiedFocalLoss(_UnifiedFocalLoss):
    """Asymmetric unified focal loss (Yeung et al. 2022), the paper's recommended form for
    imbalanced data: only the background is focal-suppressed (cross-entropy term) and only the
    foreground focal-enhanced (Tversky term), so the rare class is never down-weighted."""

    symmetric = False

    def __init__(self, weight: float = 0.5, delta: float = 0.6, gamma: float = 0.5, smooth: float = 1e-7,
                 name: str = "unified_focal_asym_loss", **kwargs):
        super().__init__(weight=weight, delta=delta, gamma=gamma, smooth=smooth, name=name, **kwargs)


# --- Composition and selection by name --------------------------------------------------------------
