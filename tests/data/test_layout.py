import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import write_square_dataset

from seglib.data.io import DataError, read_image, read_mask, write_png
from seglib.data.layout import join_datasets, load_records
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
    with pytest.raises(DataError, match=r"case0\.png: left_thing mask without an image"):
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


GREY_RAMP = np.tile(np.linspace(20, 230, 64).round().astype(np.uint8), (48, 1))
CMYK_PROFILE = Path("/usr/share/color/icc/ghostscript/default_cmyk.icc")  # a print profile, where installed


@pytest.mark.parametrize("name", ["film.jpg", "film.tif"])
def test_a_cmyk_film_reads_as_its_grey_not_black_or_its_negative(tmp_path, name):
    from PIL import Image

    Image.fromarray(GREY_RAMP).convert("CMYK").save(tmp_path / name, quality=95)  # JPEG: Adobe's inverted inks
    assert np.abs(read_image(tmp_path / name).astype(int) - GREY_RAMP).max() <= 3
    colour = np.dstack([GREY_RAMP, GREY_RAMP[:, ::-1], np.full_like(GREY_RAMP, 128)])
    Image.fromarray(colour).convert("CMYK").save(tmp_path / f"colour_{name}", quality=95)
    luminance = colour.astype(float) @ [0.299, 0.587, 0.114]
    assert np.abs(read_image(tmp_path / f"colour_{name}") - luminance).max() <= 3


def test_a_cmyk_jpeg_whose_ink_polarity_is_unknown_is_refused_by_name(tmp_path):
    from PIL import Image

    Image.fromarray(GREY_RAMP).convert("CMYK").save(tmp_path / "adobe.jpg", quality=95)
    data = (tmp_path / "adobe.jpg").read_bytes()
    marker = data.index(b"\xff\xee")  # APP14, Adobe's segment saying the inks are stored inverted
    length = int.from_bytes(data[marker + 2:marker + 4], "big")
    (tmp_path / "plain.jpg").write_bytes(data[:marker] + data[marker + 2 + length:])
    with pytest.raises(DataError, match="plain.jpg: a CMYK JPEG without Adobe's colour marker") as refused:
        read_image(tmp_path / "plain.jpg")
    assert len(str(refused.value).splitlines()) == 1


@pytest.mark.skipif(not CMYK_PROFILE.is_file(), reason="no CMYK colour profile installed")
def test_a_cmyk_film_with_a_colour_profile_is_converted_through_it(tmp_path):
    from PIL import Image

    Image.fromarray(GREY_RAMP).convert("CMYK").save(tmp_path / "film.jpg", icc_profile=CMYK_PROFILE.read_bytes())
    image = read_image(tmp_path / "film.jpg").astype(float)
    assert np.corrcoef(image.ravel(), GREY_RAMP.ravel())[0, 1] > 0.99  # the print profile's paper and ink,
    assert image.mean() > 100  # but the grey film: not black, not its negative


def test_a_film_is_the_same_film_whatever_array_type_or_file_holds_it(tmp_path):
    import tifffile

    from seglib.data.io import grey_film

    deep = GREY_RAMP.astype(np.uint16) * 257
    for same in (GREY_RAMP.astype(np.int64), GREY_RAMP[..., None], np.dstack([GREY_RAMP] * 3)):
        assert grey_film(same).dtype == np.uint8 and np.array_equal(grey_film(same), GREY_RAMP)
    assert np.array_equal(grey_film(deep.astype(np.int32)), deep)  # values beyond 255: 16-bit
    assert np.array_equal(grey_film(GREY_RAMP / 255.0), deep)  # floats in [0, 1] read as 16-bit
    assert np.array_equal(grey_film(GREY_RAMP > 100), (GREY_RAMP > 100) * np.uint8(255))
    tifffile.imwrite(tmp_path / "float.tif", (GREY_RAMP / 255.0).astype(np.float32))
    tifffile.imwrite(tmp_path / "int32.tif", GREY_RAMP.astype(np.int32))
    assert np.array_equal(read_image(tmp_path / "float.tif"), deep)  # a file is read by the same rule
    assert np.array_equal(read_image(tmp_path / "int32.tif"), GREY_RAMP)
    tifffile.imwrite(tmp_path / "raw.tif", GREY_RAMP.astype(np.float32) * 40)
    with pytest.raises(DataError, match=r"raw.tif: floating-point pixels must lie in \[0, 1\]"):
        read_image(tmp_path / "raw.tif")


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


# --- check and training read a dataset through one scanner (issues #19 item 7, #20 item 1) ---------

def _square_labels(root, suffix: str):
    """write_square_dataset's masks as label maps labels/<id><suffix> + labels.json."""
    for mask_path in sorted((root / "masks" / "left_thing").iterdir()):
        left = read_mask(mask_path)
        right = read_mask(root / "masks" / "right_thing" / mask_path.name)
        write_png(root / "labels" / f"{mask_path.stem}{suffix}", (left * 100 + right * 200).astype(np.uint8))
    (root / "labels.json").write_text(json.dumps({"left_bone": 100, "right_bone": 200}))


def _resuffix_masks(root, suffix: str):
    for path in sorted((root / "masks" / "left_thing").iterdir()):
        write_png(path.with_suffix(suffix), read_image(path))
        path.unlink()


def _loop(root):
    os.symlink(root / "images" / "loop.png", root / "images" / "loop.png")


def _na_id(root):
    for folder in ("images", "masks/left_thing", "masks/right_thing"):
        (root / folder / "case3.png").rename(root / folder / "NA.png")
    (root / "manifest.csv").write_text("id,patient_id,split\ncase0,p0,train\ncase1,p1,val\ncase2,p2,test\nNA,p3,train\n")


VARIANTS = {  # name: (change to write_square_dataset, structures read, whether a user expects it accepted)
    "label maps .PNG": (lambda root: _square_labels(root, ".PNG"), ["left_bone", "right_bone"], True),
    "label maps .tif": (lambda root: _square_labels(root, ".tif"), ["left_bone", "right_bone"], True),
    "masks .tif": (lambda root: _resuffix_masks(root, ".tif"), ["left_thing"], True),
    "masks .PNG": (lambda root: _resuffix_masks(root, ".PNG"), ["left_thing"], True),
    "hidden files": (lambda root: [(root / f / ".DS_Store").write_bytes(b"\0") for f in
                                   ("images", "masks/left_thing")], ["left_thing"], True),
    "folder extra.png in masks": (lambda root: (root / "masks" / "left_thing" / "extra.png").mkdir(),
                                  ["left_thing"], True),
    "nested folder in images": (lambda root: write_png(root / "images" / "more" / "case9.png",
                                                       np.zeros((32, 32), np.uint8)), ["left_thing"], True),
    "mask in a nested folder only": (lambda root: (root / "masks" / "left_thing" / "case1.png").rename(
        (root / "masks" / "left_thing" / "sub").mkdir() or root / "masks" / "left_thing" / "sub" / "case1.png"),
        ["left_thing"], False),
    "split blank for some ids": (lambda root: (root / "manifest.csv").write_text(
        "id,split\ncase0,train\ncase1,val\ncase2,\ncase3,train\n"), ["left_thing"], False),
    "image id NA": (_na_id, ["left_thing"], True),
    "symlink loop in images": (_loop, ["left_thing"], False),
    "label map without image": (lambda root: (_square_labels(root, ".png"), write_png(
        root / "labels" / "ghost.PNG", np.zeros((32, 32), np.uint8))), ["left_bone"], False),
}


def _training_reads(root, structures):
    """What training does with a dataset: its records and their split (seglib.training.fit)."""
    records = load_records(root, structures, report_skipped=False)
    split = split_records(records, 0.25, 0.25, 0, root=root)
    return records, split


@pytest.mark.parametrize("variant", VARIANTS)
def test_check_and_training_agree_on_every_dataset(tmp_path, variant):
    change, structures, accepted = VARIANTS[variant]
    root = write_square_dataset(tmp_path / "d", n=4)
    change(root)
    problems = [str(p) for p in check_dataset(root, structures) if p.level == "error"]
    try:
        records, split = _training_reads(root, structures)
    except DataError as error:
        assert problems, f"training refused ({error}) what check passed"
        assert str(error) in [p.removeprefix("error: ") for p in problems]  # the same words
        assert not accepted, f"refused: {error}"
        return
    assert not problems, f"check refused what training accepted: {problems}"
    assert accepted
    assert sorted(split) == sorted(r.id for r in records) and len(records) == 4
    for record in records:  # the masks that were meant, whatever their file names
        assert record.masks[structures[0]].read().any()


def test_a_split_file_listing_an_id_twice_with_different_splits_is_refused(tmp_path):
    root = write_square_dataset(tmp_path / "d", n=4)
    (tmp_path / "split.csv").write_text("id,split\ncase0,train\ncase1,val\ncase2,test\ncase3,train\ncase2,train\n")
    with pytest.raises(DataError, match=r"split\.csv: line 6: id 'case2' is listed as 'test' and again as 'train'"):
        split_records(load_records(root, ["left_thing"]), 0.2, 0.2, 0, split_file=tmp_path / "split.csv")


@pytest.mark.parametrize("content, problem", [(b"", "empty file"), (b"id,split\n\xff\xfe,train\n", "not UTF-8 text"),
                                              (b"id\ncase0\n", "no 'split' column")])
def test_an_unreadable_split_file_is_named(tmp_path, content, problem):
    root = write_square_dataset(tmp_path / "d", n=2)
    (tmp_path / "split.csv").write_bytes(content)
    with pytest.raises(DataError, match=rf"split\.csv: {problem}"):
        split_records(load_records(root, ["left_thing"]), 0.2, 0.2, 0, split_file=tmp_path / "split.csv")


def test_joined_datasets_keep_every_image_and_mask_apart_by_prefix(tmp_path):
    """pretrain's clinical stage trains on clinical and wide films joined into one dataset."""
    first, second = write_square_dataset(tmp_path / "a", n=2), write_square_dataset(tmp_path / "b", n=3)
    (first / "manifest.csv").write_text("id,patient_id,split\ncase0,p1,train\ncase1,p1,val\n")
    joined = join_datasets({"clinical": first, "wide": second}, tmp_path / "joined")
    records = {r.id: r for r in load_records(joined, ["left_thing", "right_thing"])}
    assert sorted(records) == ["clinical_case0", "clinical_case1", "wide_case0", "wide_case1", "wide_case2"]
    assert (read_image(records["wide_case2"].image) == read_image(second / "images" / "case2.png")).all()
    assert records["clinical_case1"].patient_id == "clinical_p1"  # two parts' p1 are different people
    with pytest.raises(FileExistsError):  # OUT is an output like any other: never replaced unasked
        join_datasets({"clinical": first}, tmp_path / "joined")


def test_datasets_of_different_structures_are_not_joined(tmp_path):
    first, second = write_square_dataset(tmp_path / "a", n=2), write_square_dataset(tmp_path / "b", n=2)
    shutil.rmtree(second / "masks" / "right_thing")
    with pytest.raises(DataError, match="same structures"):
        join_datasets({"x": first, "y": second}, tmp_path / "joined")
    assert not (tmp_path / "joined").exists()
