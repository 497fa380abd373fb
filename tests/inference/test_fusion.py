import numpy as np
import pytest

from seglib.inference.fusion import fuse

SHAPE = (20, 20)


def prob_map(value, rows, cols, shape=SHAPE):
    """A probability map that is `value` on the rectangle rows x cols and 0 elsewhere."""
    prob = np.zeros(shape, dtype=np.float32)
    prob[rows, cols] = value
    return prob


def overlapping_hips(left_value=0.6, right_value=0.8):
    """Left claims columns 2-11, right columns 8-17: columns 8-11 are contested."""
    left = prob_map(0.9, slice(5, 15), slice(2, 12))
    left[5:15, 8:12] = left_value
    right = prob_map(right_value, slice(5, 15), slice(8, 18))
    return {"left_hip": left, "right_hip": right}


def raw(probabilities, **options):
    """Fusion without cleaning, to see the resolution step alone."""
    return fuse(probabilities, largest_component=False, fill_holes=False, **options)


def test_contested_pixels_go_to_the_more_confident_structure():
    result = raw(overlapping_hips(left_value=0.6, right_value=0.8))
    assert result.labels == {"left_hip": 1, "right_hip": 2}
    assert np.all(result.label_map[5:15, 8:12] == 2)
    assert np.all(result.label_map[5:15, 2:8] == 1)
    assert not (result.masks["left_hip"] & result.masks["right_hip"]).any()


def test_contested_map_marks_pixels_claimed_twice_before_resolution():
    result = raw(overlapping_hips())
    expected = np.zeros(SHAPE, dtype=bool)
    expected[5:15, 8:12] = True
    assert np.array_equal(result.contested, expected)


def test_pixels_below_threshold_are_background():
    unsure = {"left_hip": prob_map(0.4, slice(5, 15), slice(5, 15))}
    assert not raw(unsure).label_map.any()
    assert raw(unsure, threshold=0.3).label_map[5:15, 5:15].all()


def test_label_map_is_uint8_with_labels_in_input_order():
    result = raw({"right_hip": prob_map(0.9, slice(0, 5), slice(0, 5)),
                  "left_hip": prob_map(0.9, slice(10, 15), slice(10, 15))})
    assert result.label_map.dtype == np.uint8
    assert result.labels == {"right_hip": 1, "left_hip": 2}
    assert set(np.unique(result.label_map)) == {0, 1, 2}


def test_priority_strategy_gives_contested_pixels_to_the_listed_structure():
    # Left is less confident in the overlap, but has priority.
    result = raw(overlapping_hips(left_value=0.6, right_value=0.8),
                 strategy="priority", priority=["left_hip"])
    assert np.all(result.label_map[5:15, 8:12] == 1)
    assert np.all(result.label_map[5:15, 12:18] == 2)  # right keeps what it alone claims


def test_multilabel_keeps_the_overlap_in_both_masks():
    result = raw(overlapping_hips(left_value=0.6, right_value=0.8), strategy="multilabel")
    overlap = result.masks["left_hip"] & result.masks["right_hip"]
    assert np.array_equal(overlap, result.contested)
    assert np.all(result.label_map[overlap] == 2)  # the label map shows the more probable one


def test_largest_component_removes_a_stray_island():
    prob = prob_map(0.9, slice(2, 12), slice(2, 12))
    prob[16:18, 16:18] = 0.9  # a 4-pixel false positive elsewhere
    kept = fuse({"left_hip": prob})
    assert not kept.masks["left_hip"][16:18, 16:18].any()
    assert kept.masks["left_hip"][2:12, 2:12].all()
    assert fuse({"left_hip": prob}, largest_component=False).masks["left_hip"][16:18, 16:18].all()


def test_min_object_fraction_removes_components_below_that_share_of_the_image():
    prob = prob_map(0.9, slice(2, 4), slice(2, 4), shape=(10, 10))  # 4 of 100 pixels
    assert not fuse({"left_hip": prob}, min_object_fraction=0.05).masks["left_hip"].any()  # < 5 px
    assert fuse({"left_hip": prob}, min_object_fraction=0.04).masks["left_hip"].sum() == 4  # not < 4 px


def test_min_object_fraction_is_exact_despite_float_noise():
    prob = prob_map(0.9, slice(0, 1), slice(0, 7), shape=(10, 10))  # 7 pixels; 0.07 * 100 > 7.0
    assert fuse({"left_hip": prob}, min_object_fraction=0.07).masks["left_hip"].sum() == 7


def test_min_object_fraction_scales_with_the_image():
    small = prob_map(0.9, slice(2, 4), slice(2, 4), shape=(10, 10))  # 4 % of the image
    large = prob_map(0.9, slice(4, 8), slice(4, 8), shape=(20, 20))  # same share, 16 pixels
    for prob in (small, large):
        assert fuse({"left_hip": prob}, min_object_fraction=0.04).masks["left_hip"].any()
        assert not fuse({"left_hip": prob}, min_object_fraction=0.05).masks["left_hip"].any()


@pytest.mark.parametrize("bad_fraction", [-0.1, 1.0, 5, np.nan])
def test_min_object_fraction_outside_unit_interval_is_rejected(bad_fraction):
    with pytest.raises(ValueError, match=r"min_object_fraction.*\[0, 1\)"):
        fuse(overlapping_hips(), min_object_fraction=bad_fraction)


def bone_with_holes():
    """A 30x30 bone with a 2x2 speckle hole and a 10x10 'obturator foramen'."""
    prob = prob_map(0.9, slice(5, 35), slice(5, 35), shape=(40, 40))
    prob[9:11, 9:11] = 0.1  # 4-pixel hole: a segmentation speckle
    prob[18:28, 18:28] = 0.1  # 100-pixel hole: a real foramen
    return prob


def test_fill_holes_fills_speckles_but_keeps_the_obturator_foramen():
    mask = fuse({"left_hip": bone_with_holes()}, max_hole_area=64).masks["left_hip"]
    assert mask[9:11, 9:11].all()
    assert not mask[18:28, 18:28].any()


def test_fill_holes_can_be_switched_off():
    mask = fuse({"left_hip": bone_with_holes()}, fill_holes=False).masks["left_hip"]
    assert not mask[9:11, 9:11].any()


def test_background_open_to_the_image_edge_is_not_a_hole():
    prob = np.full((8, 8), 0.9, dtype=np.float32)
    prob[0, 3:5] = 0.0  # a notch at the top edge, 2 pixels
    assert not fuse({"left_hip": prob}).masks["left_hip"][0, 3:5].any()


def test_filling_a_hole_does_not_take_pixels_another_structure_won():
    left = bone_with_holes()
    left[9:11, 9:11] = 0.0
    right = prob_map(0.9, slice(9, 10), slice(9, 11), shape=(40, 40))  # fills half the speckle
    result = fuse({"left_hip": left, "right_hip": right})
    assert result.masks["right_hip"][9, 9:11].all()
    assert result.masks["left_hip"][10, 9:11].all()  # the free half is filled
    assert not (result.masks["left_hip"] & result.masks["right_hip"]).any()


def test_pixels_removed_by_cleaning_become_background_not_the_runner_up():
    left = prob_map(0.9, slice(2, 12), slice(2, 8))
    left[15:17, 15:17] = 0.9  # left's island, where right is less confident
    right = prob_map(0.7, slice(2, 18), slice(12, 18))
    result = fuse({"left_hip": left, "right_hip": right})
    assert np.all(result.label_map[15:17, 15:17] == 0)


def test_the_label_map_holds_exactly_the_fused_masks():
    result = raw(overlapping_hips())
    for name, mask in result.masks.items():
        assert np.array_equal(result.label_map == result.labels[name], mask)


def test_shape_mismatch_names_the_structure_and_shapes():
    probabilities = {"left_hip": np.zeros((20, 20)), "right_hip": np.zeros((20, 18))}
    with pytest.raises(ValueError, match=r"'right_hip'.*\(20, 18\).*\(20, 20\)"):
        fuse(probabilities)


@pytest.mark.parametrize("bad_value", [1.5, -0.1, np.nan])
def test_values_outside_unit_interval_are_rejected(bad_value):
    prob = np.zeros((4, 4))
    prob[0, 0] = bad_value
    with pytest.raises(ValueError, match=r"'left_hip'.*\[0, 1\]"):
        fuse({"left_hip": prob})


def test_no_structures_is_an_error():
    with pytest.raises(ValueError, match="at least one"):
        fuse({})


def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(ValueError, match="argmax, priority, multilabel"):
        fuse(overlapping_hips(), strategy="vote")


def test_priority_must_name_known_structures():
    with pytest.raises(ValueError, match="left_hip"):
        fuse(overlapping_hips(), strategy="priority", priority=["sacrum"])
