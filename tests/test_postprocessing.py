import numpy as np

from seglib.postprocessing import choose_postprocessing


def _case(truth_left, prob_left):
    right = np.zeros_like(truth_left)
    right[-3:, -3:] = True
    return ({"left_x": prob_left.astype(float), "right_x": right.astype(float)},
            {"left_x": truth_left, "right_x": right})


def test_a_step_that_lowers_validation_dice_is_left_out():
    truth = np.zeros((20, 20), bool)
    truth[2:8, 2:8] = truth[12:16, 2:6] = True  # two real parts, e.g. a lung split by a shadow
    options, tried = choose_postprocessing([_case(truth, truth)])
    assert options == {"largest_component": False, "fill_holes": True}
    assert tried["mean_dice"].iloc[1] < tried["mean_dice"].iloc[0]


def test_a_step_that_removes_false_islands_is_kept():
    truth = np.zeros((20, 20), bool)
    truth[2:10, 2:10] = True
    prediction = truth.copy()
    prediction[15:17, 2:4] = True  # a stray island
    options, tried = choose_postprocessing([_case(truth, prediction)])
    assert options["largest_component"] is True
    assert tried["mean_dice"].max() == 1.0
