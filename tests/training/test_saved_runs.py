"""Runs saved by seglib 0.1, before the run folder had a type (saved_run_0_1: two one-epoch runs
written by that code, with the probabilities it predicted), still read, load and predict the same."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from seglib.inference.film_checks import unexposed
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
    """Since 0.1.0 the flat rows and columns at a film's edges (seglib.inference.film_checks.unexposed: here the
    toy film's empty background) hold no structure; everywhere else the maps are those of 0.1."""
    expected = np.load(SAVED / "expected.npz")
    predicted = Predictor([SAVED / name for name in STRUCTURES]).probabilities(expected["image"], tta=tta)
    outside = unexposed(expected["image"])
    for name in STRUCTURES:
        np.testing.assert_allclose(predicted[name][~outside], expected[f"{'tta' if tta else 'plain'}_{name}"][~outside],
                                   rtol=0, atol=1e-6)
        assert not predicted[name][outside].any()


# A hand-edited config.json: each refused in one line naming the file and the option, before anything is written.
EDITS = {
    "null": (lambda c: None, "expected an object of option: value pairs, got null"),
    "a list": (lambda c: [c], "expected an object of option: value pairs, got [{"),
    "a size as text": (lambda c: {**c, "image_size": "64"}, "image_size '64' is not a whole number"),
    "a size of 0": (lambda c: {**c, "image_size": 0}, "image_size 0 is not allowed; expected a number of pixels"),
    "a huge size": (lambda c: {**c, "image_size": 200000}, "image_size 200000 is not allowed; expected a number of "
                                                            "pixels from 1 to 4096"),
    "one name as text": (lambda c: {**c, "structures": "left_thing"},
                         "structures 'left_thing' is not a list of structure names"),
    "a structure the model lacks": (lambda c: {**c, "structures": ["left_thing", "right_thing"]},
                                    "structures ('left_thing', 'right_thing') does not fit model.keras, which predicts 1 "
                                    "structure(s)"),
    "another size": (lambda c: {**c, "image_size": 64}, "image_size 64 does not fit model.keras, which takes images of 32 pixels"),
    "a flag as text": (lambda c: {**c, "side_aware": "yes"}, "side_aware 'yes' is not true or false"),
}


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
def test_a_hand_edited_config_is_refused_naming_the_file_and_the_option(tmp_path, capsys, edit):
    from conftest import untrained_run, write_square_dataset

    from seglib.cli import main

    run = RunDir(untrained_run(tmp_path / "run"))
    change, expected = EDITS[edit]
    run.config_path.write_text(json.dumps(change(json.loads(run.config_path.read_text()))))
    images = write_square_dataset(tmp_path / "data", n=1) / "images"
    assert main(["predict", "--runs", str(run), "--images", str(images), "--out", str(tmp_path / "out")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {run.config_path}: ") and expected in line
    assert not (tmp_path / "out").exists()


def _without_side_aware(run: RunDir) -> None:
    """The config.json of a run saved before the option existed (seglib before commit b245dd6)."""
    config = json.loads(run.config_path.read_text())
    del config["side_aware"]
    run.config_path.write_text(json.dumps(config))


def test_a_run_saved_before_side_aware_existed_reads_as_it_was_meant_without_the_side_channel(tmp_path):
    from conftest import untrained_run

    run = RunDir(untrained_run(tmp_path / "run", side_aware=False))
    film = (np.arange(32 * 32).reshape(32, 32) % 251).astype(np.uint8)
    before = Predictor(run).probabilities(film)["left_thing"]
    _without_side_aware(run)
    assert run.config().side_aware is False  # today's default is True: that version's networks took the film alone
    np.testing.assert_array_equal(Predictor(run).probabilities(film)["left_thing"], before)


def test_a_side_aware_model_whose_config_lost_the_option_is_refused_by_name(tmp_path):
    from conftest import untrained_run

    from seglib.data.io import DataError

    run = RunDir(untrained_run(tmp_path / "run", side_aware=True))
    _without_side_aware(run)
    with pytest.raises(DataError, match=r"config.json: side_aware False does not fit model.keras, which takes 2 input "
                                        r"channel"):
        run.load_model()


def test_the_options_of_a_profile_config_are_checked_as_the_command_line_checks_them():
    from seglib.config import profile_config

    for options, expected in [({"learning_rate": 0}, "learning_rate 0 is not allowed; expected a positive number"),
                              ({"epochs": 2.5}, "epochs 2.5 is not a whole number"),
                              ({"dropout": float("nan")}, "dropout nan is not a finite number"),
                              ({"seed": True}, "seed True is not a whole number"),
                              ({"upsampling": "nearest"}, "upsampling 'nearest' is not allowed; expected one of")]:
        with pytest.raises(ValueError, match=f"^{re.escape(expected)}"):
            profile_config("smoke", **options)
