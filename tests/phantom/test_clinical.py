"""Films as they come from the clinic (seglib.phantom.clinical): each condition shows in the film,
metal is brighter than bone and lies where the manifest says, shields lie where radiographers put
them, the truth stays anatomical (masks unchanged by metal and lead, cut only with the field), and
the manifest names what each film got."""

from __future__ import annotations

import csv
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from seglib.phantom.clinical import CONDITION_FIELDS, draw_plan
from seglib.phantom.dataset import phantom_rng, write_phantom_dataset
from seglib.phantom.exposure import APPEARANCES, Appearance
from seglib.phantom.render import STRUCTURES, Pose, make_pelvis

SIZE = 128
# A clinical look whose conditions are (all but) never drawn: the same films without any condition.
PLAIN = Appearance(collimation=0.0, marker=0.0, **{name: 1e-12 for name in CONDITION_FIELDS})
POSE = Pose(tilt=3.0, rotation=-2.0, obliquity=1.0, hip_height=180, source_distance=1100, field_of_view=430,
            centre_offset=(0.0, 30.0))
VOCABULARY = {f"{kind}_{side}" for kind in ("tha", "dhs", "cannulated", "si_screw") for side in ("left", "right")} | {
    "plate_symphysis", "plate_left", "plate_right", "shield_female", "shield_male", *CONDITION_FIELDS[2:]}


def only(**probabilities) -> Appearance:
    return replace(PLAIN, **probabilities)


def find(look: Appearance, wanted, seed: int = 0) -> int:
    """The first film index whose conditions satisfy `wanted` (plans are cheap to draw alone)."""
    for index in range(500):
        plan = draw_plan(phantom_rng(seed, index), look, fixed_pose=True)
        if wanted(plan.conditions):
            return index
    raise AssertionError("no such film in 500")


def pair(look: Appearance, index: int, seed: int = 0, pose: Pose | None = POSE, size: int = SIZE):
    """The same film with the look's conditions and without any."""
    return (make_pelvis(phantom_rng(seed, index), size, look, pose=pose),
            make_pelvis(phantom_rng(seed, index), size, PLAIN, pose=pose))


def changed(clinical, plain, counts: int = 8000) -> np.ndarray:
    return np.abs(clinical.image.astype(float) - plain.image) > counts


def saturated(clinical, plain) -> np.ndarray:
    """Where the film turned white (the window of the rest may shift a little: it excludes metal and lead)."""
    return (clinical.image > 65000) & (plain.image < 64000)


def brightest_change(clinical, plain, share: float = 0.005) -> np.ndarray:
    difference = clinical.image.astype(float) - plain.image
    return difference > np.quantile(difference, 1 - share)


# --- Each condition shows; the truth stays anatomical -------------------------------------------


@pytest.mark.parametrize("condition", [name for name in CONDITION_FIELDS if name != "wide_pose"])
def test_each_condition_shows_in_the_film_and_leaves_the_anatomy_alone(condition):
    look = only(**{condition: 1.0})
    size = 512 if condition == "low_dose" else SIZE   # quantum noise shows in small pixels
    clinical, plain = pair(look, index=find(look, lambda c: True, seed=3), seed=3, size=size)
    assert clinical.conditions and plain.conditions == ()
    assert changed(clinical, plain, 3000).mean() > 0.005, f"{condition} does not show"
    if condition == "low_dose":
        assert detail_share(clinical.image) > detail_share(plain.image) + 0.01, "fewer photons, more noise"
    for name in STRUCTURES:
        if condition == "tight_field":   # the field cuts the masks, nothing else does
            assert not np.any(clinical.masks[name] & ~plain.masks[name]), name
        else:
            assert np.array_equal(clinical.masks[name], plain.masks[name]), name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masks_are_identical_with_and_without_metal_and_lead(seed):
    look = only(implants=1.0, shield=1.0, collimation=0.8, marker=0.8)
    index = find(look, lambda c: any(name.startswith("tha") for name in c), seed)
    with_metal = make_pelvis(phantom_rng(seed, index), SIZE, look, pose=POSE)
    without = make_pelvis(phantom_rng(seed, index), SIZE, only(collimation=0.8, marker=0.8), pose=POSE)
    assert changed(with_metal, without).mean() > 0.01, "the hardware and the shield show"
    for name in STRUCTURES:   # a resected femoral head, a pubis behind lead: still bone
        assert np.array_equal(with_metal.masks[name], without.masks[name]), name


# --- Metal -------------------------------------------------------------------------------------


def test_a_stem_in_the_femur_is_brighter_than_bone():
    look = only(implants=1.0)
    index = find(look, lambda c: c == ("tha_left",))
    film, plain = pair(look, index)
    metal = saturated(film, plain) & film.masks["left_femur"]
    bone = np.any([film.masks[name] for name in ("right_hip", "right_femur", "sacrum")], axis=0)
    assert metal.sum() > 100
    assert np.median(film.image[metal]) > np.percentile(film.image[bone], 95)
    assert np.mean(film.image[metal] > 65000) > 0.8 > 0.1 > np.mean(film.image[bone] > 65000), "metal saturates"


@pytest.mark.parametrize("kind", ["tha", "dhs", "cannulated", "si_screw"])
def test_hardware_lies_on_the_side_the_manifest_names(kind):
    look = only(implants=1.0)
    for side, on_image_right in (("left", True), ("right", False)):
        index = find(look, lambda c, side=side: c == (f"{kind}_{side}",))
        film, plain = pair(look, index)
        columns = np.argwhere(brightest_change(film, plain))[:, 1]
        assert (np.median(columns) > film.midline_x) == on_image_right, (kind, side)


def test_a_symphysis_plate_lies_across_the_midline():
    look = only(implants=1.0)
    film, plain = pair(look, find(look, lambda c: c == ("plate_symphysis",)))
    columns = np.argwhere(brightest_change(film, plain))[:, 1]
    assert columns.min() < film.midline_x < columns.max()


# --- Lead ----------------------------------------------------------------------------------------


def symphysis_row(film) -> float:
    hips = film.masks["left_hip"] | film.masks["right_hip"]
    near = hips[:, int(film.midline_x) - 3:int(film.midline_x) + 4]
    return float(np.argwhere(near)[:, 0].mean())


@pytest.mark.parametrize("index", range(3))
def test_shields_lie_over_the_pubis_for_women_and_below_the_symphysis_for_men(index):
    look = only(shield=1.0)
    female, plain = pair(look, find(look, lambda c: c == ("shield_female",), seed=index), seed=index)
    lead = saturated(female, plain)
    assert np.any(lead & (female.masks["left_hip"] | female.masks["right_hip"])), "over the pubis and medial hips"
    assert lead.mean() > 0.01, "lead saturates"
    male, plain = pair(look, find(look, lambda c: c == ("shield_male",), seed=index), seed=index)
    assert np.argwhere(saturated(male, plain))[:, 0].mean() > symphysis_row(male), "below the symphysis"


# --- Processing, field, pose ----------------------------------------------------------------------


def detail_share(image: np.ndarray) -> float:
    image = image.astype(float)
    return float((image - ndimage.gaussian_filter(image, 2)).std() / image.std())


def test_unsharp_masking_sharpens_and_equalisation_flattens():
    look = only(unsharp=1.0)
    sharpened = [pair(look, index) for index in range(3)]
    assert np.mean([detail_share(a.image) - detail_share(b.image) for a, b in sharpened]) > 0.02
    look = only(equalised=1.0)
    trend = [(ndimage.gaussian_filter(a.image.astype(float), 12).std() / a.image.std(),
              ndimage.gaussian_filter(b.image.astype(float), 12).std() / b.image.std())
             for a, b in (pair(look, index) for index in range(3))]
    assert np.mean([a - b for a, b in trend]) < -0.02


def test_a_tight_field_cuts_the_masks_with_the_field():
    look = only(tight_field=1.0)
    cut_bones = 0
    for index in range(3):
        film, plain = pair(look, index)
        for name in STRUCTURES:
            removed = plain.masks[name] & ~film.masks[name]
            cut_bones += removed.any()
            if removed.any():   # what left the mask lies outside the field: the blank of the collimator
                blank = np.unique(film.image[removed])
                assert len(blank) == 1 and np.mean(film.image[film.masks[name]] == blank[0]) < 0.01, name
    assert cut_bones >= 3


def test_wide_poses_go_beyond_the_usual_ranges():
    look = only(wide_pose=1.0)
    films = [make_pelvis(phantom_rng(0, index), 64, look) for index in range(3)]
    assert all("wide_pose" in film.conditions for film in films)
    assert all(abs(film.pose.tilt) > 10 and abs(film.pose.rotation) > 8 for film in films)
    given = make_pelvis(phantom_rng(0, 0), 64, look, pose=POSE)   # a given pose is kept
    assert given.pose == POSE and "wide_pose" not in given.conditions


# --- The look and the manifest -------------------------------------------------------------------


def test_the_clinical_look_is_deterministic_and_names_only_known_conditions():
    look = APPEARANCES["clinical"]
    first, second = (make_pelvis(phantom_rng(4, 1), 64, look) for _ in range(2))
    assert np.array_equal(first.image, second.image) and first.conditions == second.conditions
    drawn = [draw_plan(phantom_rng(4, index), look).conditions for index in range(200)]
    assert set().union(*drawn) <= VOCABULARY
    with_implants = np.mean([any(c.split("_")[0] in ("tha", "dhs", "cannulated", "si", "plate") for c in d)
                             for d in drawn])
    assert 0.35 < with_implants < 0.65, "implants come with the look's probability"
    assert draw_plan(phantom_rng(4, 0), APPEARANCES["wide"]) is None, "the other looks stay clean"


def test_the_manifest_names_what_each_film_got(tmp_path):
    out = write_phantom_dataset(tmp_path / "clinical", n=4, size=48, seed=2, appearance=APPEARANCES["clinical"])
    with open(out / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[-1] == "conditions"
    for index, row in enumerate(rows):
        film = make_pelvis(phantom_rng(2, index), 48, APPEARANCES["clinical"])
        assert row["conditions"] == ";".join(film.conditions)
    assert any(row["conditions"] for row in rows)
