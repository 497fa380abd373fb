import json

import numpy as np
import pytest
from conftest import write_square_dataset

from seglib.data.io import DataError, read_image, read_mask, write_png
from seglib.data.layout import load_records
from seglib.data.splits import split_records, write_split
from seglib.data.validation import check_dataset


def test_records_carry_every_requested_mask(tmp_path):
    root = write_square_dataset(tmp_path / "d", n=3)
    records = load_records(root, ["left_thing", "right_thing"])
    assert [r.id for r in records] == ["case0", "case1", "case2"]
    assert set(records[0].masks) == {"left_thing", "right_thing"}
    assert records[0].masks["left_thing"].read()[:, -10:].any()
    assert check_dataset(root) == []


def test_label_value_layout_reads_like_binary_masks(tmp_path):
    labels = np.zeros((8, 8), np.uint8)
    labels[:, :4], labels[:, 4:] = 255, 134
    write_png(tmp_path / "images" / "a.png", np.full((8, 8), 50, np.uint8))
    write_png(tmp_path / "labels" / "a.png", labels)
    (tmp_path / "labels.json").write_text(json.dumps({"left_hip": 134, "right_hip": 255}))
    record = load_records(tmp_path, ["left_hip", "right_hip"])[0]
    assert record.masks["left_hip"].read()[:, 4:].all() and not record.masks["left_hip"].read()[:, :4].any()


def test_missing_mask_names_the_image(tmp_path):
    root = write_square_dataset(tmp_path / "d", n=2)
    (root / "masks" / "left_thing" / "case1.png").unlink()
    with pytest.raises(DataError, match=r"case1\.png: image without a left_thing mask"):
        load_records(root, ["left_thing"])


def test_mask_without_image_and_unknown_structure_are_errors(tmp_path):
    root = write_square_dataset(tmp_path / "d", n=2)
    (root / "images" / "case0.png").unlink()
    with pytest.raises(DataError, match=r"case0\.png: mask without image"):
        load_records(root, ["left_thing"])
    with pytest.raises(DataError, match="no masks for structure 'heart'.*left_thing, right_thing"):
        load_records(root, ["heart"])


def test_non_binary_mask_and_size_mismatch_are_reported_with_the_file(tmp_path):
    root = write_square_dataset(tmp_path / "d", n=2)
    bad = root / "masks" / "left_thing" / "case0.png"
    bad.unlink()
    write_png(bad, np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) % 7)
    small = root / "masks" / "right_thing" / "case1.png"
    small.unlink()
    write_png(small, np.zeros((16, 16), np.uint8))
    problems = [str(p) for p in check_dataset(root)]
    assert len(problems) == 2, problems
    assert any("case0.png" in p and "binary mask must hold only 0 and 1 or 0 and 255" in p for p in problems)
    assert any("case1.png" in p and "16x16" in p and "32x32" in p for p in problems)


def test_images_of_16_bit_and_rgb_are_read_as_grey(tmp_path):
    write_png(tmp_path / "deep.png", np.array([[0, 65535]], np.uint16))
    write_png(tmp_path / "rgb.png", np.dstack([np.full((2, 2), v, np.uint8) for v in (10, 10, 10)]))
    assert read_image(tmp_path / "deep.png").dtype == np.uint16
    assert read_image(tmp_path / "rgb.png").shape == (2, 2)
    with pytest.raises(DataError, match="nothing.png: file not found"):
        read_image(tmp_path / "nothing.png")
    assert read_mask(tmp_path / "deep.png", label_value=65535).tolist() == [[False, True]]


def test_unreadable_image_names_the_file(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png: cannot read image"):
        read_image(tmp_path / "broken.png")


def test_writes_never_overwrite(tmp_path):
    write_png(tmp_path / "x.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(FileExistsError, match="x.png: already exists"):
        write_png(tmp_path / "x.png", np.zeros((2, 2), np.uint8))


def test_split_is_seeded_grouped_by_patient_and_saved(tmp_path):
    root = write_square_dataset(tmp_path / "d", n=20, size=16)
    (root / "manifest.csv").write_text("id,patient_id\n" + "".join(f"case{i},p{i // 2}\n" for i in range(20)))
    records = load_records(root, ["left_thing"])
    split = split_records(records, 0.2, 0.2, seed=3, root=root)
    assert split == split_records(records, 0.2, 0.2, seed=3, root=root)
    assert split != split_records(records, 0.2, 0.2, seed=4, root=root)
    assert sorted(split.values()).count("test") == 4 and sorted(split.values()).count("val") == 4
    for i in range(0, 20, 2):  # both images of a patient in the same split
        assert split[f"case{i}"] == split[f"case{i + 1}"]
    write_split(split, tmp_path / "split.csv")
    assert split_records(records, 0, 0, 0, split_file=tmp_path / "split.csv") == split


def test_real_dataset_loads_cleanly(lungs_dataset):
    records = load_records(lungs_dataset, ["left_lung", "right_lung"])
    assert len(records) == 98
    assert check_dataset(lungs_dataset) == []


def test_fixed_count_split_follows_the_benchmark_protocol():
    import random

    from seglib.data.splits import fixed_count_split

    ids = [f"img{i:02d}" for i in range(30)]
    shuffled = sorted(ids)
    random.Random(0).shuffle(shuffled)
    split = fixed_count_split(reversed(ids), n_test=5, n_val=3, seed=0)
    assert [i for i in shuffled if split[i] == "test"] == shuffled[:5]
    assert [i for i in shuffled if split[i] == "val"] == shuffled[-3:]
    assert list(split.values()).count("train") == 22
    with pytest.raises(ValueError, match="leave none of 8 for training"):
        fixed_count_split(ids[:8], 5, 3)


def test_a_half_filled_manifest_split_is_an_error(tmp_path):
    root = write_square_dataset(tmp_path / "d", n=3, size=16)
    (root / "manifest.csv").write_text("id,split\ncase0,train\ncase1,\ncase2,test\n")
    with pytest.raises(DataError, match="split is blank for 1 ids, e.g. 'case1'"):
        split_records(load_records(root, ["left_thing"]), 0.2, 0.2, 0, root=root)


def write_manifest(root, text):
    (root / "manifest.csv").write_text(text)
    return root


def test_pixel_spacing_is_row_then_column(tmp_path):
    root = write_manifest(write_square_dataset(tmp_path / "d", n=3, size=16),
                          "id,pixel_spacing_mm,pixel_spacing_row_mm,pixel_spacing_col_mm\n"
                          "case0,1.25,2.0,0.5\ncase1,0.8,,\ncase2,,,\n")
    spacing = {r.id: r.pixel_spacing_mm for r in load_records(root, ["left_thing"])}
    assert spacing == {"case0": (2.0, 0.5), "case1": (0.8, 0.8), "case2": None}
    assert check_dataset(root, ["left_thing"]) == []


def test_a_single_spacing_column_gives_square_pixels(tmp_path):
    root = write_manifest(write_square_dataset(tmp_path / "d", n=1, size=16), "id,pixel_spacing_mm\ncase0,0.7\n")
    assert load_records(root, ["left_thing"])[0].pixel_spacing_mm == (0.7, 0.7)


@pytest.mark.parametrize("columns, values, bad", [
    ("pixel_spacing_mm", "-0.5", "pixel_spacing_mm '-0.5'"),
    ("pixel_spacing_mm", "half", "pixel_spacing_mm 'half'"),
    ("pixel_spacing_mm", "0", "pixel_spacing_mm '0'"),
    ("pixel_spacing_row_mm,pixel_spacing_col_mm", "2.0,inf", "pixel_spacing_col_mm 'inf'"),
])
def test_a_spacing_that_is_no_positive_number_names_the_manifest(tmp_path, columns, values, bad):
    root = write_manifest(write_square_dataset(tmp_path / "d", n=1, size=16), f"id,{columns}\ncase0,{values}\n")
    with pytest.raises(DataError, match=rf"manifest\.csv: {bad} of id 'case0' is not a positive number"):
        load_records(root, ["left_thing"])
    assert any("manifest.csv" in p.path and "is not a positive number" in p.message for p in check_dataset(root))
