"""Starting a run from the shipped pelvis model's weights (seglib.training.transfer): for a structure the model does
not predict, everything transfers but the output layer, which starts fresh."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_square_dataset

from seglib.cli.commands import main
from seglib.config import profile_config
from seglib.models.shipped import pretrained_run
from seglib.training.fit import compile_model
from seglib.training.run_dir import RunDir
from seglib.training.transfer import OUTPUT_LAYER, load_initial_weights


def _shipped():
    return RunDir(pretrained_run("pelvis")).load_model()


@pytest.mark.slow
def test_a_run_of_a_structure_the_shipped_model_does_not_predict_starts_from_its_weights_by_default(tmp_path):
    """One epoch at a learning rate too small to move anything: the demo profile's run of a user's own structure has
    the shipped model's convolutions, and an output layer of its own (one column, not one of the model's five)."""
    data = write_square_dataset(tmp_path / "squares", n=6)
    assert main(["train", "--data", str(data), "--structure", "left_thing", "--profile", "demo", "--epochs", "1",
                 "--learning-rate", "1e-9", "--split-file", str(_split(data)), "--out", str(tmp_path / "run")]) == 0
    run = RunDir(tmp_path / "run")
    assert run.config().init == "pelvis"
    model, shipped = run.load_model(), _shipped()
    for layer in ("down0_conv1", "bottleneck_conv2", "full_conv1"):  # encoder with the side channel, decoder
        np.testing.assert_allclose(model.get_layer(layer).get_weights()[0], shipped.get_layer(layer).get_weights()[0],
                                   atol=1e-6)
    column, columns = model.get_layer(OUTPUT_LAYER).get_weights()[0], shipped.get_layer(OUTPUT_LAYER).get_weights()[0]
    assert column.shape[-1] == 1
    assert not any(np.allclose(column[..., 0], columns[..., k], atol=1e-3) for k in range(columns.shape[-1]))
    assert not np.allclose(column[..., 0], columns.mean(axis=-1), atol=1e-3)


def test_the_output_layer_keeps_the_columns_of_structures_the_source_predicts_and_starts_the_others_fresh():
    config = profile_config("demo", structures=("left_lung", "right_hip"), init="pelvis")
    model = compile_model(config)
    fresh = model.get_layer(OUTPUT_LAYER).get_weights()
    load_initial_weights(model, config)
    loaded = model.get_layer(OUTPUT_LAYER).get_weights()
    shipped = _shipped().get_layer(OUTPUT_LAYER).get_weights()
    right_hip = pretrained_run("pelvis").config().structures.index("right_hip")
    for now, before, source in zip(loaded, fresh, shipped):
        np.testing.assert_array_equal(now[..., 0], before[..., 0])  # left_lung: fresh
        np.testing.assert_array_equal(now[..., 1], source[..., right_hip])


def _split(data):
    """Four films to train on and two to validate on."""
    path = data / ".." / "split.csv"
    ids = sorted(p.stem for p in (data / "images").iterdir())
    path.write_text("id,split\n" + "".join(f"{i},{'val' if n >= 4 else 'train'}\n" for n, i in enumerate(ids)))
    return path


def test_the_demo_profile_transfers_to_other_structures_at_its_own_size_rate_and_epochs():
    """Lungs (and a set mixing them with a hip) start from the pelvis model's network at the profile's working size,
    learning rate and epochs, unlike hips alone, which are fine-tuned; another network or init none: random weights."""
    scratch = profile_config("demo", init="none")
    for structures in (("left_lung", "right_lung"), ("left_hip", "left_lung")):
        config = profile_config("demo", structures=structures)
        assert (config.init, config.base_filters, config.downsampling) == ("pelvis", 24, "strided")
        assert (config.image_size, config.learning_rate, config.epochs) == (
            scratch.image_size, scratch.learning_rate, scratch.epochs)
    assert profile_config("demo", structures=("left_lung",), base_filters=16).init == ""
    assert profile_config("demo", structures=("left_lung",), init="none").init == ""
