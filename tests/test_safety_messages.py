"""Messages that used to mislead (issue #10, case 7): each is now one line naming the file and what
is wrong; Ctrl-C during predict says that nothing was written."""

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pandas as pd
import pytest
from conftest import untrained_run, write_square_dataset

from seglib.cli import main
from seglib.data.io import DataError, read_image, read_mask, write_png
from seglib.training.run_dir import RunDir

TINY_TRAIN = ["--profile", "smoke", "--image-size", "32", "--depth", "2", "--epochs", "1"]


def error_line(capsys) -> str:
    """The command's stderr, which must be exactly one line."""
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_truncated_model_is_named_as_truncated_not_missing(tmp_path, capsys):
    run = untrained_run(tmp_path / "run")
    model = RunDir(run).model_path
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # a kill -9 while saving
    images = write_square_dataset(tmp_path / "data", n=2) / "images"
    assert main(["predict", "--runs", str(run), "--images", str(images), "--out", str(tmp_path / "pred")]) == 2
    assert error_line(capsys).startswith(f"error: {model}: truncated or damaged model file")


def test_training_on_a_missing_dataset_says_so(tmp_path, capsys):
    missing = tmp_path / "no_such_data"
    assert main(["train", "--data", str(missing), "--structure", "left_thing", "--out", str(tmp_path / "run"),
                 *TINY_TRAIN]) == 2
    assert error_line(capsys) == f"error: {missing}: dataset folder not found"


def test_training_an_unknown_structure_names_the_ones_there_are(tmp_path, capsys):
    data = write_square_dataset(tmp_path / "data", n=4)
    assert main(["train", "--data", str(data), "--structure", "nope", "--out", str(tmp_path / "run"),
                 *TINY_TRAIN]) == 2
    assert error_line(capsys) == (f"error: {data}: no masks for structure 'nope' (neither masks/nope/ nor "
                                  "labels.json); structures in this dataset: left_thing, right_thing")
    assert not (tmp_path / "run").exists()


def test_an_empty_image_file_is_called_empty(tmp_path, capsys):
    data = write_square_dataset(tmp_path / "data", n=2)
    (data / "images" / "case0.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"case0.png: empty file \(0 bytes\)$"):
        read_image(data / "images" / "case0.png")
    assert main(["check", "--data", str(data)]) == 1
    assert f"error: {data / 'images' / 'case0.png'}: empty file (0 bytes)" in capsys.readouterr().out


def test_a_dataset_without_images_fails_check(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks" / "left_thing").mkdir(parents=True)
    assert main(["check", "--data", str(data)]) == 1
    assert (f"error: {data / 'images'}: no images (.png, .jpg, .jpeg, .tif, .tiff, .dcm) in the image folder"
            in capsys.readouterr().out)


def test_a_colour_mask_is_called_a_colour_image(tmp_path, capsys):
    data = write_square_dataset(tmp_path / "data", n=2)
    mask = data / "masks" / "left_thing" / "case0.png"
    red = np.zeros((32, 32, 3), np.uint8)
    red[read_mask(mask)] = (255, 0, 0)  # painted in red in an image editor
    mask.unlink()
    write_png(mask, red)
    with pytest.raises(DataError, match="case0.png: is a colour image; a mask must be grey"):
        read_mask(mask)
    assert main(["check", "--data", str(data)]) == 1
    problems = [line for line in capsys.readouterr().out.splitlines() if line.startswith("error:")]
    assert problems == [f"error: {mask}: is a colour image; a mask must be grey, with only 0 and 255 (or 0 and 1)"]


def test_ctrl_c_during_predict_writes_nothing_and_says_so(tmp_path):
    run = untrained_run(tmp_path / "run")
    images = tmp_path / "images"
    for i in range(2000):  # enough work to be interrupted mid-way, even on a loaded machine
        write_png(images / f"im{i:03d}.png", np.random.default_rng(i).integers(0, 255, (32, 32), dtype=np.uint8))
    command = [sys.executable, "-m", "seglib", "predict", "--runs", str(run), "--images", str(images),
               "--out", str(tmp_path / "pred")]
    # A background job ignores SIGINT, and so would its children; a handler here (reset to the default
    # in the child) makes the child take Ctrl-C as from a terminal.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".pred.seglib-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.splitlines()[-1] == "interrupted; nothing was written"
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "run"]


# --- issue #19 item 8: one line naming the file ---------------------------------------------------------

@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """What each writing command reads: a dataset, a run, a prediction folder, a metrics CSV, a labels source."""
    root = tmp_path_factory.mktemp("inputs")
    data = write_square_dataset(root / "data", n=4)
    untrained_run(root / "run")
    shutil.copytree(data / "masks", root / "pred" / "masks")
    pd.DataFrame({"id": ["case0"], "structure": ["left_thing"], "method": ["m"], "dice": [0.9], "hd95": [1.0]}
                 ).to_csv(root / "metrics.csv", index=False)
    write_png(root / "source" / "images" / "a.png", np.zeros((8, 8), np.uint8))
    write_png(root / "source" / "labels" / "a.png", np.full((8, 8), 5, np.uint8))
    (root / "source" / "labels.json").write_text('{"left_hip": 5}')
    return root


WRITING_COMMANDS = {
    "segment": lambda i, out: ["segment", "--runs", str(i / "run"), "--images", str(i / "data" / "images"),
                               "--out", out],
    "import": lambda i, out: ["import", "--from", "labels", "--data", str(i / "source"), "--out", out],
    "train": lambda i, out: ["train", "--data", str(i / "data"), "--structure", "left_thing", "--out", out,
                             "--no-mirror-flip", *TINY_TRAIN],
    "evaluate": lambda i, out: ["evaluate", "--pred", str(i / "pred"), "--data", str(i / "data"), "--out", out],
    "phantom": lambda i, out: ["phantom", "--out", out, "--n", "1", "--film-size", "64", "--workers", "1"],
    "report": lambda i, out: ["report", "--eval", str(i / "metrics.csv"), "--out", out, "--no-images"],
    "split": lambda i, out: ["split", "--data", str(i / "data"), "--out", out, "--test", "1", "--val", "1"],
    "export": lambda i, out: ["export", "--runs", str(i / "run"), "--out", out],
}


@pytest.mark.parametrize("command", WRITING_COMMANDS)
def test_an_output_under_a_file_is_named_in_one_line(inputs, tmp_path, capsys, command):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the output folder should be")
    out = blocker / "out"
    assert main(WRITING_COMMANDS[command](inputs, str(out))) == 2
    assert error_line(capsys) == f"error: {out}: cannot be written: {blocker} is a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


@pytest.mark.parametrize("command", WRITING_COMMANDS)
def test_an_unwritable_output_folder_is_named_in_one_line(inputs, tmp_path, capsys, monkeypatch, command):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_mkdir = os.mkdir

    def refused(path, *args, **kwargs):  # what a read-only folder does (root is exempt from chmod, not from this)
        if str(path).startswith(str(locked)):
            raise PermissionError(13, "Permission denied", str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", refused)
    out = locked / "new" / "out"
    assert main(WRITING_COMMANDS[command](inputs, str(out))) == 2
    line = error_line(capsys)
    assert line.startswith(f"error: {locked}") and "Permission denied (no permission to write there" in line
    assert not any(locked.iterdir())


def _png_header_only(path, width, height):
    """A PNG that declares width x height pixels (an image that size would take GBs to build)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_a_huge_png_is_called_too_large_not_damaged(tmp_path, capsys):
    huge = _png_header_only(tmp_path / "films" / "huge.png", 20000, 20000)
    with pytest.raises(DataError, match=r"huge\.png: image too large, not damaged: Image size \(400000000 pixels\) "
                                        r"exceeds limit of \d+ pixels; reduce it first"):
        read_image(huge)
    run = untrained_run(tmp_path / "run")
    assert main(["segment", "--runs", str(run), "--images", str(huge.parent), "--out", str(tmp_path / "out")]) == 2
    named, summary = capsys.readouterr().err.splitlines()  # the film, then how many failed and where they are listed
    assert named.startswith(f"error: {huge}: image too large, not damaged")
    assert "failed.csv" in summary


def test_a_symlink_loop_in_images_is_named_by_check_train_and_predict(tmp_path, capsys):
    data = write_square_dataset(tmp_path / "data", n=4)
    loop = data / "images" / "case9.png"
    os.symlink(loop, loop)
    assert main(["check", "--data", str(data)]) == 1
    assert f"error: {loop}: symbolic link loop" in capsys.readouterr().out.splitlines()
    assert main(["train", "--data", str(data), "--structure", "left_thing", "--out", str(tmp_path / "run"),
                 "--no-mirror-flip", *TINY_TRAIN]) == 2
    assert f"error: {loop}: symbolic link loop" in capsys.readouterr().err
    run = untrained_run(tmp_path / "tiny")
    assert main(["predict", "--runs", str(run), "--images", str(data / "images"), "--out", str(tmp_path / "p")]) == 2
    assert error_line(capsys) == f"error: {loop}: symbolic link loop"


@pytest.mark.parametrize("content, problem", [
    (b"", "empty file; expected a CSV table with a header line"),
    (b"id,structure,method,dice\ncase0,left_thing,caf\xe9,0.9\n", "not UTF-8 text; save it as UTF-8 CSV"),
    (b"id,structure,method,iou\ncase0,left_thing,m,0.9\n", "no 'dice' column (needed: id, structure, method, dice; "
                                                           "found: id, structure, method, iou)"),
    (b"id,structure,dice\ncase0,left_thing,0.9\n", "no 'method' column (needed: id, structure, method, dice; "
                                                   "found: id, structure, dice)"),
])
def test_a_metrics_csv_report_cannot_use_is_named(tmp_path, capsys, content, problem):
    table = tmp_path / "metrics.csv"
    table.write_bytes(content)
    assert main(["report", "--eval", str(table), "--out", str(tmp_path / "report")]) == 2
    assert error_line(capsys) == f"error: {table}: {problem}"
    assert not (tmp_path / "report").exists()


def test_baseline_subset_without_its_run_says_what_is_missing(tmp_path, capsys):
    images = write_square_dataset(tmp_path / "data", n=2) / "images"
    assert main(["baseline", "--method", "otsu", "--images", str(images), "--structure", "left_thing",
                 "--out", str(tmp_path / "out"), "--subset", "test"]) == 2
    assert error_line(capsys) == ("error: baseline: --subset test needs --runs RUN, the run whose split.csv "
                                  "names the images of each subset")


def test_an_evaluate_size_mismatch_names_both_files(tmp_path, capsys):
    data = write_square_dataset(tmp_path / "data", n=2)
    pred = tmp_path / "pred"
    shutil.copytree(data / "masks", pred / "masks")
    small = pred / "masks" / "left_thing" / "case1.png"
    small.unlink()
    write_png(small, np.zeros((16, 16), np.uint8))
    assert main(["evaluate", "--pred", str(pred), "--data", str(data), "--out", str(tmp_path / "m.csv")]) == 2
    truth = data / "masks" / "left_thing" / "case1.png"
    assert error_line(capsys) == f"error: {small}: prediction is 16x16 but its ground truth {truth} is 32x32"
