import pandas as pd
import pytest

from seglib.experiments.ablation import run_ablation, subsample_split


def test_subsampling_keeps_validation_and_test_and_marks_the_rest_unused():
    split = {f"i{k}": "train" for k in range(8)} | {"v": "val", "t": "test"}
    small = subsample_split(split, 0.25, seed=0)
    assert list(small.values()).count("train") == 2 and list(small.values()).count("unused") == 6
    assert small["v"] == "val" and small["t"] == "test"
    assert small == subsample_split(split, 0.25, seed=0)


@pytest.mark.slow
def test_ablation_writes_table_markdown_and_chart(phantom_dataset, tmp_path):
    table = run_ablation(phantom_dataset, ["left_hip", "right_hip"], tmp_path / "out", tmp_path / "work",
                         profile="smoke", fractions=(1.0, 0.5), epochs=1,
                         configurations=["plain", "mirror+tta+consistency"])
    assert len(table) == 2 * 2 * 2  # fractions x configurations x structures
    assert table["dice_mean"].between(0, 1).all() and (table["train_seconds"] > 0).all()
    assert sorted(table.loc[table["fraction"] == 0.5, "n_train"].unique()) == [
        round(table.loc[table["fraction"] == 1.0, "n_train"].iloc[0] * 0.5)]
    assert pd.read_csv(tmp_path / "out" / "ablation.csv").shape[0] == len(table)
    assert "mirror+tta+consistency" in (tmp_path / "out" / "ablation.md").read_text()
    assert (tmp_path / "out" / "ablation.png").stat().st_size > 10_000
