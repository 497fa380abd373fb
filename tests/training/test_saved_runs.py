"""Runs saved by seglib 0.1, before the run folder had a type (saved_run_0_1: two one-epoch runs
written by that code, with the probabilities it predicted), still read, load and predict the same."""

from pathlib import Path

import numpy as np
import pytest

from seglib.inference.predictor import Predictor
from seglib.training.run_dir import RunDir

SAVED = Path(__file__).parent / "saved_run_0_1"
STRUCTURES = ("left_thing", "right_thing")


def test_every_part_of_a_saved_run_reads():
    run = RunDir(SAVED / "left_thing")
    config = run.config()
    assert config.structures == ("left_thing",) and config.image_size == 32 and config.side_aware
    assert sorted(run.split()) == [f"case{i}" for i in range(6)] and set(run.split().values()) == {"train", "val", "test"}
    assert run.is_finished() and run.summary()["epochs_run"] == 1 == len(run.history())
    assert run.load_model().input_shape == (None, 32, 32, 2)


@pytest.mark.parametrize("tta", [False, True], ids=["plain", "flip-tta"])
def test_saved_runs_predict_what_they_predicted_when_saved(tta):
    expected = np.load(SAVED / "expected.npz")
    predicted = Predictor([SAVED / name for name in STRUCTURES]).probabilities(expected["image"], tta=tta)
    for name in STRUCTURES:
        np.testing.assert_allclose(predicted[name], expected[f"{'tta' if tta else 'plain'}_{name}"], rtol=0, atol=1e-6)
