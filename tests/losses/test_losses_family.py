"""Focal, Tversky, focal Tversky, unified focal and weighted-sum losses: values checked against
arithmetic written out by hand, serialization, and selection by name or spec."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seglib.losses.dice import BCEDiceLoss, DiceLoss
from seglib.losses.focal import (
    AsymmetricUnifiedFocalLoss,
    FocalLoss,
    FocalTverskyLoss,
    SymmetricUnifiedFocalLoss,
    TverskyLoss,
)
from seglib.losses.spec import LOSSES, WeightedSum, get_loss

# One 2x2 image, one channel, pixels in row-major order:
#   truth        1    1    0    0
#   prediction   0.9  0.6  0.2  0.5
Y_TRUE = np.array([1, 1, 0, 0], np.float32).reshape(1, 2, 2, 1)
Y_PRED = np.array([0.9, 0.6, 0.2, 0.5], np.float32).reshape(1, 2, 2, 1)
# soft counts: TP = 0.9 + 0.6 = 1.5, FP = 0.2 + 0.5 = 0.7, FN = 0.1 + 0.4 = 0.5, TN = 0.8 + 0.5 = 1.3
ln = np.log


def value(loss, y_true=Y_TRUE, y_pred=Y_PRED) -> float:
    return float(loss(y_true, y_pred))


def test_focal_loss_by_hand():
    # -alpha_t (1 - p_t)^2 ln p_t, alpha_t = 0.25 on foreground, 0.75 on background
    expected = np.mean([
        -0.25 * 0.1**2 * ln(0.9),
        -0.25 * 0.4**2 * ln(0.6),
        -0.75 * 0.2**2 * ln(0.8),
        -0.75 * 0.5**2 * ln(0.5),
    ])
    assert value(FocalLoss()) == pytest.approx(expected, rel=1e-5)


def test_focal_loss_without_focusing_is_half_the_cross_entropy():
    bce = -np.mean([ln(0.9), ln(0.6), ln(0.8), ln(0.5)])
    assert value(FocalLoss(alpha=0.5, gamma=0.0)) == pytest.approx(bce / 2, rel=1e-5)


def test_tversky_loss_by_hand():
    # 1 - (TP + 1) / (TP + 0.3 FP + 0.7 FN + 1)
    expected = 1 - (1.5 + 1) / (1.5 + 0.3 * 0.7 + 0.7 * 0.5 + 1)
    assert value(TverskyLoss()) == pytest.approx(expected, rel=1e-5)


def test_tversky_alpha_weights_false_positives_and_beta_false_negatives():
    precision, recall = 1.5 / (1.5 + 0.7), 1.5 / (1.5 + 0.5)
    assert value(TverskyLoss(alpha=1.0, beta=0.0, smooth=0.0)) == pytest.approx(1 - precision, rel=1e-5)
    assert value(TverskyLoss(alpha=0.0, beta=1.0, smooth=0.0)) == pytest.approx(1 - recall, rel=1e-5)


def test_focal_tversky_loss_by_hand():
    tversky = (1.5 + 1) / (1.5 + 0.3 * 0.7 + 0.7 * 0.5 + 1)
    assert value(FocalTverskyLoss()) == pytest.approx((1 - tversky) ** 0.75, rel=1e-5)


# Unified focal loss, defaults weight (lambda) 0.5, delta 0.6, gamma 0.5, on the same image.
# Background class of the 2-class view: probability 1 - p, truth 1 - y.
_MTI_FOREGROUND = 1.5 / (1.5 + 0.6 * 0.5 + 0.4 * 0.7)  # TP / (TP + delta FN + (1 - delta) FP)
_MTI_BACKGROUND = 1.3 / (1.3 + 0.6 * 0.7 + 0.4 * 0.5)  # TN / (TN + delta FP + (1 - delta) FN)
_BACKGROUND_FOCAL = [0.4 * 0.2**0.5 * -ln(0.8), 0.4 * 0.5**0.5 * -ln(0.5)]  # (1-delta) p^gamma (-ln(1-p))


def test_asymmetric_unified_focal_loss_by_hand():
    focal = np.sum([0.6 * -ln(0.9), 0.6 * -ln(0.6)] + _BACKGROUND_FOCAL) / 4  # foreground not suppressed
    focal_tversky = ((1 - _MTI_FOREGROUND) ** 0.5 + (1 - _MTI_BACKGROUND)) / 2  # background not enhanced
    assert value(AsymmetricUnifiedFocalLoss()) == pytest.approx(0.5 * focal_tversky + 0.5 * focal, rel=1e-5)


def test_symmetric_unified_focal_loss_by_hand():
    foreground_focal = [0.6 * 0.1**0.5 * -ln(0.9), 0.6 * 0.4**0.5 * -ln(0.6)]  # delta (1-p)^gamma (-ln p)
    focal = np.sum(foreground_focal + _BACKGROUND_FOCAL) / 4
    focal_tversky = ((1 - _MTI_FOREGROUND) ** 0.5 + (1 - _MTI_BACKGROUND) ** 0.5) / 2
    assert value(SymmetricUnifiedFocalLoss()) == pytest.approx(0.5 * focal_tversky + 0.5 * focal, rel=1e-5)


def _reference_unified_focal(y, p, symmetric, weight=0.5, delta=0.6, gamma=0.5):
    """NumPy transcription of the authors' Keras code (mlyg/unified-focal-loss, loss_functions.py)
    on the 2-class softmax layout [background, foreground] of ONE sigmoid channel."""
    eps = 1e-7
    y2 = np.stack([1 - y, y], -1)
    p2 = np.clip(np.stack([1 - p, p], -1), eps, 1 - eps)
    ce = -y2 * np.log(p2)
    back_ce = (1 - delta) * (1 - p2[..., 0]) ** gamma * ce[..., 0]
    fore_ce = delta * ce[..., 1] * ((1 - p2[..., 1]) ** gamma if symmetric else 1)
    focal = np.mean(back_ce + fore_ce)
    tp, fn, fp = ((y2 * p2).sum((1, 2)), (y2 * (1 - p2)).sum((1, 2)), ((1 - y2) * p2).sum((1, 2)))
    dice = (tp + eps) / (tp + delta * fn + (1 - delta) * fp + eps)
    back = (1 - dice[:, 0]) * (1 - dice[:, 0]) ** (-gamma) if symmetric else 1 - dice[:, 0]
    fore = (1 - dice[:, 1]) * (1 - dice[:, 1]) ** (-gamma)
    return weight * np.mean(np.stack([back, fore], -1)) + (1 - weight) * focal


@pytest.mark.parametrize("loss_class, symmetric", [(SymmetricUnifiedFocalLoss, True),
                                                   (AsymmetricUnifiedFocalLoss, False)])
def test_unified_focal_matches_the_reference_two_class_formulation(loss_class, symmetric):
    rng = np.random.default_rng(1)
    y = (rng.random((2, 8, 8)) > 0.6).astype(np.float64)
    p = rng.uniform(0.02, 0.98, (2, 8, 8))
    expected = _reference_unified_focal(y, p, symmetric)
    got = float(loss_class()(y[..., None].astype(np.float32), p[..., None].astype(np.float32)))
    assert got == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_perfect_prediction_gives_about_zero_with_finite_gradients(name):
    y = np.zeros((2, 8, 8, 2), np.float32)
    y[:, 2:6, 1:4, 0] = 1
    y[:, 1:7, 4:7, 1] = 1
    y_pred = tf.Variable(y)
    with tf.GradientTape() as tape:
        loss = get_loss(name)(y, y_pred)
    gradient = tape.gradient(loss, y_pred)
    assert float(loss) == pytest.approx(0.0, abs=1e-3)
    assert np.all(np.isfinite(gradient.numpy()))


@pytest.mark.parametrize("loss", [
    FocalLoss(alpha=0.4, gamma=1.5), TverskyLoss(alpha=0.2, beta=0.8, smooth=0.5),
    FocalTverskyLoss(alpha=0.4, beta=0.6, gamma=0.5), SymmetricUnifiedFocalLoss(weight=0.3, delta=0.7, gamma=0.2),
    AsymmetricUnifiedFocalLoss(weight=0.6, delta=0.5, gamma=0.4, smooth=1.0),
    WeightedSum([DiceLoss(), FocalLoss(gamma=1.0)], [0.2, 0.8]),
], ids=lambda loss: type(loss).__name__)
def test_serialization_round_trip_keeps_parameters_and_value(loss):
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss)
    assert keras.losses.serialize(restored) == keras.losses.serialize(loss)
    assert value(restored) == pytest.approx(value(loss), rel=1e-6)


@pytest.mark.parametrize("spec", sorted(LOSSES) + ["0.5*bce_dice+0.5*focal_tversky"])
def test_a_model_compiled_with_each_loss_saves_and_loads_in_safe_mode(spec, tmp_path):
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, padding="same", activation="sigmoid")(inputs))
    model.compile("sgd", loss=get_loss(spec))
    x = np.random.default_rng(0).random((2, 8, 8, 1)).astype(np.float32)
    y = (x > 0.5).astype(np.float32).repeat(2, axis=-1)
    model.train_on_batch(x, y)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert type(loaded.loss) is type(model.loss)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)


def test_weighted_sum_is_the_weighted_sum_of_its_parts():
    rng = np.random.default_rng(0)
    y_true = (rng.random((3, 6, 6, 2)) > 0.5).astype(np.float32)
    y_pred = rng.uniform(0.05, 0.95, (3, 6, 6, 2)).astype(np.float32)
    parts = [BCEDiceLoss(), FocalTverskyLoss(), keras.losses.BinaryCrossentropy()]
    expected = sum(w * value(loss, y_true, y_pred) for w, loss in zip([0.5, 0.25, 2.0], parts))
    assert value(WeightedSum(parts, [0.5, 0.25, 2.0]), y_true, y_pred) == pytest.approx(expected, rel=1e-5)


def test_weighted_sum_rejects_mismatched_or_non_loss_members():
    with pytest.raises(ValueError, match="one weight per loss"):
        WeightedSum([DiceLoss()], [0.5, 0.5])
    with pytest.raises(TypeError, match="keras.losses.Loss instances"):
        WeightedSum(["dice"], [1.0])


def test_get_loss_by_name():
    expected = {"dice": DiceLoss, "bce_dice": BCEDiceLoss, "focal": FocalLoss, "tversky": TverskyLoss,
                "focal_tversky": FocalTverskyLoss, "unified_focal_sym": SymmetricUnifiedFocalLoss,
                "unified_focal_asym": AsymmetricUnifiedFocalLoss}
    for name, loss_class in expected.items():
        assert type(get_loss(name)) is loss_class


def test_get_loss_by_weighted_sum_spec():
    loss = get_loss("0.5*bce_dice + 0.25 * focal_tversky+dice")
    assert isinstance(loss, WeightedSum)
    assert [type(member) for member in loss.losses] == [BCEDiceLoss, FocalTverskyLoss, DiceLoss]
    assert loss.weights == [0.5, 0.25, 1.0]


@pytest.mark.parametrize("spec, message", [
    ("nope", "unknown loss 'nope'; choose one of bce_dice, dice, focal, focal_tversky, tversky, "
             "unified_focal_asym, unified_focal_sym"),
    ("0.5*dice+0.5*nope", "unknown loss 'nope'"),
    ("x*dice", "weight 'x' is not a positive number"),
    ("-1*dice", "weight '-1' is not a positive number"),
    ("0.5*dice+", "unknown loss ''"),
])
def test_bad_specs_raise_a_clear_error(spec, message):
    with pytest.raises(ValueError, match=message.replace("*", r"\*")):
        get_loss(spec)
