import json
import os

import numpy as np
import pandas as pd
import pytest
from conftest import write_square_dataset

from seglib.data.io import write_png
from seglib.data.validation import Problem, check_dataset, has_errors

SIZE = 16
IDS = [f"case{i}" for i in range(12)]


def masks_of_a_clean_image():
    left, right = np.zeros((SIZE, SIZE), bool), np.zeros((SIZE, SIZE), bool)
    left[4:12, 10:14] = True  # patient's left on the image's right
    right[4:12, 2:6] = True
    labels = np.zeros((SIZE, SIZE), np.uint8)
    labels[left], labels[right] = 100, 200
    return left, right, labels


def write_both_layouts(root):
    """A clean dataset with binary masks (left_thing, right_thing), label files (left_bone,
    right_bone) and a manifest."""
    left, right, labels = masks_of_a_clean_image()
    for image_id in IDS:
        write_png(root / "images" / f"{image_id}.png", np.full((SIZE, SIZE), 60, np.uint8))
        write_png(root / "masks" / "left_thing" / f"{image_id}.png", left.astype(np.uint8) * 255)
        write_png(root / "masks" / "right_thing" / f"{image_id}.png", right.astype(np.uint8))  # 0/1 is fine too
        write_png(root / "labels" / f"{image_id}.png", labels)
    (root / "labels.json").write_text(json.dumps({"left_bone": 100, "right_bone": 200}))
    pd.DataFrame({"id": IDS, "patient_id": [f"p{i // 2}" for i in range(len(IDS))], "split": "train",
                  "pixel_spacing_mm": 0.5, "source_file": [f"originals/{i}.dcm" for i in IDS]}
                 ).to_csv(root / "manifest.csv", index=False)
    return root


def replace(path, array_or_bytes):
    path.unlink()
    if isinstance(array_or_bytes, bytes):
        path.write_bytes(array_or_bytes)
    else:
        write_png(path, array_or_bytes)


def test_a_clean_dataset_has_no_problems(tmp_path):
    assert check_dataset(write_both_layouts(tmp_path / "d")) == []
    assert check_dataset(write_square_dataset(tmp_path / "squares")) == []


def plant_one_of_each_problem(root, outside):
    """One instance of every problem, each in its own file; returns (level, path, message part) expected."""
    masks = root / "masks"
    left, right, labels = masks_of_a_clean_image()
    replace(root / "images" / "case0.png", b"not a png")
    replace(masks / "left_thing" / "case1.png", b"\x89PNG broken")
    write_png(masks / "left_thing" / "orphan.png", left.astype(np.uint8) * 255)
    (masks / "right_thing" / "case2.png").unlink()
    replace(masks / "right_thing" / "case3.png", np.zeros((8, 8), np.uint8))
    replace(masks / "left_thing" / "case4.png", left.astype(np.uint8) * 7)
    replace(root / "labels" / "case5.png", np.where(labels == 100, 50, labels).astype(np.uint8))
    replace(masks / "left_thing" / "case6.png", np.zeros((SIZE, SIZE), np.uint8))
    write_png(root / "images" / "case7.tif", np.zeros((SIZE, SIZE), np.uint8))
    write_png(outside / "stolen.png", right.astype(np.uint8) * 255)
    (masks / "right_thing" / "case9.png").unlink()
    os.symlink(outside / "stolen.png", masks / "right_thing" / "case9.png")
    overlapping = right.copy()
    overlapping[4:6, 8:12] = True  # reaches into the left mask's columns 10-13: 4 shared pixels
    replace(masks / "right_thing" / "case11.png", overlapping.astype(np.uint8) * 255)
    (root / "images" / "notes.txt").write_text("not an image")
    manifest = pd.read_csv(root / "manifest.csv", dtype=str)
    manifest.loc[manifest["id"] == "case10", "source_file"] = "../../etc/passwd"
    extra = pd.DataFrame({"id": ["case8", "../evil", "ghost"], "split": ["train", "train", "tset"]})
    pd.concat([manifest, extra]).to_csv(root / "manifest.csv", index=False)
    m = "masks/"
    return [
        ("error", "images/case0.png", "cannot read image"),
        ("error", m + "left_thing/case1.png", "cannot read image"),
        ("error", m + "left_thing/orphan.png", "left_thing mask without an image"),
        ("error", "images/case2.png", "image without a right_thing mask"),
        ("error", m + "right_thing/case3.png", "size 8x8 differs from image case3.png (16x16)"),
        ("error", m + "left_thing/case4.png", "a binary mask must hold only 0 and 1 or 0 and 255; found values 0, 7"),
        ("error", "labels/case5.png", "label values [50] are not declared in labels.json"),
        ("warning", m + "left_thing/case6.png", "empty left_thing mask"),
        ("warning", "labels/case5.png", "empty left_bone mask"),  # its left_bone pixels were relabelled 50
        ("error", "images/case7.tif", "duplicate id 'case7' (also case7.png)"),
        ("error", m + "right_thing/case9.png", "points outside the dataset folder"),
        ("error", m + "left_thing/case11.png", "left_thing and right_thing share 4 pixels"),
        ("warning", "images/notes.txt", "not an image file seglib reads"),
        ("error", "manifest.csv", "line 12: source_file '../../etc/passwd' leads outside the dataset folder"),
        ("error", "manifest.csv", "duplicate id 'case8' in 2 rows"),
        ("error", "manifest.csv", "line 15: id '../evil' is not a file name"),
        ("error", "manifest.csv", "line 16: id 'ghost' has no image in images/"),
        ("error", "manifest.csv", "line 16: split 'tset' is not one of train, val, test"),
    ]


def test_every_planted_problem_is_listed_with_its_file_and_nothing_else(tmp_path):
    root = write_both_layouts(tmp_path / "d")
    outside = tmp_path / "elsewhere"
    expected = plant_one_of_each_problem(root, outside)
    problems = check_dataset(root)
    for level, path, message in expected:
        assert any(p.level == level and p.path == str(root / path) and message in p.message for p in problems), \
            f"not reported: {level}: {path}: {message}\nreported:\n" + "\n".join(map(str, problems))
    assert len(problems) == len(expected), "\n".join(map(str, problems))
    assert has_errors(problems)


def test_checking_reads_only_the_requested_structures(tmp_path):
    root = write_both_layouts(tmp_path / "d")
    replace(root / "masks" / "left_thing" / "case4.png", np.full((SIZE, SIZE), 7, np.uint8))
    assert check_dataset(root, ["right_thing", "left_bone"]) == []
    problems = check_dataset(root, ["heart"])
    assert [(p.level, p.path) for p in problems] == [("error", str(root))]
    assert "no masks for structure 'heart'" in problems[0].message


def test_a_symlinked_folder_outside_the_dataset_is_reported_once(tmp_path):
    root = write_square_dataset(tmp_path / "d", n=2)
    (root / "masks" / "left_thing").rename(tmp_path / "left_elsewhere")
    os.symlink(tmp_path / "left_elsewhere", root / "masks" / "left_thing")
    problems = check_dataset(root)
    assert [str(p) for p in problems] == [
        f"error: {root / 'masks' / 'left_thing'}: points outside the dataset folder (to {tmp_path / 'left_elsewhere'})"]


def test_warnings_alone_are_not_errors():
    warning = Problem("warning", "masks/left_hip/a.png", "empty left_hip mask")
    assert str(warning) == "warning: masks/left_hip/a.png: empty left_hip mask"
    assert not has_errors([warning]) and has_errors([warning, Problem("error", "x", "y")])


def test_a_missing_dataset_is_one_error(tmp_path):
    missing = tmp_path / "nowhere"
    assert check_dataset(missing) == [Problem("error", str(missing), "dataset folder not found")]


def test_label_values_follow_the_same_rules_in_check_and_import(tmp_path):
    # One rule set (seglib.data.layout) for labels.json: a value shared by two structures is refused
    # by `check` as by `import --format labels`, with the same words.
    from seglib.data.adapters import import_labels
    from seglib.data.io import DataError

    root = tmp_path / "shared"
    write_png(root / "images" / "a.png", np.zeros((8, 8), np.uint8))
    write_png(root / "labels" / "a.png", np.full((8, 8), 5, np.uint8))
    (root / "labels.json").write_text(json.dumps({"left_hip": 5, "right_hip": 5}))
    problems = [p for p in check_dataset(root) if p.level == "error"]
    assert (str(root / "labels.json"), "structures left_hip, right_hip share label values [5]") in [
        (p.path, p.message) for p in problems]
    with pytest.raises(DataError, match=r"labels\.json: structures left_hip, right_hip share label values \[5\]"):
        import_labels(root, tmp_path / "out")
