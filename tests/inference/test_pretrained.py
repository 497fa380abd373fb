"""The pelvis model that ships with seglib: it loads after a plain `import seglib`, segments films of poses
and pelves it never saw well, `segment --model pelvis` writes what a user's own runs write, and
`train --init pelvis` starts from it."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seglib.cli.commands import main
from seglib.data.io import read_image, read_mask
from seglib.models.shipped import pretrained_run
from seglib.phantom.dataset import write_atlas_renderings, write_phantom_dataset
from seglib.training.run_dir import RunDir

ATLAS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "pelvis_atlas"
HIPS = ("left_hip", "right_hip")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def unseen_films(tmp_path_factory) -> Path:
    """Films the model never saw: shapes and poses drawn with a seed its training films did not use."""
    return write_phantom_dataset(tmp_path_factory.mktemp("unseen") / "films", n=4, size=384, seed=991)


def test_the_shipped_model_loads_with_safe_mode_after_a_plain_import_seglib():
    shown = subprocess.run([sys.executable, "-c", "import seglib; p = seglib.pretrained('pelvis'); print(p.structures)"],
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert "left_hip" in shown.stdout and "right_hip" in shown.stdout


def test_the_shipped_weights_segment_films_of_unseen_poses_well(unseen_films):
    import seglib

    predictor = seglib.pretrained("pelvis")
    for path in sorted((unseen_films / "images").glob("*.png")):
        probabilities = predictor.probabilities(read_image(path), tta=True)
        for hip in HIPS:
            truth = read_mask(unseen_films / "masks" / hip / path.name)
            assert probabilities[hip].shape == truth.shape
            assert _dice(probabilities[hip] >= 0.5, truth) >= 0.93, f"{hip} of {path.name}"


@pytest.mark.skipif(not (ATLAS / "left").is_dir(), reason="the pelvis atlas is only in the team's workspace")
def test_the_shipped_weights_segment_a_held_out_real_pelvis(tmp_path):
    """Atlas subject 45 is held out of the model's training films (seglib.workflow.build_pelvis_model.HELD_OUT)."""
    films = write_atlas_renderings(tmp_path / "held_out", ATLAS, ["45"], poses=2, size=384, seed=5)
    predictor = __import__("seglib").pretrained("pelvis")
    for path in sorted((films / "images").glob("*.png")):
        probabilities = predictor.probabilities(read_image(path))
        for hip in HIPS:
            assert _dice(probabilities[hip] >= 0.5, read_mask(films / "masks" / hip / path.name)) >= 0.93


def test_segment_model_pelvis_writes_label_maps_in_which_the_hips_are_whole(unseen_films, tmp_path):
    out = tmp_path / "segmented"
    assert main(["segment", "--model", "pelvis", "--images", str(unseen_films / "images"), "--out", str(out),
                 "--quiet"]) == 0
    labels = json.loads((out / "labels.json").read_text())
    assert set(labels) == {"left_hip", "right_hip", "sacrum", "left_femur", "right_femur"}
    for path in sorted((out / "labels").glob("*.png")):
        label_map = read_image(path)
        for hip in HIPS:  # the femoral heads and the sacrum overlap the hips in projection: the hips stay whole
            assert _dice(label_map == labels[hip], read_mask(unseen_films / "masks" / hip / path.name)) >= 0.93
    assert {"overlays", "areas.csv"} <= {p.name for p in out.iterdir()}


def test_every_shipped_model_is_a_run_folder_and_its_fusion_names_its_structures():
    from seglib.config import PRETRAINED_MODELS
    from seglib.models import PRETRAINED_FUSION

    assert set(PRETRAINED_FUSION) <= set(PRETRAINED_MODELS)
    for name in PRETRAINED_MODELS:
        structures = pretrained_run(name).config().structures
        assert set(PRETRAINED_FUSION.get(name, {}).get("priority", [])) <= set(structures), name


def test_an_unknown_model_name_is_refused_in_one_line_naming_those_that_ship():
    import seglib
    from seglib.models import fusion_options

    for call in (pretrained_run, fusion_options, seglib.pretrained):
        with pytest.raises(ValueError, match="^unknown pretrained model 'knee'; seglib ships pelvis$"):
            call("knee")


def test_seglib_pretrained_stays_the_function_once_the_models_package_is_imported():
    """The shipped models' package is seglib.models: a package named `pretrained` would replace the function."""
    code = ("import seglib, seglib.models.shipped, seglib.inference.segment; "
            "print(callable(seglib.pretrained), seglib.pretrained is seglib.inference.segment.pretrained, "
            "callable(seglib.segment))")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert shown.stdout.split() == ["True", "True", "True"], shown.stderr


def test_float16_weights_predict_what_the_float32_network_does(tmp_path):
    shipped = RunDir(pretrained_run("pelvis"))
    model = shipped.load_model()
    copy = RunDir(tmp_path / "copy").write(shipped.config())
    copy.save_float16_weights(model)
    x = np.random.default_rng(0).normal(size=(1, *model.input_shape[1:])).astype(np.float32)
    assert np.abs(copy.load_model().predict(x, verbose=0) - model.predict(x, verbose=0)).max() < 1e-6


@pytest.mark.slow
def test_train_init_pelvis_starts_from_the_shipped_weights_and_the_demo_profile_does_so_by_itself(tmp_path):
    """One epoch at a learning rate too small to learn anything: a run started from the shipped model, asked for
    or by the demo profile's init auto, already segments the hip; one started from random weights does not."""
    films = write_phantom_dataset(tmp_path / "films", n=8, size=256, seed=992)
    common = ["train", "--data", str(films), "--structure", "left_hip", "--epochs", "1", "--learning-rate", "1e-9"]
    assert main([*common, "--profile", "smoke", "--init", "pelvis", "--out", str(tmp_path / "fine")]) == 0
    assert main([*common, "--profile", "demo", "--out", str(tmp_path / "demo")]) == 0
    assert main([*common, "--profile", "demo", "--init", "none", "--image-size", "192",
                 "--out", str(tmp_path / "scratch")]) == 0
    fine, demo, scratch = (RunDir(tmp_path / name) for name in ("fine", "demo", "scratch"))
    assert fine.config().image_size == pretrained_run("pelvis").config().image_size  # the shape follows the model
    assert demo.config().init == "pelvis"  # the run records what it started from
    assert fine.summary()["best_val_dice"] >= 0.8 and demo.summary()["best_val_dice"] >= 0.8
    assert scratch.summary()["best_val_dice"] < 0.5


def test_the_demo_profile_fine_tunes_only_structures_the_shipped_model_predicts():
    """Hips start from the pelvis model, at its working size, with a tenth of the learning rate and fewer epochs;
    a network asked for in another shape, or init none start from random weights as the profile says (other
    structures: tests/training/test_transfer.py)."""
    from seglib.config import profile_config

    hip, scratch = profile_config("demo", structures=("left_hip",)), profile_config("demo", init="none")
    assert (hip.init, hip.image_size) == ("pelvis", pretrained_run("pelvis").config().image_size)
    assert hip.learning_rate == scratch.learning_rate / 10 and hip.epochs < scratch.epochs
    for options in (dict(structures=("left_hip",), depth=5),):
        config = profile_config("demo", **options)
        assert (config.init, config.image_size, config.epochs) == ("", scratch.image_size, scratch.epochs), options
    assert profile_config("demo", structures=("left_hip",), image_size=256).image_size == 256  # given stays


def test_train_init_refuses_a_network_of_another_shape_in_one_line(phantom_dataset, tmp_path, capsys):
    status = main(["train", "--data", str(phantom_dataset), "--structure", "left_hip", "--profile", "smoke",
                   "--init", "pelvis", "--base-filters", "8", "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err.strip()
    assert status != 0
    assert "--base-filters 8" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_notebook_00_segments_a_users_folder_without_truth_and_measures_only_what_has_truth(unseen_films, tmp_path,
                                                                                           capsys):
    import shutil

    from seglib.workflow.pretrained_notebook import PretrainedSegmentation

    films = tmp_path / "my_films"  # two films and the left hip's masks only, as a user's folder might be
    for name in ("pelvis_0000.png", "pelvis_0001.png"):
        for part in ("images", "masks/left_hip"):
            (films / part).mkdir(parents=True, exist_ok=True)
            shutil.copy(unseen_films / part / name, films / part / name)
    settings = {"films": str(films), "out": str(tmp_path / "out"), "profile": "smoke", "tta": False}
    pelvis = PretrainedSegmentation(settings)
    assert sorted(p.name for p in (pelvis.segment() / "labels").iterdir()) == ["pelvis_0000.png", "pelvis_0001.png"]
    accuracy = pelvis.accuracy()
    assert list(accuracy.index) == ["left_hip"] and accuracy.loc["left_hip", "dice"] >= 0.93
    assert pelvis.check_accuracy(accuracy) is True
    assert "left_hip at mean Dice" in capsys.readouterr().out
    shutil.rmtree(films / "masks")
    assert PretrainedSegmentation(settings).accuracy() is None


def test_the_same_film_in_memory_as_uint8_int64_or_float_gets_the_same_masks(unseen_films):
    """Integers are read by their values (an 8-bit film handed over as int64 stays 8-bit), floats in [0, 1]."""
    import seglib

    predictor = seglib.pretrained("pelvis")
    film16 = read_image(unseen_films / "images" / "pelvis_0000.png")
    film8 = np.round(film16 / 257).astype(np.uint8)
    reference = predictor.probabilities(film8)
    for same in (film8.astype(np.int64), film8.astype(np.int32), film8 / 255.0, (film8 / 255).astype(np.float32),
                 film8[..., None], np.dstack([film8] * 3)):
        probabilities = predictor.probabilities(same)
        for structure, probability in reference.items():
            differing = ((probabilities[structure] >= 0.5) != (probability >= 0.5)).sum()
            assert differing <= 4, f"{structure} of a {same.dtype} {same.shape} film: {differing} pixels differ"
    deep = predictor.probabilities(film16)
    as_int64 = predictor.probabilities(film16.astype(np.int64))
    assert all(((deep[s] >= 0.5) != (as_int64[s] >= 0.5)).sum() <= 4 for s in deep)


@pytest.mark.parametrize("pixels, problem", [(np.full((64, 64), 1.5), r"\[0, 1\].*found 1\.5"),
                                             (np.full((64, 64), -0.1), r"\[0, 1\].*found -0\.1"),
                                             (np.full((64, 64), np.nan), "NaN"),
                                             (np.full((64, 64), np.inf, np.float32), "infinity"),
                                             (np.full((64, 64), -3), "0-255.*0-65535.*found -3"),
                                             (np.full((64, 64), 70000), "0-65535.*found 70000"),
                                             (np.zeros((64, 64, 2)), "2D grey or RGB")])
def test_a_film_in_memory_outside_the_accepted_types_is_refused_in_one_line(pixels, problem):
    import seglib
    from seglib.data.io import DataError

    with pytest.raises(DataError, match=f"^film: .*{problem}") as refused:
        seglib.pretrained("pelvis").probabilities(pixels)
    assert len(str(refused.value).splitlines()) == 1


@pytest.mark.parametrize("film, reason", [(np.full((256, 256), 900, np.uint16), "blank"),
                                          (np.ones((1, 1), np.uint8), "too small"),
                                          (np.random.default_rng(0).integers(0, 255, (3, 5000), np.uint8), "too small"),
                                          (np.random.default_rng(0).integers(0, 255, (40, 500), np.uint8), "a strip"),
                                          (np.pad(np.full((8, 40), 255, np.uint8), 124, constant_values=30),
                                           "nearly blank")])  # a label burnt into a blank film
def test_a_film_that_cannot_be_segmented_gets_empty_maps_and_one_warning(film, reason, capsys):
    import seglib

    probabilities = seglib.pretrained("pelvis").probabilities(film, name="scan.png")
    assert set(probabilities) == {"left_hip", "right_hip", "sacrum", "left_femur", "right_femur"}
    assert all(p.shape == film.shape and not p.any() for p in probabilities.values())
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: scan.png: ") and reason in warning[0]


def test_real_films_of_any_depth_and_the_longest_formats_are_segmentable(unseen_films):
    """The limits of seglib.inference.film_checks stay far from real films: 8-bit, 10 bits in a 16-bit file,
    a film stitched to 1 : 4 like a long-leg film, a thumbnail."""
    from seglib.inference.film_checks import degenerate_reason

    film = read_image(unseen_films / "images" / "pelvis_0001.png")
    for same in (film, film >> 6, np.round(film / 257).astype(np.uint8), np.vstack([film] * 4), film[::8, ::8]):
        assert degenerate_reason(same) is None, same.shape


def test_a_10_bit_film_in_a_16_bit_file_is_no_blank_film():
    """Contrast is measured against the levels the film's bits hold, not the file's 65535 (review, #29 case 7)."""
    from seglib.inference.film_checks import degenerate_reason

    rng = np.random.default_rng(0)
    ramp = 235 + 395 * np.linspace(0, 1, 256)[None, :] + rng.normal(0, 5, (256, 256))  # soft tissue to bone
    assert degenerate_reason(ramp.clip(0, 1023).astype(np.uint16)) is None
    flat = 30000 + rng.normal(0, 20, (256, 256))  # a flat 15-bit exposure: noise only
    assert degenerate_reason(flat.astype(np.uint16)).startswith("nearly blank")
