"""Structure names read from files or the command line become folder names: one rule (letters,
digits, _ and -) refuses anything else, wherever the name comes from (issue #10, case 3)."""

import json

import numpy as np
import pytest
from conftest import untrained_run, write_square_dataset

from seglib.cli import main
from seglib.data.io import DataError, write_png
from seglib.data.layout import load_records
from seglib.data.validation import check_dataset
from seglib.training.run_dir import RunDir

ESCAPE = "../../../escape_hip"


def test_a_run_config_naming_a_path_as_structure_writes_nothing(tmp_path, capsys):
    run = untrained_run(tmp_path / "run")
    config_path = RunDir(run).config_path
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "structures": [ESCAPE]}))
    work = tmp_path / "a" / "b" / "c"
    images = write_square_dataset(work / "data", n=2) / "images"
    code = main(["predict", "--runs", str(run), "--images", str(images), "--out", str(work / "out")])
    assert code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"{config_path}: cannot read run config: structures: structure name '{ESCAPE}' is not allowed" in error
    assert not list(tmp_path.rglob("*escape*")) and not (work / "out").exists()


def test_labels_json_keys_must_be_safe_names(tmp_path):
    root = tmp_path / "data"
    write_png(root / "images" / "a.png", np.zeros((8, 8), np.uint8))
    write_png(root / "labels" / "a.png", np.zeros((8, 8), np.uint8))
    (root / "labels.json").write_text(json.dumps({ESCAPE: 255}))
    problems = [str(p) for p in check_dataset(root) if p.level == "error"]
    expected = f"error: {root / 'labels.json'}: structure name '{ESCAPE}' is not allowed; use only letters, digits, _ and -"
    assert expected in problems
    with pytest.raises(DataError, match="labels.json: structure name"):
        load_records(root, [ESCAPE])


def test_mask_folders_must_have_safe_names(tmp_path):
    root = write_square_dataset(tmp_path / "data", n=2)
    (root / "masks" / "left_thing").rename(root / "masks" / "left thing")
    problems = [str(p) for p in check_dataset(root) if p.level == "error"]
    folder = root / "masks" / "left thing"
    assert problems == [f"error: {folder}: structure name 'left thing' is not allowed; use only letters, digits, _ and -"]


@pytest.mark.parametrize("command", [["train", "--data", "d", "--out", "r"], ["check", "--data", "d"]])
def test_command_line_structure_names_must_be_safe(command, capsys):
    with pytest.raises(SystemExit) as exit:
        main([*command, "--structure", ESCAPE])
    assert exit.value.code == 2
    assert f"--structure: structure name '{ESCAPE}' is not allowed" in capsys.readouterr().err


def test_class_names_in_an_imported_table_must_be_safe(tmp_path, capsys):
    source = tmp_path / "uwmgi"
    source.mkdir()
    (source / "train.csv").write_text(f"id,class,segmentation\ncase1_day0_slice_0001,{ESCAPE},\n")
    assert main(["import", "--from", "uwmgi", "--data", str(source), "--out", str(tmp_path / "out")]) == 2
    assert f"train.csv: line 2: class: structure name '{ESCAPE}' is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
