"""The threshold chosen on the validation split removes an outline drawn too wide, and the predictor applies it."""

import json
import re

import numpy as np
import pytest
from conftest import write_square_dataset
from scipy.ndimage import binary_dilation

from seglib.config import profile_config
from seglib.data.io import DataError
from seglib.data.layout import load_records
from seglib.training.calibration import choose_thresholds, recalibrate
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
    # 0.65 and 0.7 both drop the band; the one nearer 0.5 wins. A structure without its partner has no flip TTA.
    assert chosen == {"threshold": {"left_thing": 0.65}}
    table = json.loads((tmp_path / "calibration.json").read_text())["mean_dice"]["left_thing"]
    assert table["0.65"] == pytest.approx(1.0) and table["0.5"] < 0.9
    assert RunDir(tmp_path).thresholds() == RunDir(tmp_path).thresholds(tta=True) == {"left_thing": 0.65}


class LeaningModel:
    """A network whose outlines lean to the image's right: each structure (the bright square on its side of the
    image) is drawn with a band of 0.6 one pixel to its right. On the mirrored film the lean points the other
    way, so the flip-TTA mean of the two passes leaves the band at 0.325 on both sides."""

    def predict_on_batch(self, batch):
        bright = batch[0, ..., 0] > 0
        half = bright.shape[1] // 2
        sides = [bright.copy(), bright.copy()]  # left_thing on the image's right, right_thing on its left
        sides[0][:, :half], sides[1][:, half:] = False, False
        maps = [np.where(m, 0.9, np.where(np.roll(m, 1, axis=1) & ~m, 0.6, 0.05)) for m in sides]
        return np.stack(maps, axis=-1)[None].astype(np.float32)


def test_flip_tta_gets_its_own_threshold_chosen_on_the_mean_of_the_passes(tmp_path):
    records = load_records(write_square_dataset(tmp_path / "d", n=2), ["left_thing", "right_thing"])
    config = profile_config("smoke", structures=("left_thing", "right_thing"), image_size=32, side_aware=False)
    RunDir(tmp_path).write(config)
    chosen = choose_thresholds(LeaningModel(), config, tmp_path, records)
    # one pass needs 0.65 to drop its band; the TTA mean holds the band at 0.325, below every threshold from 0.35
    assert chosen == {"threshold": {"left_thing": 0.65, "right_thing": 0.65},
                      "threshold_tta": {"left_thing": 0.5, "right_thing": 0.5}}
    stored = json.loads((tmp_path / "calibration.json").read_text())
    assert stored["mean_dice_tta"]["left_thing"]["0.5"] == pytest.approx(1.0)
    assert stored["mean_dice"]["left_thing"]["0.5"] < 0.96  # one pass at 0.5 keeps its band
    assert RunDir(tmp_path).thresholds(tta=True) == {"left_thing": 0.5, "right_thing": 0.5}


def test_the_predictor_applies_the_threshold_of_its_tta_setting(tmp_path):
    from conftest import untrained_run

    from seglib.inference.predictor import Predictor

    run = RunDir(untrained_run(tmp_path / "run", ("left_thing", "right_thing"), side_aware=False))
    run.calibration_path.write_text(json.dumps({"threshold": {"left_thing": 0.65, "right_thing": 0.4},
                                                "threshold_tta": {"left_thing": 0.55}}))
    plain = {"left_thing": np.full((4, 4), 0.6, np.float32), "right_thing": np.full((4, 4), 0.45, np.float32)}
    mirrored = {"left_thing": np.full((4, 4), 0.39, np.float32), "right_thing": np.full((4, 4), 0.6, np.float32)}
    film = np.random.default_rng(0).integers(0, 255, (8, 8), dtype=np.uint8)
    single, _ = Predictor(run).film_maps(plain, mirrored, film, tta=False)
    assert {s: bool(m.min() >= 0.5) for s, m in single.items()} == {"left_thing": False, "right_thing": True}
    averaged, passes = Predictor(run).film_maps(plain, mirrored, film, tta=True)
    # left_thing: the passes' mean 0.6 against its TTA threshold 0.55; right_thing, which has no TTA threshold:
    # the mean 0.42 against its plain threshold 0.4
    assert {s: bool(m.min() >= 0.5) for s, m in averaged.items()} == {"left_thing": True, "right_thing": True}
    assert averaged["left_thing"].max() == pytest.approx(0.5 + 0.05 * 0.5 / 0.45)
    assert passes.plain["left_thing"].max() == pytest.approx(0.6 * 0.5 / 0.65)  # each pass by the plain threshold


def test_a_run_without_calibration_uses_one_half_and_a_broken_file_is_named(tmp_path):
    assert RunDir(tmp_path).thresholds() == {}
    (tmp_path / "calibration.json").write_text("{}")
    with pytest.raises(ValueError, match="calibration.json: not a seglib calibration file"):
        RunDir(tmp_path).thresholds()


def test_recalibrate_adds_tta_thresholds_to_a_finished_run_from_its_validation_split(tmp_path):
    from conftest import untrained_run

    data = write_square_dataset(tmp_path / "data", n=4)
    run = RunDir(untrained_run(tmp_path / "run", ("left_thing", "right_thing"), side_aware=False))
    (run.path / "split.csv").write_text("id,split\ncase0,train\ncase1,train\ncase2,val\ncase3,val\n")
    with pytest.raises(DataError, match="not a finished training run"):
        recalibrate(run, data)
    run.write_summary({"epochs": 1})
    run.calibration_path.write_text('{"threshold": {"left_thing": 0.6}}')  # as an older run has it
    chosen = recalibrate(run, data)  # the run's config names another data folder: the dataset has moved
    assert set(chosen) == {"threshold", "threshold_tta"}
    assert set(chosen["threshold_tta"]) == {"left_thing", "right_thing"}
    assert "2 validation images" in json.loads(run.calibration_path.read_text())["chosen_on"]
    assert run.thresholds(tta=True) == chosen["threshold_tta"]
    (run.path / "split.csv").write_text("id,split\ncase0,train\ncase2,val\ncase7,val\n")
    with pytest.raises(DataError, match=r"split.csv: 1 validation image\(s\) not in .*data, e.g. case7$"):
        recalibrate(run, data)


@pytest.mark.slow
def test_a_patch_trained_run_calibrates_its_threshold_and_segments_whole_films(tmp_path):
    from seglib.data.io import read_image
    from seglib.inference.predictor import Predictor
    from seglib.training.fit import train

    data = write_square_dataset(tmp_path / "d", n=8, size=64)
    config = profile_config("smoke", data=str(data), structures=("left_thing",), image_size=64, patch_size=32,
                            depth=2, base_filters=4, epochs=2, mirror_flip=False)
    run = train(config, tmp_path / "run", verbose=0)
    chosen = RunDir(run).thresholds()
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


def test_a_tta_threshold_that_is_no_probability_is_refused_also_for_a_prediction_without_tta(tmp_path):
    from conftest import untrained_run

    from seglib.inference.predictor import Predictor

    run = RunDir(untrained_run(tmp_path / "run"))
    run.calibration_path.write_text('{"threshold": {"left_thing": 0.6}, "threshold_tta": {"left_thing": 1.5}}')
    with pytest.raises(ValueError, match=rf"^{re.escape(str(run.calibration_path))}: threshold_tta of left_thing: "):
        Predictor(run)


def test_a_calibration_threshold_of_a_structure_the_run_does_not_predict_is_refused(tmp_path, capsys):
    from conftest import untrained_run, write_square_dataset

    from seglib.cli import main

    run = RunDir(untrained_run(tmp_path / "run"))
    run.calibration_path.write_text('{"threshold": {"left_thing": 0.6, "left_thnig": 0.4}}')  # a typo: ignored before
    images = write_square_dataset(tmp_path / "data", n=1) / "images"
    assert main(["predict", "--runs", str(run), "--images", str(images), "--out", str(tmp_path / "out")]) == 2
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
