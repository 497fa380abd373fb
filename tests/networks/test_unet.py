import keras
import numpy as np
import pytest

import seglib.losses.focal  # noqa: F401  (registers losses, as users' imports do)
from seglib.config import RunConfig
from seglib.networks.unet import ARCHITECTURES, build_attention_unet, build_model, build_resunet, build_unet
from seglib.training.metrics import DiceScore


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
    model.compile("adam", loss=seglib.losses.dice.BCEDiceLoss(), metrics=[DiceScore()])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    x = np.ones((1, 16, 16, 1), "float32")
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)
    assert isinstance(loaded.loss, seglib.losses.dice.BCEDiceLoss)


# --- U-Net family: residual U-Net and Attention U-Net beside the plain U-Net -------------------

TINY = dict(depth=2, base_filters=4)


def _tiny(architecture, **overrides):
    return build_model(RunConfig(architecture=architecture, image_size=32, structures=("left_hip", "right_hip"),
                                 **dict(TINY, **overrides)))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
@pytest.mark.parametrize("downsampling", ["maxpool", "strided"])
def test_every_architecture_maps_an_image_to_one_probability_map_per_structure(architecture, upsampling, downsampling):
    model = _tiny(architecture, upsampling=upsampling, downsampling=downsampling)
    assert model.name == f"{architecture}_left_hip_right_hip"
    out = model(np.random.default_rng(0).normal(size=(3, 32, 32, 1)).astype("float32"))
    assert tuple(out.shape) == (3, 32, 32, 2)
    assert out.dtype == "float32" and float(keras.ops.min(out)) >= 0 and float(keras.ops.max(out)) <= 1


@pytest.mark.parametrize("builder", [build_unet, build_resunet, build_attention_unet])
def test_every_builder_rejects_sizes_and_upsamplings_it_cannot_use(builder):
    with pytest.raises(ValueError, match="image size 40 is not divisible by 2\\*\\*depth = 16"):
        builder(40, depth=4)
    with pytest.raises(ValueError, match="upsampling must be"):
        builder(32, upsampling="nearest", **TINY)


def test_build_model_rejects_an_unknown_architecture_and_lists_the_known_ones():
    expected = "unknown architecture 'segformer'; choose one of unet, resunet, attention_unet"
    with pytest.raises(ValueError, match=expected):
        build_model(RunConfig(architecture="segformer", image_size=32, **TINY))


def test_plain_unet_keeps_its_layer_names_so_trained_models_still_load():
    model = build_unet(32, **TINY)
    names = [layer.name for layer in model.layers]
    for known in ("image", "down0_conv1", "down0_bn1", "down0_relu2", "down1_pool", "bottleneck_conv2",
                  "bottleneck_dropout", "up1_transpose", "up1_skip", "up0_dropout", "up0_conv2", "probabilities"):
        assert known in names
    assert not any(layer.__class__.__name__ in ("Add", "Multiply") for layer in model.layers)
    assert build_model(RunConfig(image_size=32, **TINY)).name == "unet_left_hip"


def test_resunet_blocks_are_residual_with_a_projection_where_channels_change():
    model = build_resunet(32, **TINY)
    blocks = ["down0", "down1", "bottleneck", "up1", "up0"]
    adds = {layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)}
    assert adds == {f"{block}_add" for block in blocks}
    for block in blocks:  # every block here changes the channel count, so every shortcut is a 1x1 conv
        shortcut = model.get_layer(f"{block}_shortcut")
        assert shortcut.kernel_size == (1, 1)
        assert model.get_layer(f"{block}_add").input[1].shape[-1] == shortcut.filters
    # identity shortcut when the block keeps its channel count
    same = build_resunet(32, channels=4, **TINY)
    assert "down0_shortcut" not in [layer.name for layer in same.layers] and same.get_layer("down0_add")


def test_attention_unet_gates_every_skip_with_a_one_channel_sigmoid_map():
    model = build_attention_unet(32, **TINY)
    multiplies = {layer.name for layer in model.layers if isinstance(layer, keras.layers.Multiply)}
    assert multiplies == {"up0_gate_multiply", "up1_gate_multiply"}
    for level, channels, side in ((0, 4, 32), (1, 8, 16)):
        skip, alpha = model.get_layer(f"up{level}_gate_multiply").input
        assert tuple(skip.shape[1:]) == (side, side, channels) and tuple(alpha.shape[1:]) == (side, side, 1)
        # the gated skip, not the raw encoder output, is what the decoder concatenates
        assert model.get_layer(f"up{level}_skip").input[1] is model.get_layer(f"up{level}_gate_multiply").output
        assert model.get_layer(f"up{level}_gate_sigmoid").activation.__name__ == "sigmoid"
    # the gating signal comes from the coarser decoder level: the bottleneck for the deepest skip
    assert model.get_layer("up1_gate_phi").input is model.get_layer("bottleneck_dropout").output
    assert model.get_layer("up0_gate_phi").input is model.get_layer("up1_relu2").output


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("downsampling", ["maxpool", "strided"])
def test_every_architecture_saves_and_loads_with_safe_mode_and_gives_the_same_output(architecture, downsampling,
                                                                                      tmp_path):
    model = _tiny(architecture, downsampling=downsampling)
    model.compile("adam", loss=seglib.losses.dice.BCEDiceLoss(), metrics=[DiceScore()])
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 1)).astype("float32")
    model.fit(x, np.ones((2, 32, 32, 2), "float32"), epochs=1, verbose=0)  # non-trivial BN statistics
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-7)


def _multiply_adds(model) -> int:
    """Multiply-adds of one forward pass through the model's convolutions."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            grid = layer.output.shape[1] * layer.output.shape[2]
            if isinstance(layer, keras.layers.Conv2DTranspose):
                grid = layer.input.shape[1] * layer.input.shape[2]
            total += grid * int(np.prod(layer.kernel.shape))
    return total


@pytest.mark.parametrize("architecture", ["unet", "resunet"])
def test_strided_downsampling_works_at_full_resolution_only_at_both_ends_and_costs_far_less(architecture):
    config = dict(architecture=architecture, image_size=128, depth=4, base_filters=16, structures=("left_hip",))
    strided = build_model(RunConfig(**config, downsampling="strided"), channels=2)
    pooled = build_model(RunConfig(**config), channels=2)
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in strided.layers)
    full_resolution_convs = [layer.name for layer in strided.layers if isinstance(layer, keras.layers.Conv2D)
                             and layer.output.shape[1] == 128 and layer.kernel.shape[0] == 3]
    assert full_resolution_convs == ["full_conv1"]  # the first convolution already has stride 2
    assert strided.get_layer("down0_conv1").strides == (2, 2)
    assert _multiply_adds(strided) < 0.4 * _multiply_adds(pooled)


def test_strided_downsampling_is_refused_by_name_when_unknown():
    with pytest.raises(ValueError, match="downsampling must be 'maxpool' or 'strided'"):
        build_unet(32, depth=2, downsampling="average")
