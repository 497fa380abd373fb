import keras
import numpy as np
import pytest

from seglib.losses.dice import BCEDiceLoss, DiceLoss
from seglib.losses.spec import get_loss


def test_dice_loss_matches_hand_computed_value():
    y_true = np.zeros((1, 2, 2, 1), np.float32)
    y_true[0, 0, :, 0] = 1  # two foreground pixels
    y_pred = np.full((1, 2, 2, 1), 0.5, np.float32)
    # intersection 1.0, sums 2 + 2; with smooth 1: 1 - (2*1 + 1) / (4 + 1) = 0.4
    assert float(DiceLoss()(y_true, y_pred)) == pytest.approx(0.4, abs=1e-6)
    assert float(DiceLoss()(y_true, y_true)) == pytest.approx(0.0, abs=1e-6)


def test_bce_dice_is_the_sum_of_its_parts():
    rng = np.random.default_rng(0)
    y_true = (rng.random((2, 4, 4, 2)) > 0.5).astype(np.float32)
    y_pred = rng.uniform(0.05, 0.95, (2, 4, 4, 2)).astype(np.float32)
    bce = -np.mean(y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred))
    expected = bce + float(DiceLoss()(y_true, y_pred))
    assert float(BCEDiceLoss()(y_true, y_pred)) == pytest.approx(expected, rel=1e-4)


def test_losses_are_selectable_by_name_and_serializable():
    assert isinstance(get_loss("bce_dice"), BCEDiceLoss)
    with pytest.raises(ValueError, match="unknown loss 'nope'; choose one of bce_dice, dice"):
        get_loss("nope")
    loss = BCEDiceLoss(bce_weight=0.3)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, BCEDiceLoss) and restored.bce_weight == 0.3
