"""`write_fixed_count_split` (the `split` command's function) guards its output for the Python API too."""

import pytest
from conftest import file_contents, write_square_dataset

from seglib.data.outputs import UnsafeOutput
from seglib.data.splits import read_split, write_fixed_count_split


def test_the_split_of_a_datasets_images_is_written_and_returned(tmp_path):
    data = write_square_dataset(tmp_path / "data", n=6)
    split = write_fixed_count_split(data, tmp_path / "split.csv", n_test=2, n_val=1, seed=3)
    assert read_split(tmp_path / "split.csv") == split
    assert sorted(split) == [f"case{i}" for i in range(6)]
    assert sorted(split.values()) == ["test", "test", "train", "train", "train", "val"]


@pytest.mark.parametrize("target, problem", [("notes.csv", "already exists; refusing to overwrite"),
                                             ("data/split.csv", "lies inside the dataset")])
def test_a_users_file_and_the_dataset_are_never_written(tmp_path, target, problem):
    data = write_square_dataset(tmp_path / "data", n=6)
    (tmp_path / "notes.csv").write_text("patient,remark\np0,months of work\n")
    before = file_contents(tmp_path)
    out = tmp_path / target
    with pytest.raises(UnsafeOutput) as refusal:
        write_fixed_count_split(data, out, n_test=2, n_val=1)
    assert str(refusal.value).startswith(f"{out}: {problem}") and "\n" not in str(refusal.value)
    assert file_contents(tmp_path) == before
