"""Nothing is skipped silently (issue #10, case 6): JPEG images are read, any other file is named
on stderr, training repeats check's warnings, evaluate refuses missing predictions unless told,
and a split file's unknown id is an error."""

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
from conftest import write_square_dataset
from PIL import Image

from seglib.cli import main
from seglib.training.run_dir import RunDir

TINY_TRAIN = ["--profile", "smoke", "--image-size", "32", "--depth", "2", "--base-filters", "4", "--epochs", "1",
              "--no-mirror-flip"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained on a dataset whose images folder also holds notes.txt; its stderr."""
    root = tmp_path_factory.mktemp("skips")
    data = write_square_dataset(root / "data", n=4)
    (data / "images" / "notes.txt").write_text("scanned on the old machine")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--data", str(data), "--structure", "left_thing", "--out", str(root / "run"),
                     *TINY_TRAIN]) == 0
    return data, root / "run", stderr.getvalue()


@pytest.mark.slow
def test_training_repeats_the_warnings_of_check(trained):
    data, _, stderr = trained
    assert f"warning: {data / 'images' / 'notes.txt'}: not an image file seglib reads" in stderr


@pytest.fixture
def mixed_images(trained, tmp_path):
    """case0.png, case1.jpg (a JPEG export) and notes.txt."""
    data, _, _ = trained
    images = tmp_path / "images"
    images.mkdir()
    (images / "case0.png").write_bytes((data / "images" / "case0.png").read_bytes())
    Image.open(data / "images" / "case1.png").save(images / "case1.jpg", quality=95)
    (images / "notes.txt").write_text("not an image")
    return images


@pytest.mark.slow
def test_predict_reads_jpeg_and_names_the_file_it_skips(trained, mixed_images, tmp_path, capsys):
    _, run, _ = trained
    assert main(["predict", "--runs", str(run), "--images", str(mixed_images), "--out", str(tmp_path / "pred")]) == 0
    assert sorted(p.name for p in (tmp_path / "pred" / "masks" / "left_thing").iterdir()) == ["case0.png", "case1.png"]
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    expected = f"warning: {mixed_images / 'notes.txt'}: not an image file seglib reads (.png, .jpg, .jpeg, .tif, .tiff, .dcm); skipped"
    assert warnings == [expected]


@pytest.mark.slow
def test_segment_reads_jpeg_and_names_the_file_it_skips(trained, mixed_images, tmp_path, capsys):
    _, run, _ = trained
    assert main(["segment", "--runs", str(run), "--images", str(mixed_images), "--out", str(tmp_path / "seg")]) == 0
    assert sorted(p.name for p in (tmp_path / "seg" / "labels").iterdir()) == ["case0.png", "case1.png"]
    assert "notes.txt: not an image file seglib reads" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_refuses_missing_predictions_unless_allowed_and_then_lists_them(trained, tmp_path, capsys):
    data, run, _ = trained
    pred = tmp_path / "pred"
    assert main(["predict", "--runs", str(run), "--images", str(data / "images"), "--out", str(pred)]) == 0
    for image_id in ("case1", "case3"):
        (pred / "masks" / "left_thing" / f"{image_id}.png").unlink()
    capsys.readouterr()
    evaluate = ["evaluate", "--pred", str(pred), "--data", str(data), "--out", str(tmp_path / "metrics.csv")]
    assert main(evaluate) == 2
    assert (f"error: {pred / 'masks' / 'left_thing'}: no prediction for 2 of 4 images (case1, case3); "
            "pass --allow-missing to score the others") in capsys.readouterr().err.splitlines()
    assert not (tmp_path / "metrics.csv").exists()
    assert main([*evaluate, "--allow-missing"]) == 0
    assert (f"warning: {pred / 'masks' / 'left_thing'}: no prediction for 2 of 4 images, not scored: case1, case3"
            in capsys.readouterr().err)
    assert sorted(pd.read_csv(tmp_path / "metrics.csv")["id"]) == ["case0", "case2"]


@pytest.mark.slow
def test_predictions_of_a_subset_are_complete_when_every_selected_image_has_one(trained, tmp_path):
    data, run, _ = trained
    pred = tmp_path / "pred"
    assert main(["predict", "--runs", str(run), "--images", str(data / "images"), "--out", str(pred),
                 "--subset", "test"]) == 0
    assert main(["evaluate", "--pred", str(pred), "--data", str(data), "--out", str(tmp_path / "m.csv")]) == 0
    test_ids = [i for i, name in RunDir(run).split().items() if name == "test"]
    assert pd.read_csv(tmp_path / "m.csv")["id"].tolist() == test_ids


@pytest.mark.slow
@pytest.mark.parametrize("unknown", ["case9", "../../etc/passwd"])
def test_a_split_file_with_an_unknown_id_is_an_error_naming_file_and_id(trained, tmp_path, capsys, unknown):
    data, _, _ = trained
    split = tmp_path / "split.csv"
    rows = [f"case{i},{name}" for i, name in enumerate(["train", "train", "val", "test"])]
    split.write_text("\n".join(["id,split", *rows, f"{unknown},train"]) + "\n")
    code = main(["train", "--data", str(data), "--structure", "left_thing", "--out", str(tmp_path / "run"),
                 "--split-file", str(split), *TINY_TRAIN])
    assert code == 2
    assert f"error: {split}: id {unknown!r} is not an image of the dataset (1 unknown ids)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_grey_jpeg_reads_as_grey_pixels(tmp_path):
    from seglib.data.io import read_image

    pixels = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (16, 1))
    Image.fromarray(pixels).save(tmp_path / "film.jpeg", quality=100)
    image = read_image(tmp_path / "film.jpeg")
    assert image.shape == (16, 32) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - pixels).max() <= 2  # lossy, but the same picture
