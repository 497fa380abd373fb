"""Output folders and files (issue #10, cases 1, 2 and 4): --force replaces only an earlier output of
the same command, never a dataset or an input; interrupted work leaves nothing that passes for a result."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from conftest import file_contents, untrained_run, write_square_dataset

from seglib.cli import main
from seglib.data.io import write_png
from seglib.data.outputs import MARKER
from seglib.training.fit import RunCheckpoints

TINY_TRAIN = ["--profile", "smoke", "--image-size", "32", "--depth", "2", "--base-filters", "4", "--epochs", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    return untrained_run(root / "run")  # predict and fuse need a run folder, not a trained model


def predict(run, images, out, *options) -> int:
    return main(["predict", "--run", str(run), "--images", str(images), "--out", str(out), *options])


def test_force_never_deletes_a_dataset_inside_the_output_folder(run, tmp_path, capsys):
    parent = tmp_path / "parent"
    write_square_dataset(parent / "inner", n=2)
    before = file_contents(parent)
    assert predict(run, parent / "inner" / "images", parent, "--force") == 2
    assert file_contents(parent) == before
    assert "parent: contains the input" in capsys.readouterr().err


def test_force_never_deletes_a_dataset_one_level_down(run, tmp_path, capsys):
    data = write_square_dataset(tmp_path / "data", n=2)
    parent = tmp_path / "parent"
    write_square_dataset(parent / "inner", n=2)
    before = file_contents(parent)
    assert predict(run, data / "images", parent, "--force") == 2
    assert file_contents(parent) == before
    assert "holds the dataset" in capsys.readouterr().err


@pytest.mark.parametrize("folder", ["images", "masks"])
def test_force_never_replaces_the_images_or_masks_of_a_dataset(run, tmp_path, capsys, folder):
    data = write_square_dataset(tmp_path / "data", n=2)
    before = file_contents(data)
    assert predict(run, data / "images", data / folder, "--force") == 2
    assert file_contents(data) == before
    assert "error:" in capsys.readouterr().err


def test_force_never_replaces_the_input_images(run, tmp_path, capsys):
    images = write_square_dataset(tmp_path / "data", n=2) / "images"
    before = file_contents(images)
    assert predict(run, images, images, "--force") == 2
    assert file_contents(images) == before
    assert "is an input of this command" in capsys.readouterr().err


def test_train_into_the_training_images_is_refused_before_any_change(tmp_path, capsys):
    data = write_square_dataset(tmp_path / "data", n=4)
    before = file_contents(data)
    code = main(["train", "--data", str(data), "--structure", "left_thing", "--out", str(data / "images"),
                 "--force", "--no-mirror-flip", *TINY_TRAIN])
    assert code == 2
    assert file_contents(data) == before
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "lies inside the input" in error


def test_force_replaces_an_earlier_output_of_the_same_command_only(run, tmp_path, capsys):
    images = write_square_dataset(tmp_path / "data", n=2) / "images"
    out = tmp_path / "pred"
    assert predict(run, images, out) == 0
    assert json.loads((out / MARKER).read_text())["command"] == "predict"
    assert predict(run, images, out) == 2  # no --force: refused
    assert "exists and is not empty" in capsys.readouterr().err
    (out / "masks" / "left_thing" / "case0.png").unlink()
    assert predict(run, images, out, "--force") == 0
    assert (out / "masks" / "left_thing" / "case0.png").is_file()

    mine = tmp_path / "mine"
    (mine / "notes").mkdir(parents=True)
    (mine / "notes" / "thesis.txt").write_text("months of work")
    assert predict(run, images, mine, "--force") == 2
    assert (mine / "notes" / "thesis.txt").read_text() == "months of work"
    assert "was not written by seglib" in capsys.readouterr().err
    assert main(["fuse", "--runs", str(run), "--images", str(images), "--out", str(out), "--force"]) == 2
    assert "was written by seglib predict; --force replaces only an earlier fuse output" in capsys.readouterr().err


@pytest.fixture
def evaluated(run, tmp_path):
    data = write_square_dataset(tmp_path / "data", n=2)
    (data / "manifest.csv").write_text("id,patient_id\ncase0,p0\ncase1,p1\n")
    assert predict(run, data / "images", tmp_path / "pred") == 0
    return data, tmp_path / "pred"


@pytest.mark.parametrize("target", ["manifest.csv", "masks/left_thing/case0.png", "."])
def test_evaluate_never_writes_over_or_into_a_dataset(evaluated, tmp_path, capsys, target):
    data, pred = evaluated
    before = file_contents(tmp_path)
    out = data / target
    assert main(["evaluate", "--pred", str(pred), "--data", str(data), "--out", str(out), "--force"]) == 2
    assert file_contents(tmp_path) == before  # nothing replaced, no temporary left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "pred"]
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and ("lies inside the dataset" in error or "is an input" in error)


def test_evaluate_refuses_its_prediction_folder_as_the_output_file(evaluated, tmp_path, capsys):
    data, pred = evaluated
    assert main(["evaluate", "--pred", str(pred), "--data", str(data), "--out", str(pred), "--force"]) == 2
    assert "is an input of this command" in capsys.readouterr().err
    (tmp_path / "reports").mkdir()
    assert main(["evaluate", "--pred", str(pred), "--data", str(data), "--out", str(tmp_path / "reports")]) == 2
    assert "reports: is a folder; give a file name" in capsys.readouterr().err
    assert not list((tmp_path / "reports").iterdir())


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_the_temporary_of_a_killed_predict_is_cleaned_by_the_next_run(run, tmp_path):
    images = tmp_path / "images"
    for i in range(400):  # enough work to be caught mid-way
        write_png(images / f"im{i:03d}.png", np.full((32, 32), i % 250, np.uint8))
    (tmp_path / ".pred.mine").mkdir()  # a hidden folder of the user's, not a seglib temporary
    command = [sys.executable, "-m", "seglib", "predict", "--run", str(run), "--images", str(images),
               "--out", str(tmp_path / "pred")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not [p for p in _hidden(tmp_path) if p.startswith(".pred.seglib-")] and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert len(_hidden(tmp_path)) == 2 and not (tmp_path / "pred").exists()

    for path in list(images.iterdir())[2:]:
        path.unlink()
    assert predict(run, images, tmp_path / "pred") == 0
    assert _hidden(tmp_path) == [".pred.mine"]


def test_a_failed_training_leaves_no_run_folder(tmp_path, monkeypatch):
    from seglib.config import profile_config
    from seglib.training.fit import train

    data = write_square_dataset(tmp_path / "data", n=4)

    def vanished_input(*args, **kwargs):  # what TensorFlow raises when a file disappears mid-epoch
        raise FileNotFoundError(f"{data}/images/case1.png: no such file")

    monkeypatch.setattr(keras.Model, "fit", vanished_input)
    config = profile_config("smoke", data=str(data), structures=("left_thing",), image_size=32, depth=2,
                            mirror_flip=False)
    with pytest.raises(FileNotFoundError, match="case1.png: no such file"):
        train(config, tmp_path / "run", verbose=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_the_best_model_is_replaced_only_by_a_complete_file(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    previous = tmp_path / "model.keras"
    previous.write_bytes(b"the previous best model")
    checkpoint = RunCheckpoints(tmp_path, interval_seconds=0)
    checkpoint.set_model(model)

    def killed_while_saving(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as file:
            file.write(b"PK\x03\x04 half a zip")
        raise OSError("No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "save", killed_while_saving)
        with pytest.raises(OSError):
            checkpoint.on_epoch_end(0, {"val_dice": 0.5})
    assert previous.read_bytes() == b"the previous best model"

    checkpoint.on_epoch_end(1, {"val_dice": 0.6})
    assert keras.saving.load_model(previous).count_params() == 5
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
