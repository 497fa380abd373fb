"""quality.csv: every segmented film says how far to trust each of its masks (seglib.inference.quality).
A reviewer reads the flagged films first, so broken films must come last and degenerate ones be flagged."""

import csv

import numpy as np
import pytest
from conftest import untrained_run

from seglib.data.io import write_png
from seglib.inference.predictor import predict_folder, pretrained
from seglib.inference.quality import QUALITY_COLUMNS, film_quality
from seglib.phantom.dataset import phantom_rng
from seglib.phantom.render import make_pelvis
from seglib.training.run_dir import pretrained_run

HIPS = ("left_hip", "right_hip")


@pytest.fixture(scope="module")
def predictor():
    return pretrained("pelvis")


@pytest.fixture(scope="module")
def clean_films():
    """Four films of 256 px in the look the model knows (seeds its training films did not use)."""
    return [make_pelvis(phantom_rng(991, index), 256).image for index in range(4)]


def _broken(films):
    """What a reviewer must see first: drowned in noise, a field cut to one corner, a film the wrong way up,
    and a blank one."""
    film = films[0]
    noisy = np.clip(film + np.random.default_rng(0).normal(0, 0.4 * 65535, film.shape), 0, 65535).astype(np.uint16)
    return {"noise": noisy, "cut": film[:110, :110].copy(), "upside_down": film[::-1].copy(),
            "blank": np.full(film.shape, 1000, np.uint16)}


def _hip_quality(predictor, image, name):
    _, rows = film_quality(predictor, image, image_id=name)
    return min(r["predicted_dice"] for r in rows if r["structure"] in HIPS), rows


def test_broken_films_rank_below_every_clean_film_and_are_flagged(predictor, clean_films):
    clean = {f"clean{i}": _hip_quality(predictor, f, f"clean{i}") for i, f in enumerate(clean_films)}
    broken = {name: _hip_quality(predictor, f, name) for name, f in _broken(clean_films).items()}
    worst_clean = min(score for score, _ in clean.values())
    assert {name: score for name, (score, _) in broken.items() if score >= worst_clean} == {}
    for name, (_, rows) in broken.items():
        assert all(r["flag"] == 1 for r in rows if r["structure"] in HIPS), name
    assert all(r["flag"] == 0 for _, rows in clean.values() for r in rows if r["structure"] in HIPS)


def test_predicted_dice_lies_in_0_1_and_the_evidence_is_given(predictor, clean_films):
    _, rows = film_quality(predictor, clean_films[1], tta=True)
    assert [r["structure"] for r in rows] == list(predictor.structures)
    for row in rows:
        assert 0.0 <= row["predicted_dice"] <= 1.0
        assert 0.9 <= row["tta_dice"] <= 1.0 and 0.9 <= row["soft_dice"] <= 1.0
        assert row["estimator"] == "fitted (pelvis)"


@pytest.fixture(scope="module")
def predicted(predictor, clean_films, tmp_path_factory):
    """predict over two good films and three that cannot be segmented."""
    root = tmp_path_factory.mktemp("quality")
    images = {"good0": clean_films[2], "good1": clean_films[3], "blank": np.zeros((256, 256), np.uint16),
              "tiny": np.full((1, 1), 30000, np.uint16), "strip": clean_films[2][:20].copy()}
    for name, image in images.items():
        write_png(root / "images" / f"{name}.png", image)
    return predict_folder(pretrained_run("pelvis"), root / "images", root / "out")


def _read(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_predict_writes_one_quality_row_per_image_and_structure(predicted):
    rows = _read(predicted / "quality.csv")
    assert list(rows[0]) == QUALITY_COLUMNS
    assert sorted((r["id"], r["structure"]) for r in rows) == sorted(
        (i, s) for i in ("good0", "good1", "blank", "tiny", "strip")
        for s in ("left_hip", "right_hip", "sacrum", "left_femur", "right_femur"))
    assert all(0.0 <= float(r["predicted_dice"]) <= 1.0 for r in rows)


def test_degenerate_films_get_predicted_dice_0_a_flag_and_their_reason(predicted):
    rows = _read(predicted / "quality.csv")
    for row in rows:
        if row["id"] in ("blank", "tiny", "strip"):
            assert (float(row["predicted_dice"]), row["flag"]) == (0.0, "1"), row
            assert row["warning"].split()[0] in ("blank", "nearly", "too", "a"), row
        else:
            assert row["warning"] == "" and float(row["predicted_dice"]) > 0.9, row


def test_a_run_without_its_own_quality_model_uses_the_pelvis_default_and_says_so(tmp_path):
    from seglib.inference.predictor import Predictor

    run = untrained_run(tmp_path / "run", ("left_thing",))  # no mirror partner: no flipped pass either
    image = (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8)
    _, rows = film_quality(Predictor(run), image)
    assert [r["structure"] for r in rows] == ["left_thing"]
    assert rows[0]["estimator"].startswith("default (pelvis coefficients)") and "single pass" in rows[0]["estimator"]
    assert rows[0]["tta_dice"] == "" and 0.0 <= rows[0]["predicted_dice"] <= 1.0


@pytest.mark.parametrize("edit, field", [
    (lambda q: {**q, "version": 2}, "expected an object with the fields"),
    (lambda q: [q], "expected an object with the fields"),
    (lambda q: {**q, "threshold": "0.9"}, "threshold '0.9'"),
    (lambda q: {**q, "coefficients": {**q["coefficients"], "tta_dice": "big"}}, "tta_dice 'big'"),
    (lambda q: {**q, "single_pass": None}, "single_pass.coefficients"),
])
def test_a_hand_edited_quality_model_is_refused_before_any_work_naming_file_and_field(tmp_path, capsys, edit, field):
    import json
    import shutil

    from seglib.cli.commands import main

    run = tmp_path / "run"
    shutil.copytree(pretrained_run("pelvis").path, run)
    (run / "quality.json").write_text(json.dumps(edit(json.loads((run / "quality.json").read_text()))))
    write_png(tmp_path / "images" / "film.png", np.zeros((64, 64), np.uint8))
    assert main(["predict", "--run", str(run), "--images", str(tmp_path / "images"), "--out", str(tmp_path / "p")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{run / 'quality.json'}: cannot read the quality model" in error and field in error
    assert not (tmp_path / "p").exists()
