"""Output folders and files (issue #10, cases 1, 2 and 4): --force replaces only an earlier output of
the same command, never a dataset or an input; interrupted work leaves nothing that passes for a result."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import file_contents, write_square_dataset

from seglib.cli import main
from seglib.data.io import write_png
from seglib.data.outputs import MARKER
from seglib.training.callbacks import RunCheckpoints

TINY_TRAIN = ["--profile", "smoke", "--image-size", "32", "--depth", "2", "--base-filters", "4", "--epochs", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished run as `train` leaves it (marker, config, split, calibration, summary), so the guards are tested
    on a real run's files; one epoch of a tiny network on 32 px squares takes seconds."""
    from seglib.config import profile_config
    from seglib.training.fit import train

    root = tmp_path_factory.mktemp("outputs")
    config = profile_config("smoke", data=str(write_square_dataset(root / "data", n=4)), structures=("left_thing",),
                            image_size=32, depth=2, base_filters=4, epochs=1, mirror_flip=False)
    return train(config, root / "run", verbose=0)


def predict(run, images, out, *options) -> int:
    return main(["predict", "--runs", str(run), "--images", str(images), "--out", str(out), *options])


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
    for i in range(2000):  # enough work to be caught mid-way, even on a loaded machine
        write_png(images / f"im{i:03d}.png", np.random.default_rng(i).integers(0, 255, (32, 32), dtype=np.uint8))
    (tmp_path / ".pred.mine").mkdir()  # a hidden folder of the user's, not a seglib temporary
    command = [sys.executable, "-m", "seglib", "predict", "--runs", str(run), "--images", str(images),
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


# --- issue #19 items 1 and 3: evaluate --force, report, bench and ablation outputs -------------------

def test_evaluate_force_replaces_an_earlier_metrics_table(evaluated, tmp_path):
    data, pred = evaluated
    out = tmp_path / "metrics.csv"
    evaluate = ["evaluate", "--pred", str(pred), "--data", str(data), "--out", str(out)]
    assert main(evaluate) == 0
    out.write_text(out.read_text().replace("model", "stale"))
    assert main([*evaluate, "--force"]) == 0
    assert "stale" not in out.read_text() and out.read_text().startswith("id,structure,method,dice,")


@pytest.mark.parametrize("target", ["run/model.keras", "run/split.csv", "pred/masks/left_thing/case0.png",
                                    "pred/probabilities.csv", "notes.csv", "split.csv"])
def test_evaluate_force_never_replaces_a_file_that_is_not_its_metrics_table(run, evaluated, tmp_path, capsys,
                                                                              target):
    data, pred = evaluated
    shutil.copytree(run, tmp_path / "run")
    (tmp_path / "notes.csv").write_text("patient,remark\np0,months of work\n")
    (tmp_path / "split.csv").write_text("id,split\ncase0,test\ncase1,train\n")
    # a table with evaluate's header inside a prediction folder is still not evaluate's to replace
    (pred / "probabilities.csv").write_text("id,structure,method,dice\ncase0,left_thing,x,1.0\n")
    before = file_contents(tmp_path)
    out = tmp_path / target
    assert main(["evaluate", "--pred", str(pred), "--data", str(data), "--out", str(out), "--force"]) == 2
    assert file_contents(tmp_path) == before
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"error: {out}: ")
    assert "is not a metrics table written by evaluate" in error or "written by seglib" in error


def metrics_csv(path, method="unet", **columns):
    rows = [{"id": f"case{i}", "structure": "left_thing", "method": method, "dice": 0.8 + i / 100, "iou": 0.7,
             "precision": 0.9, "recall": 0.8, "hd95": 2.0 + i, "hd": 3.0 + i, "assd": 1.0, "surface_dice": 0.9}
            for i in range(4)]
    table = pd.DataFrame(rows).drop(columns=[c for c, keep in columns.items() if not keep])
    table.to_csv(path, index=False)
    return path


def report(out, *eval_files, force=False) -> int:
    return main(["report", "--eval", *map(str, eval_files), "--out", str(out), *(["--force"] if force else [])])


def test_report_into_a_folder_seglib_did_not_write_is_refused_untouched(tmp_path, capsys):
    table = metrics_csv(tmp_path / "metrics.csv")
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("samples.png", "laterality.csv", "contested.csv", "report.md", "metrics.csv"):
        (mine / name).write_text(f"the user's own {name}")
    before = file_contents(mine)
    assert report(mine, table) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert report(mine, table, force=True) == 2
    assert "was not written by seglib" in capsys.readouterr().err
    assert file_contents(mine) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "mine"]  # no temporary left


def test_a_report_that_fails_midway_leaves_the_earlier_report_whole(tmp_path, capsys, monkeypatch):
    table = metrics_csv(tmp_path / "metrics.csv")
    out = tmp_path / "report"
    assert report(out, table) == 0
    assert json.loads((out / MARKER).read_text())["command"] == "report"
    assert report(out, table) == 2  # no --force: refused
    assert "exists and is not empty; choose another path or pass --force" in capsys.readouterr().err
    before = file_contents(out)

    from seglib.reporting import document

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(document.figures, "metric_boxplot", disk_full)
    assert report(out, metrics_csv(tmp_path / "other.csv", method="other"), force=True) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert file_contents(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "other.csv", "report"]
    monkeypatch.undo()
    assert report(out, tmp_path / "other.csv", force=True) == 0
    assert "| other |" in (out / "report.md").read_text() or "other" in (out / "metrics.csv").read_text()


def test_bench_out_replaces_only_its_own_report_and_refuses_before_measuring(tmp_path, capsys, monkeypatch):
    from seglib.experiments import bench

    monkeypatch.setattr(bench, "write_profile_phantoms", lambda *a, **k: pytest.fail("measured before checking --out"))
    notes = tmp_path / "notes.md"
    notes.write_text("# my notes\n")
    for options in ([], ["--force"]):
        assert main(["bench", "--out", str(notes), *options]) == 2
        assert notes.read_text() == "# my notes\n"
    assert "is not a benchmark report written by bench" in capsys.readouterr().err
    earlier = tmp_path / "smoke.md"
    earlier.write_text("# seglib benchmarks: profile smoke\n\nMeasured ...\n")
    assert main(["bench", "--out", str(earlier)]) == 2
    assert "already exists; refusing to overwrite (pass --force to replace it)" in capsys.readouterr().err
    data = write_square_dataset(tmp_path / "data", n=2)
    assert main(["bench", "--out", str(data / "bench.md")]) == 2
    assert "lies inside the dataset" in capsys.readouterr().err


def test_ablation_out_into_a_folder_it_did_not_write_is_refused_before_training(tmp_path, capsys):
    data = write_square_dataset(tmp_path / "data", n=4)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "ablation.csv").write_text("the user's own table")
    for options in ([], ["--force"]):
        assert main(["ablation", "--data", str(data), "--structure", "left_thing", "--structure", "right_thing", "--out", str(mine),
                     "--work", str(tmp_path / "work"), "--profile", "smoke", *options]) == 2
    assert (mine / "ablation.csv").read_text() == "the user's own table"
    assert not (tmp_path / "work").exists()
    assert "was not written by seglib" in capsys.readouterr().err


def test_ablation_outputs_replace_only_an_earlier_ablation_output(tmp_path):
    from seglib.experiments.ablation import write_ablation_outputs

    table = pd.DataFrame({"configuration": ["full"], "fraction": [1.0], "n_train": [2], "structure": ["left_thing"],
                          "dice_mean": [0.9], "dice_std": [0.01], "hd95_mean": [2.0], "hd95_std": [0.5],
                          "n_test": [2], "train_seconds": [10.0]})
    write_ablation_outputs(table, tmp_path / "ablation")
    write_ablation_outputs(table.assign(dice_mean=0.5), tmp_path / "ablation")  # after the next configuration
    assert "0.500" in (tmp_path / "ablation" / "ablation.md").read_text()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("months of work")
    with pytest.raises(FileExistsError, match="was not written by seglib"):
        write_ablation_outputs(table, tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["thesis.txt"]


# --- issue #19 item 2: train --force replaces a finished run only when the new one is complete -------

@pytest.mark.parametrize("failure", [FileNotFoundError("a file vanished"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_forced_training_leaves_the_old_run_intact(run, tmp_path, monkeypatch, failure):
    from seglib.config import RunConfig
    from seglib.training.fit import train

    old = tmp_path / "run"
    shutil.copytree(run, old)
    before = file_contents(old)

    def fails(*args, **kwargs):
        raise failure

    config = RunConfig.load(old / "config.json")
    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "fit", fails)
        with pytest.raises(type(failure)):
            train(config, old, force=True, verbose=0)
    assert file_contents(old) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no half-trained temporary left

    assert train(config, old, force=True, verbose=0) == old
    assert (old / "summary.json").is_file() and json.loads((old / MARKER).read_text())["command"] == "train"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_train_force_with_an_impossible_option_keeps_the_old_run(run, tmp_path, capsys):
    old = tmp_path / "run"
    shutil.copytree(run, old)
    before = file_contents(old)
    data = json.loads((old / "config.json").read_text())["data"]
    with pytest.raises(SystemExit) as exit:
        main(["train", "--data", data, "--structure", "left_thing", "--out", str(old), "--force",
              "--no-mirror-flip", *TINY_TRAIN, "--dropout", "2"])
    assert exit.value.code == 2
    assert file_contents(old) == before
    assert "argument --dropout: 2 is not allowed; expected a rate from 0 up to (not including) 1" in \
        capsys.readouterr().err


def test_evaluate_force_never_replaces_a_table_inside_its_input_folder(evaluated, tmp_path, capsys):
    data, pred = evaluated
    external = tmp_path / "external"  # predictions another tool wrote: no seglib marker
    shutil.copytree(pred / "masks", external / "masks")
    table = external / "metrics.csv"
    table.write_text("id,structure,method,dice\ncase0,left_thing,theirs,0.7\n")
    assert main(["evaluate", "--pred", str(external), "--data", str(data), "--out", str(table), "--force"]) == 2
    assert table.read_text() == "id,structure,method,dice\ncase0,left_thing,theirs,0.7\n"
    assert f"lies inside the input {external}; --force never replaces a file there" in capsys.readouterr().err


# --- issue #29 item 9: a symbolic link as --out; a result that cannot take its place --------------------

@pytest.mark.parametrize("target", ["empty folder", "nowhere"])
def test_a_symbolic_link_as_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch, target):
    from seglib.inference import archive

    monkeypatch.setattr(archive, "load_network", lambda *a, **k: pytest.fail("the models loaded first"))
    images = write_square_dataset(tmp_path / "data", n=1) / "images"
    real = tmp_path / target
    if target == "empty folder":
        real.mkdir()
    link = tmp_path / "out"
    link.symlink_to(real)
    assert main(["segment", "--model", "pelvis", "--images", str(images), "--out", str(link), "--tta"]) == 2
    assert capsys.readouterr().err == f"error: {link}: is a symbolic link (to {real}); give the real folder or file\n"
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert not real.exists() or not list(real.iterdir())
    assert _hidden(tmp_path) == []  # no temporary, finished or not, left out of sight


def test_a_folder_inside_a_dangling_link_is_refused_in_one_line(run, tmp_path, capsys):
    images = write_square_dataset(tmp_path / "data", n=1) / "images"
    (tmp_path / "results").symlink_to(tmp_path / "unmounted")
    assert predict(run, images, tmp_path / "results" / "pred") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "results is a symbolic link that leads to no folder" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "results"]


def test_a_complete_result_that_cannot_take_its_place_stays_in_sight(tmp_path):
    from seglib.data.outputs import UnsafeOutput, output_folder, remove_stale_temporaries

    out = tmp_path / "out"
    with pytest.raises(UnsafeOutput, match="the result is complete but could not be put there") as refusal:
        with output_folder(out, "segment") as staging:
            (staging / "areas.csv").write_text("id,structure\n")
            out.mkdir()  # meanwhile another run (or the user) wrote the output folder
            (out / "theirs.txt").write_text("another run's result")
    kept = Path(str(refusal.value).rsplit("it is in ", 1)[1])
    assert kept.parent == tmp_path and not kept.name.startswith(".")
    assert (kept / "areas.csv").read_text() == "id,structure\n"
    assert (out / "theirs.txt").read_text() == "another run's result"
    remove_stale_temporaries(out)  # what the next run into the same place does first
    assert (kept / "areas.csv").is_file()


def test_a_temporary_killed_before_it_was_marked_is_removed_only_when_empty(tmp_path):
    """A kill between creating a temporary and marking it (seen under load) left it for ever."""
    from seglib.data.outputs import remove_stale_temporaries

    dead = 2**22 + 1  # above Linux's default pid_max: no process has it
    empty, holding = tmp_path / f".pred.seglib-{dead}-empty", tmp_path / f".pred.seglib-{dead}-mine"
    empty.mkdir()
    holding.mkdir()
    (holding / "notes.txt").write_text("not seglib's")
    remove_stale_temporaries(tmp_path / "pred")
    assert _hidden(tmp_path) == [f".pred.seglib-{dead}-mine"]


def test_a_file_added_while_a_command_writes_in_place_is_never_replaced(tmp_path):
    """train and segment write their folder in place for hours: a note put there meanwhile is the user's,
    before the run is sealed (killed) and after (complete), and --force refuses to delete it."""
    from seglib.data.outputs import UnsafeOutput, check_replaceable, claim_folder, seal

    run = claim_folder(tmp_path / "run", "train", layout=("model.keras", "backup/*"))
    (run / "model.keras").write_text("weights")
    (run / "notes.txt").write_text("epoch 12 looked odd")
    with pytest.raises(UnsafeOutput, match=r"notes\.txt"):  # killed: never sealed
        check_replaceable(run, "train", force=True)
    seal(run)
    with pytest.raises(UnsafeOutput, match=r"notes\.txt"):  # complete
        check_replaceable(run, "train", force=True)
    (run / "notes.txt").unlink()
    assert check_replaceable(run, "train", force=True)
