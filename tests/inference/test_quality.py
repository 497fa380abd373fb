"""quality.csv: every segmented film says how far to trust each of its masks (seglib.inference.quality).
A reviewer reads the flagged films first, so broken films must come last and degenerate ones be flagged."""

import csv

import numpy as np
import pytest
from conftest import untrained_run

from seglib.data.io import write_png
from seglib.inference.predictor import predict_folder
from seglib.inference.quality import QUALITY_COLUMNS, QualityModel, film_quality, structure_features
from seglib.inference.segment import pretrained
from seglib.models.shipped import pretrained_run
from seglib.phantom.dataset import phantom_rng
from seglib.phantom.render import make_pelvis

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


def test_a_lead_shield_over_a_hip_lowers_its_predicted_dice_and_flags_it(predictor):
    """The bone behind lead is still bone, but its outline there is a guess: the same film with a gonadal
    shield (flat, saturated) over the lower half of the left hip must be trusted less."""
    sample = make_pelvis(phantom_rng(991, 0), 256)
    rows, columns = np.nonzero(sample.masks["left_hip"])
    shielded = sample.image.copy()
    shielded[(rows.min() + rows.max()) // 2:rows.max() + 4, columns.min():columns.max() + 1] = 65535
    clean, behind = (next(r for r in film_quality(predictor, film)[1] if r["structure"] == "left_hip")
                     for film in (sample.image, shielded))
    assert behind["predicted_dice"] < clean["predicted_dice"] - 0.03 and (behind["flag"], clean["flag"]) == (1, 0)
    assert behind["occluded"] > 0.2 and clean["occluded"] == 0


def _square_mask():
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 16:48] = 1.0
    return {"left_hip": mask}


def _evidence(levels):
    maps = _square_mask()
    return structure_features(maps, None, maps, levels=levels)["left_hip"]


def test_the_occlusion_is_read_from_the_film_lead_counts_text_does_not():
    film = np.random.default_rng(0).integers(60, 200, (64, 64)).astype(np.uint8)  # anatomy: textured
    lead = film.copy()
    lead[32:60, 8:56] = 255  # a flat saturated plate over the square's lower half
    text = film.copy()
    text[20:44:4, 10:54] = 255  # lines of burnt-in text: as bright, but thin
    assert _evidence(film)["occluded"] == 0 and _evidence(text)["occluded"] == 0
    assert 0.3 < _evidence(lead)["occluded"] < 0.8


def test_the_outline_along_an_unexposed_band_counts_as_the_films_edge():
    film = np.random.default_rng(0).integers(60, 200, (64, 64)).astype(np.uint8)
    assert _evidence(film)["edge_share"] == 0
    film[:, 40:] = 250  # collimated: nothing to the right of column 40, the square cut there
    assert 0.1 < _evidence(film)["edge_share"] < 0.4 and _evidence(film)["occluded"] == 0


def test_a_quality_model_fitted_before_the_occlusion_evidence_still_predicts(tmp_path):
    import json

    stored = json.loads((pretrained_run("pelvis").path / "quality.json").read_text())
    for terms in (stored, stored["single_pass"]):
        del terms["coefficients"]["occluded"]
    (tmp_path / "quality.json").write_text(json.dumps(stored))
    model = QualityModel.load(tmp_path / "quality.json")
    features = {"tta_dice": 0.99, "soft_dice": 0.99, "pair_log_ratio": 0.0, "fragments": 0.0, "edge_share": 0.0,
                "occluded": 0.5}
    assert 0.9 < model.predicted_dice(features) == model.predicted_dice({**features, "occluded": 0.0}) < 1


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
    (lambda q: {**q, "coefficients": {**q["coefficients"], "sharpness": 1.0}}, "coefficients: sharpness is not"),
])
def test_a_hand_edited_quality_model_is_refused_before_any_work_naming_file_and_field(tmp_path, capsys, edit, field):
    import json
    import shutil

    from seglib.cli.commands import main

    run = tmp_path / "run"
    shutil.copytree(pretrained_run("pelvis").path, run)
    (run / "quality.json").write_text(json.dumps(edit(json.loads((run / "quality.json").read_text()))))
    write_png(tmp_path / "images" / "film.png", np.zeros((64, 64), np.uint8))
    assert main(["predict", "--runs", str(run), "--images", str(tmp_path / "images"), "--out", str(tmp_path / "p")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{run / 'quality.json'}: cannot read the quality model" in error and field in error
    assert not (tmp_path / "p").exists()
