import math

import numpy as np
import pytest

from seglib.data.io import read_mask, write_png
from seglib.evaluation.laterality import laterality_confusion, laterality_table
from seglib.phantom.dataset import write_phantom_dataset
from seglib.symmetry.midline import Midline

VERTICAL = Midline(x=9.5, tilt_deg=0.0)  # between columns 9 and 10 of a 20-pixel-wide image


def mask_of(shape, rows, cols) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows, cols] = True
    return mask


def test_a_square_straddling_the_midline_is_half_on_the_wrong_side():
    square = mask_of((20, 20), slice(5, 15), slice(5, 15))
    nothing = np.zeros((20, 20), bool)
    for side in ("left", "right"):
        result = laterality_confusion(square, nothing, VERTICAL, side)
        assert result == {"wrong_side_fraction": 0.5, "in_partner_fraction": 0.0}


def test_the_patients_left_is_the_images_right():
    on_image_right = mask_of((20, 20), slice(5, 15), slice(12, 18))
    nothing = np.zeros((20, 20), bool)
    assert laterality_confusion(on_image_right, nothing, VERTICAL, "left")["wrong_side_fraction"] == 0.0
    assert laterality_confusion(on_image_right, nothing, VERTICAL, "right")["wrong_side_fraction"] == 1.0


def test_sides_follow_a_tilted_midline():
    # Upper end leaning 45 degrees to the image's right: on row 0 the axis is at column 20, so
    # columns 12-15 of the top row lie on its LEFT although they are right of x = 10.
    tilted = Midline(x=10.0, tilt_deg=45.0)
    top_right = mask_of((21, 21), slice(0, 1), slice(12, 16))
    assert laterality_confusion(top_right, np.zeros((21, 21), bool), tilted, "left")["wrong_side_fraction"] == 1.0


def test_an_empty_prediction_has_no_side():
    nothing = np.zeros((20, 20), bool)
    result = laterality_confusion(nothing, mask_of((20, 20), slice(0, 5), slice(0, 5)), VERTICAL, "left")
    assert math.isnan(result["wrong_side_fraction"]) and math.isnan(result["in_partner_fraction"])


def test_a_swapped_prediction_lies_entirely_in_the_partner():
    right_structure = mask_of((20, 20), slice(4, 16), slice(2, 8))  # patient's right: image's left
    result = laterality_confusion(right_structure, right_structure, VERTICAL, "left")
    assert result == {"wrong_side_fraction": 1.0, "in_partner_fraction": 1.0}


@pytest.mark.parametrize("side", ["patient_left", "", None])
def test_unknown_sides_are_refused(side):
    with pytest.raises(ValueError, match="side"):
        laterality_confusion(np.zeros((4, 4), bool), np.zeros((4, 4), bool), VERTICAL, side)


def test_table_uses_the_manifest_midline_and_spots_swapped_hips(tmp_path):
    data = write_phantom_dataset(tmp_path / "data", n=2, size=64)
    for image_id in ("pelvis_0000", "pelvis_0001"):
        for structure, partner in (("left_hip", "right_hip"), ("right_hip", "left_hip")):
            swapped = read_mask(data / "masks" / partner / f"{image_id}.png")
            write_png(tmp_path / "pred" / "masks" / structure / f"{image_id}.png", swapped.astype(np.uint8) * 255)
    table = laterality_table(tmp_path / "pred", data, ["left_hip", "right_hip"])
    assert len(table) == 4 and set(table["midline_source"]) == {"manifest"}
    assert (table["in_partner_fraction"] == 1.0).all()
    assert (table["wrong_side_fraction"] > 0.9).all()


def write_mirror_shapes(root, n: int = 2):
    """A dataset without a manifest: per image a mirror pair of bright L shapes. Each shape is
    asymmetric on its own, so the only mirror axis is the image's centre (two squares would
    each be a mirror axis of their own)."""
    left_thing = mask_of((32, 32), slice(8, 24), slice(20, 28)) | mask_of((32, 32), slice(8, 12), slice(28, 31))
    masks = {"left_thing": left_thing, "right_thing": left_thing[:, ::-1]}
    image = (left_thing | masks["right_thing"]).astype(np.uint8) * 200
    for i in range(n):
        write_png(root / "images" / f"case{i}.png", image)
        for structure, mask in masks.items():
            write_png(root / "masks" / structure / f"case{i}.png", mask.astype(np.uint8) * 255)
    return root


def test_table_estimates_the_midline_without_a_manifest(tmp_path):
    data = write_mirror_shapes(tmp_path / "data")
    table = laterality_table(data, data, ["left_thing", "right_thing"])  # the truth as prediction
    assert len(table) == 4 and set(table["midline_source"]) == {"estimated"}
    assert (table["wrong_side_fraction"] == 0.0).all() and (table["in_partner_fraction"] == 0.0).all()


def test_table_refuses_structures_without_a_side(tmp_path):
    with pytest.raises(ValueError, match="no patient side"):
        laterality_table(tmp_path, tmp_path, ["sacrum"])
