import numpy as np
import pytest

from seglib.inference.postprocessing import STEPS, choose_postprocessing, fuse_options

DOCUMENTED_SPECK_FRACTION = 0.001  # "drop components under 0.1 % of the image" (the module's docstring)


def _case(truth_left, prob_left):
    right = np.zeros_like(truth_left)
    right[-4:, -4:] = True  # 16 px: above 0.1 % of images up to 100x100, so never a "small object"
    return ({"left_x": prob_left.astype(float), "right_x": right.astype(float)},
            {"left_x": truth_left, "right_x": right})


def _row(tried, **steps):
    """mean_dice of the tried step set with exactly `steps` on."""
    on = {step: steps.get(step, False) for step in STEPS}
    match = (tried[list(on)] == list(on.values())).all(axis=1)
    return tried.loc[match, "mean_dice"].item()


def test_fuse_options_maps_steps_to_fuse_keywords():
    assert fuse_options({step: False for step in STEPS}) == {
        "min_object_fraction": 0.0, "largest_component": False, "fill_holes": False}
    assert fuse_options({"remove_small_objects": True, "fill_holes": True}) == {
        "min_object_fraction": DOCUMENTED_SPECK_FRACTION, "largest_component": False, "fill_holes": True}


def test_fuse_options_rejects_unknown_steps():
    with pytest.raises(ValueError, match="largest_components"):
        fuse_options({"largest_components": True})


def test_tried_table_has_a_column_per_step_and_starts_with_all_off():
    truth = np.zeros((20, 20), bool)
    truth[2:10, 2:10] = True
    _, tried = choose_postprocessing([_case(truth, truth)])
    assert list(tried.columns) == [*STEPS, "mean_dice", "chosen"]
    assert len(tried) == 1 + len(STEPS)
    assert not tried.iloc[0][list(STEPS)].any()
    assert tried["chosen"].tolist() == [True, False, False, False]  # a perfect prediction needs no step


def test_a_step_that_lowers_validation_dice_is_left_out():
    truth = np.zeros((20, 20), bool)
    truth[2:8, 2:8] = truth[12:16, 2:6] = True  # two real parts, e.g. a lung split by a shadow
    options, tried = choose_postprocessing([_case(truth, truth)])
    assert options == {"min_object_fraction": 0.0, "largest_component": False, "fill_holes": False}
    assert _row(tried, largest_component=True) < _row(tried)


def test_a_step_that_removes_false_islands_is_kept():
    truth = np.zeros((20, 20), bool)
    truth[2:10, 2:10] = True
    prediction = truth.copy()
    prediction[15:17, 2:4] = True  # a stray island
    options, tried = choose_postprocessing([_case(truth, prediction)])
    assert options["largest_component"] is True
    assert tried["mean_dice"].max() == 1.0


def test_small_object_removal_is_chosen_when_the_largest_component_would_cut_a_real_part():
    truth = np.zeros((100, 100), bool)  # 0.1 % of the image = 10 px
    truth[10:40, 10:40] = truth[60:90, 10:38] = True  # two real parts of similar size
    prediction = truth.copy()
    prediction[60:62, 80:82] = True  # a 4-px stray speck
    options, tried = choose_postprocessing([_case(truth, prediction)])
    assert options["min_object_fraction"] == DOCUMENTED_SPECK_FRACTION
    assert options["largest_component"] is False
    assert _row(tried) < _row(tried, remove_small_objects=True) == 1.0


def test_the_fusion_strategy_used_on_test_images_is_the_one_validated():
    # Two structures that truly overlap: only multilabel fusion can score a perfect Dice.
    left, right = np.zeros((20, 20), bool), np.zeros((20, 20), bool)
    left[2:12, 2:12], right[6:16, 6:16] = True, True
    case = ({"left_x": left * 0.9, "right_x": right * 0.8}, {"left_x": left, "right_x": right})
    _, exclusive = choose_postprocessing([case])
    _, multilabel = choose_postprocessing([case], strategy="multilabel")
    assert multilabel["mean_dice"].iloc[0] == 1.0 > exclusive["mean_dice"].iloc[0]
