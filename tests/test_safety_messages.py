"""Messages that used to mislead (issue #10, case 7): each is now one line naming the file and what
is wrong; Ctrl-C during predict says that nothing was written."""

import signal
import subprocess
import sys
import time

import numpy as np
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
    assert main(["predict", "--run", str(run), "--images", str(images), "--out", str(tmp_path / "pred")]) == 2
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
    assert main(["check", str(data)]) == 1
    assert f"error: {data / 'images' / 'case0.png'}: empty file (0 bytes)" in capsys.readouterr().out


def test_a_dataset_without_images_fails_check(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks" / "left_thing").mkdir(parents=True)
    assert main(["check", str(data)]) == 1
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
    assert main(["check", str(data)]) == 1
    problems = [line for line in capsys.readouterr().out.splitlines() if line.startswith("error:")]
    assert problems == [f"error: {mask}: is a colour image; a mask must be grey, with only 0 and 255 (or 0 and 1)"]


def test_ctrl_c_during_predict_writes_nothing_and_says_so(tmp_path):
    run = untrained_run(tmp_path / "run")
    images = tmp_path / "images"
    for i in range(400):  # enough work to be interrupted mid-way
        write_png(images / f"im{i:03d}.png", np.full((32, 32), i % 250, np.uint8))
    command = [sys.executable, "-m", "seglib", "predict", "--run", str(run), "--images", str(images),
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
