"""The threshold chosen on the validation split removes an outline drawn too wide, and the predictor applies it."""

import json
import re

import numpy as np
import pytest
from conftest import write_square_dataset
from scipy.ndimage import binary_dilation

from seglib.config import profile_config
from seglib.data.layout import load_records
from seglib.training.calibration import calibrated, choose_thresholds, run_thresholds
from seglib.training.run_dir import RunDir


class TooWideModel:
    """Probability 0.9 inside the true mask and 0.6 on a one-pixel band around it: at 0.5 the outline is
    one pixel too wide everywhere, as a Dice-trained network tends to draw it."""

    def __init__(self, truth):
        band = binary_dilation(truth) & ~truth
        self.map = np.where(truth, 0.9, np.where(band, 0.6, 0.05)).astype(np.float32)

    def predict_on_batch(self, batch):
        return self.map[None, ..., None]


def test_the_validation_threshold_trims_a_band_drawn_too_wide(tmp_path):
    records = load_records(write_square_dataset(tmp_path / "d", n=2), ["left_thing"])
    truth = records[0].masks["left_thing"].read() > 0
    config = profile_config("smoke", structures=("left_thing",), image_size=32, side_aware=False)
    RunDir(tmp_path).write(config)
    chosen = choose_thresholds(TooWideModel(truth), config, tmp_path, records)
    assert chosen == {"left_thing": 0.65}  # 0.65 and 0.7 both drop the band; the one nearer 0.5 wins
    table = json.loads((tmp_path / "calibration.json").read_text())["mean_dice"]["left_thing"]
    assert table["0.65"] == pytest.approx(1.0) and table["0.5"] < 0.9
    assert run_thresholds(tmp_path) == chosen


def test_calibrated_probabilities_put_the_chosen_threshold_at_one_half():
    p = np.array([0.0, 0.3, 0.65, 0.8, 1.0], np.float32)
    np.testing.assert_allclose(calibrated(p, 0.65), [0.0, 0.3 * 0.5 / 0.65, 0.5, 0.5 + 0.15 * 0.5 / 0.35, 1.0],
                               rtol=1e-6)
    assert calibrated(p, 0.5) is p  # an uncalibrated run's maps pass unchanged


def test_a_run_without_calibration_uses_one_half_and_a_broken_file_is_named(tmp_path):
    assert run_thresholds(tmp_path) == {}
    (tmp_path / "calibration.json").write_text("{}")
    with pytest.raises(ValueError, match="calibration.json: not a seglib calibration file"):
        run_thresholds(tmp_path)


@pytest.mark.slow
def test_a_patch_trained_run_calibrates_its_threshold_and_segments_whole_films(tmp_path):
    from seglib.data.io import read_image
    from seglib.inference.predictor import Predictor
    from seglib.training.fit import train

    data = write_square_dataset(tmp_path / "d", n=8, size=64)
    config = profile_config("smoke", data=str(data), structures=("left_thing",), image_size=64, patch_size=32,
                            depth=2, base_filters=4, epochs=2, mirror_flip=False)
    run = train(config, tmp_path / "run", verbose=0)
    chosen = run_thresholds(run)
    assert set(chosen) == {"left_thing"} and 0.3 <= chosen["left_thing"] <= 0.7
    film = read_image(load_records(data, ["left_thing"])[0].image)
    maps = Predictor(run).probabilities(film)
    assert maps["left_thing"].shape == (64, 64)


# Thresholds that are no probability strictly between 0 and 1, as a hand-edited calibration.json holds them:
# 1.5 and Infinity emptied every mask, -0.2 flooded the film, NaN emptied every mask, 1.0, 0 and true divided by 0.
BAD_THRESHOLDS = ["1.5", "Infinity", "-0.2", "NaN", "1.0", "0", "true", '"0.6"', "null"]


@pytest.mark.parametrize("text", BAD_THRESHOLDS)
def test_a_calibration_threshold_that_is_no_probability_is_refused_naming_the_file_and_structure(tmp_path, text):
    from conftest import untrained_run

    from seglib.inference.predictor import Predictor

    run = RunDir(untrained_run(tmp_path / "run"))
    run.calibration_path.write_text(f'{{"threshold": {{"left_thing": {text}}}}}')
    with pytest.raises(ValueError, match=rf"^{re.escape(str(run.calibration_path))}: threshold of left_thing: .* is "
                                         r"not allowed; expected a probability between 0 and 1, both excluded$"):
        Predictor(run)


def test_a_calibration_threshold_of_a_structure_the_run_does_not_predict_is_refused(tmp_path, capsys):
    from conftest import untrained_run, write_square_dataset

    from seglib.cli import main

    run = RunDir(untrained_run(tmp_path / "run"))
    run.calibration_path.write_text('{"threshold": {"left_thing": 0.6, "left_thnig": 0.4}}')  # a typo: ignored before
    images = write_square_dataset(tmp_path / "data", n=1) / "images"
    assert main(["predict", "--run", str(run), "--images", str(images), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {run.calibration_path}: threshold of left_thnig, which the run does not predict"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("threshold", [float("nan"), -1, 0, 1.0, 1.5, float("inf"), True])
def test_every_entry_point_refuses_a_threshold_that_is_no_probability_before_writing(tmp_path, threshold):
    # one rule (seglib.config.checked_threshold) for predict, fuse and segment; predict.json never holds NaN
    from conftest import untrained_run, write_square_dataset

    from seglib.inference.fusion import fuse
    from seglib.inference.predictor import fuse_folder, predict_folder
    from seglib.inference.segment import segment_folder

    run = untrained_run(tmp_path / "run")
    images = write_square_dataset(tmp_path / "data", n=1) / "images"
    expected = r"threshold: .* is not allowed; expected a probability between 0 and 1, both excluded"
    for name, write in {"predict": lambda out: predict_folder(run, images, out, threshold=threshold),
                        "fuse": lambda out: fuse_folder(run, images, out, threshold=threshold),
                        "segment": lambda out: segment_folder(run, images, out, threshold=threshold)}.items():
        with pytest.raises(ValueError, match=expected):
            write(tmp_path / name)
        assert not (tmp_path / name).exists()
    with pytest.raises(ValueError, match=expected):
        fuse({"left_thing": np.full((4, 4), 0.7, np.float32)}, threshold=threshold)
