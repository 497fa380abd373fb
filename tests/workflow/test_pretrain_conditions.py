"""The model card breaks the clinical look's accuracy down by condition, so a user sees which films it fails."""

import pandas as pd

from seglib.workflow.build_pelvis_model import condition_table


def test_accuracy_by_condition_pools_the_sides_and_names_films_without_any():
    manifest = pd.DataFrame({"id": ["a", "b", "c"], "conditions": ["tha_left;text", "tha_right;shield_male", ""]})
    table = pd.DataFrame({
        "id": ["a", "a", "b", "b", "c", "c", "c"],
        "structure": ["left_hip", "right_hip", "left_hip", "right_hip", "left_hip", "right_hip", "sacrum"],
        "dice": [0.90, 0.96, 0.98, 0.94, 0.99, 0.97, 0.10],
        "hd95_mm": [8.0, 3.0, 2.0, 4.0, 1.0, 2.0, 50.0]})
    rows = condition_table(table, manifest).set_index("condition")
    assert set(rows.index) == {"tha", "text", "shield_male", "none"}
    assert rows.loc["tha", "films"] == 2 and rows.loc["text", "films"] == 1
    assert rows.loc["tha", "dice_worst"] == 0.90
    assert abs(rows.loc["tha", "dice_mean"] - (0.90 + 0.96 + 0.98 + 0.94) / 4) < 1e-9
    assert rows.loc["none", "dice_worst"] == 0.97           # the sacrum's row is not a hip's
    assert list(rows.index)[0] == "text"                     # the worst condition first
