import keras
import numpy as np
import pytest
import tensorflow as tf

from seglib.losses.dice import BCEDiceLoss
from seglib.losses.spec import get_loss
from seglib.symmetry.consistency import BilateralConsistencyModel, consistency_term, swap_partner_channels
from seglib.training.metrics import DiceScore

PAIR = ["left_hip", "right_hip"]
SIZE = 16


def test_swap_partner_channels_swaps_partners_and_keeps_midline_structures():
    y = np.arange(2 * 3, dtype=np.float32).reshape(1, 1, 2, 3)  # channels: 0, 1, 2 (+3 on the 2nd pixel)
    swapped = np.asarray(swap_partner_channels(y, ["left_hip", "sacrum", "right_hip"]))
    np.testing.assert_array_equal(swapped[0, 0, 0], [2, 1, 0])
    np.testing.assert_array_equal(swapped[0, 0, 1], [5, 4, 3])


@pytest.mark.parametrize("structures, missing", [(["left_hip"], "right_hip"), (["liver", "sacrum"], "none declared")])
def test_swap_needs_every_partner_among_the_outputs(structures, missing):
    with pytest.raises(ValueError, match=missing):
        swap_partner_channels(np.zeros((1, 2, 2, len(structures))), structures)


def _half_masks():
    columns = np.arange(SIZE)
    image_right = (columns >= SIZE // 2).astype(np.float32)[None, None, :, None]
    return image_right, image_right[:, :, ::-1]


def equivariant_predictor(x):
    """left_hip = the image's right half, right_hip = its left half: mirror-equivariant exactly."""
    image_right, image_left = _half_masks()
    return tf.concat([x * image_right, x * image_left], axis=-1)


def lopsided_predictor(x):
    """Both structures taken from the image's right half: a mirror image changes the answer."""
    image_right, _ = _half_masks()
    return tf.concat([x * image_right, x * image_right], axis=-1)


def test_consistency_is_zero_for_an_equivariant_predictor_and_positive_otherwise():
    x = np.random.default_rng(0).random((2, SIZE, SIZE, 1)).astype(np.float32)
    assert float(consistency_term(equivariant_predictor, x, PAIR)) == pytest.approx(0.0, abs=1e-12)
    assert float(consistency_term(lopsided_predictor, x, PAIR)) > 0.05


def two_tone(left: float, right: float) -> np.ndarray:
    """One image: `left` on the image's left half, `right` on its right half."""
    image_right, image_left = _half_masks()
    return np.broadcast_to(left * image_left + right * image_right, (1, SIZE, SIZE, 1)).astype(np.float32)


def test_consistency_of_the_lopsided_predictor_worked_out_by_hand():
    # Image a | b (left half a, right half b). Prediction: both channels 0 | b. Mirrored prediction: the
    # mirrored image b | a predicts 0 | a, flipped back a | 0, channels swapped (both alike): a | 0.
    # Squared difference a^2 | b^2, whose mean is (a^2 + b^2) / 2 = (0.04 + 0.36) / 2 = 0.2.
    assert float(consistency_term(lopsided_predictor, two_tone(0.2, 0.6), PAIR)) == pytest.approx(0.2, rel=1e-6)


def tiny_segmenter():
    inputs = keras.Input((SIZE, SIZE, 1))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    features = keras.layers.BatchNormalization()(features)
    return keras.Model(inputs, keras.layers.Conv2D(2, 1, activation="sigmoid")(features))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.random((8, SIZE, SIZE, 1)).astype(np.float32)
    y = (rng.random((8, SIZE, SIZE, 2)) > 0.7).astype(np.float32)
    return x, y


def test_wrapper_trains_logs_consistency_and_loads_in_safe_mode(data, tmp_path):
    x, y = data
    keras.utils.set_random_seed(0)
    model = BilateralConsistencyModel(tiny_segmenter(), PAIR, weight=0.5)
    model.compile("adam", loss=get_loss("0.5*bce_dice+0.5*focal_tversky"), metrics=[DiceScore()])
    history = model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(4), epochs=1, shuffle=False, verbose=0)
    assert history.history["consistency"][0] > 0
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert isinstance(loaded, BilateralConsistencyModel)
    assert (loaded.structures, loaded.weight) == (PAIR, 0.5)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert set(loaded.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "dice", "consistency"}


def test_wrapper_returns_the_plain_segmentation_and_adds_weighted_consistency_to_the_loss(data):
    x, y = data
    segmenter = tiny_segmenter()
    model = BilateralConsistencyModel(segmenter, PAIR, weight=2.0)
    model.compile("adam", loss=BCEDiceLoss())
    np.testing.assert_allclose(model.predict(x, verbose=0), segmenter.predict(x, verbose=0), atol=1e-6)
    logs = model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    consistency = float(consistency_term(segmenter, x, PAIR))
    expected = float(BCEDiceLoss()(y, segmenter(x))) + 2.0 * consistency
    assert logs["consistency"] == pytest.approx(consistency, rel=1e-4)
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)


class LopsidedLayer(keras.layers.Layer):
    def call(self, x):
        return lopsided_predictor(x)


def test_wrapper_logs_the_hand_worked_consistency_and_adds_it_weighted_to_the_loss():
    inputs = keras.Input((SIZE, SIZE, 1))
    model = BilateralConsistencyModel(keras.Model(inputs, LopsidedLayer()(inputs)), PAIR, weight=2.0)
    model.compile("adam", loss=keras.losses.MeanSquaredError())
    x, y = two_tone(0.2, 0.6), np.zeros((1, SIZE, SIZE, 2), np.float32)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    # consistency (0.04 + 0.36) / 2 = 0.2 (above); the MSE against zeros: 0.36 on half the pixels = 0.18
    assert logs["consistency"] == pytest.approx(0.2, rel=1e-5)
    assert logs["loss"] == pytest.approx(0.18 + 2.0 * 0.2, rel=1e-5)


def test_wrapper_refuses_outputs_without_their_partners():
    with pytest.raises(ValueError, match="right_hip"):
        BilateralConsistencyModel(tiny_segmenter(), ["left_hip", "sacrum"])
