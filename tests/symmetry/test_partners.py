import numpy as np
import pytest

from seglib.symmetry.partners import flip_with_partner_swap, mirror_targets, partner_of, patient_side


def test_partners_are_declared_by_side_and_midline_structures_are_their_own():
    assert partner_of("left_hip") == "right_hip" and partner_of("right_lung") == "left_lung"
    assert partner_of("sacrum") == "sacrum"
    assert partner_of("cardiomediastinum") is None
    assert mirror_targets(["left_hip", "sacrum"]) == ("right_hip", "sacrum")
    assert mirror_targets(["left_lung", "cardiomediastinum"]) is None
    assert [patient_side(s) for s in ("left_hip", "right_clavicle", "sacrum", "left_")] == ["left", "right", None, None]


def test_flip_swaps_partner_masks_and_a_double_flip_is_the_identity():
    rng = np.random.default_rng(0)
    image = rng.random((6, 8))
    masks = {"left_hip": rng.random((6, 8)) > 0.5, "right_hip": rng.random((6, 8)) > 0.5}
    flipped_image, flipped = flip_with_partner_swap(image, masks)
    np.testing.assert_array_equal(flipped["right_hip"], masks["left_hip"][:, ::-1])
    np.testing.assert_array_equal(flipped["left_hip"], masks["right_hip"][:, ::-1])
    back_image, back = flip_with_partner_swap(flipped_image, flipped)
    np.testing.assert_array_equal(back_image, image)
    for name in masks:
        np.testing.assert_array_equal(back[name], masks[name])


def test_flip_refuses_structures_without_a_partner():
    with pytest.raises(ValueError, match="cardiomediastinum: no declared mirror partner"):
        flip_with_partner_swap(np.zeros((2, 2)), {"cardiomediastinum": np.zeros((2, 2), bool)})
