import keras
import numpy as np
import pytest

import seglib.losses  # noqa: F401  (registers losses, as users' imports do)
from seglib.metrics import DiceScore
from seglib.models import build_unet


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_unet_maps_an_image_to_one_probability_map_per_structure(upsampling):
    model = build_unet(32, n_outputs=2, depth=2, base_filters=4, upsampling=upsampling)
    out = model(np.random.default_rng(0).normal(size=(3, 32, 32, 1)).astype("float32"))
    assert tuple(out.shape) == (3, 32, 32, 2)
    assert out.dtype == "float32" and float(keras.ops.min(out)) >= 0 and float(keras.ops.max(out)) <= 1


def test_unet_rejects_sizes_it_cannot_halve():
    with pytest.raises(ValueError, match="image size 40 is not divisible by 2\\*\\*depth = 16"):
        build_unet(40, depth=4)


def test_saved_model_loads_with_safe_mode_and_gives_the_same_output(tmp_path):
    model = build_unet(16, depth=2, base_filters=4)
    model.compile("adam", loss=seglib.losses.BCEDiceLoss(), metrics=[DiceScore()])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    x = np.ones((1, 16, 16, 1), "float32")
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)
    assert isinstance(loaded.loss, seglib.losses.BCEDiceLoss)
