"""The README's commands through the command line, at small sizes: what each promises to write or print."""

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import untrained_run, write_square_dataset

from seglib.cli import main
from seglib.data.io import read_image, write_png

PROJECT = Path(__file__).resolve().parents[2]


def test_phantom_writes_a_checked_dataset_with_every_bone_and_the_manifest(tmp_path, capsys):
    out = tmp_path / "pelvis"
    assert main(["phantom", "--out", str(out), "--n", "3", "--film-size", "64", "--seed", "1", "--workers", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    ids = sorted(p.stem for p in (out / "images").glob("*.png"))
    assert len(ids) == 3
    for bone in ("left_hip", "right_hip", "sacrum", "left_femur", "right_femur"):  # the README's list
        assert sorted(p.stem for p in (out / "masks" / bone).glob("*.png")) == ids
        assert read_image(out / "masks" / bone / f"{ids[0]}.png").shape == (64, 64)
    manifest = pd.read_csv(out / "manifest.csv")
    assert sorted(manifest["id"]) == ids and (manifest["pixel_spacing_mm"] > 0).all()
    assert main(["check", "--data", str(out)]) == 0


def test_split_follows_the_benchmark_protocol_and_says_what_it_wrote(tmp_path, capsys):
    data = write_square_dataset(tmp_path / "d", n=10, size=32)
    out = tmp_path / "split.csv"
    assert main(["split", "--data", str(data), "--out", str(out), "--test", "3", "--val", "2", "--seed", "4"]) == 0
    assert capsys.readouterr().out.strip() == f"{out}: 3 test, 5 train, 2 val"
    # The protocol as the README states it: ids sorted, shuffled with random.Random(seed), the first N test,
    # the last M validation.
    ids = sorted(f"case{i}" for i in range(10))
    random.Random(4).shuffle(ids)
    split = dict(pd.read_csv(out).itertuples(index=False))
    assert {i for i, s in split.items() if s == "test"} == set(ids[:3])
    assert {i for i, s in split.items() if s == "val"} == set(ids[-2:])
    assert main(["split", "--data", str(data), "--out", str(out), "--test", "3", "--val", "2"]) == 2  # never overwritten
    assert "split.csv: already exists" in capsys.readouterr().err


def test_baseline_finds_each_hip_on_the_patients_side(phantom_dataset, tmp_path, capsys):
    out = tmp_path / "otsu"
    assert main(["baseline", "--method", "otsu", "--images", str(phantom_dataset / "images"),
                 "--structure", "left_hip", "--structure", "right_hip", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    ids = sorted(p.stem for p in (phantom_dataset / "images").glob("*.png"))
    for image_id in ids:
        left = read_image(out / "masks" / "left_hip" / f"{image_id}.png") > 0
        right = read_image(out / "masks" / "right_hip" / f"{image_id}.png") > 0
        columns = np.arange(left.shape[1])
        # The patient's left hip is on the image's right: its mask lies right of the right hip's.
        assert (left * columns).sum() / left.sum() > (right * columns).sum() / right.sum(), image_id
    assert main(["evaluate", "--pred", str(out), "--data", str(phantom_dataset), "--out",
                 str(tmp_path / "otsu.csv")]) == 0
    dice = pd.read_csv(tmp_path / "otsu.csv").groupby("structure")["dice"].mean()
    assert (dice > 0.25).all(), dice  # the README's Otsu scores ~0.45 on the demo films


def test_export_writes_a_servable_model_into_the_run_and_never_over_it(tmp_path, capsys):
    import tensorflow as tf

    run = untrained_run(tmp_path / "left", ("left_hip",), side_aware=False)
    assert main(["export", "--runs", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "saved_model")
    serving = json.loads((run / "saved_model" / "serving.json").read_text())
    assert serving["structures"] == ["left_hip"]
    assert tf.saved_model.load(str(run / "saved_model")) is not None
    assert main(["export", "--runs", str(run)]) == 2
    assert "saved_model: exists" in capsys.readouterr().err


def test_evaluate_prints_the_summary_worked_out_by_hand(tmp_path, capsys):
    data = write_square_dataset(tmp_path / "d", n=4, size=32)
    pred = tmp_path / "pred"
    for i in range(4):  # right_thing exact; left_thing: its left half on case0 and case1, exact on the others
        name = f"case{i}.png"
        shutil.copy(data / "masks" / "right_thing" / name, _made(pred / "masks" / "right_thing") / name)
        left = read_image(data / "masks" / "left_thing" / name)
        if i < 2:
            left[:, 23:] = 0  # columns 18-22 of 18-27 kept: Dice 2 * 60 / (60 + 120) = 2/3
        write_png(pred / "masks" / "left_thing" / name, left)
    assert main(["evaluate", "--pred", str(pred), "--data", str(data), "--out", str(tmp_path / "m.csv")]) == 0
    rows = {line.split()[1]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    # mean of 2/3, 2/3, 1, 1 = 0.833; sample std = (1/6) * sqrt(4/3) = 0.192
    assert rows["left_thing"][2:5] == ["4", "0.833", "0.192"]
    assert rows["right_thing"][2:] == ["4", "1.000", "0.000", "0.000", "0.000"]


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.slow
def test_ablation_writes_its_table_and_reuses_complete_runs(phantom_dataset, tmp_path, capsys):
    args = ["ablation", "--data", str(phantom_dataset), "--structure", "left_hip", "--structure", "right_hip",
            "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--profile", "smoke",
            "--epochs", "1", "--fractions", "1", "--configurations", "plain"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert re.search(r"plain .*left_hip", printed) and re.search(r"plain .*right_hip", printed)
    table = pd.read_csv(tmp_path / "out" / "ablation.csv")
    assert sorted(table["structure"]) == ["left_hip", "right_hip"] and table["dice_mean"].between(0, 1).all()
    assert (tmp_path / "out" / "ablation.png").stat().st_size > 10_000
    models = sorted((tmp_path / "work").rglob("model.keras"))
    assert models
    written = {path: path.stat().st_mtime_ns for path in models}
    assert main(args) == 2  # its own earlier output is replaced only when asked
    assert "pass --force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0  # again: the complete runs are reused, not trained again
    assert {path: path.stat().st_mtime_ns for path in models} == written
    assert pd.read_csv(tmp_path / "out" / "ablation.csv").equals(table)


@pytest.mark.slow
def test_demo_runs_notebook_01_into_reports_and_leaves_the_committed_notebook_alone(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    shutil.copytree(PROJECT / "notebooks", home / "notebooks")
    committed = (home / "notebooks" / "01_train_left_hip.ipynb").read_bytes()
    monkeypatch.setenv("SEGLIB_HOME", str(home))
    for name in ("SEGLIB_PROFILE", "SEGLIB_DATA", "SEGLIB_EPOCHS", "SEGLIB_IMAGE_SIZE", "SEGLIB_LEFT"):
        monkeypatch.delenv(name, raising=False)  # run_notebooks sets some; monkeypatch restores them
    assert main(["demo", "--profile", "smoke", "--notebooks", "01"]) == 0
    executed = home / "reports" / "smoke" / "notebooks" / "01_train_left_hip.ipynb"
    assert f"-> {executed}" in capsys.readouterr().out
    import nbformat

    outputs = "".join(output.get("text", "") for cell in nbformat.read(executed, as_version=4).cells
                      for output in cell.get("outputs", []))
    assert "validation Dice above its floor (0.7): True" in outputs
    assert (home / "runs" / "smoke" / "pelvis_phantom" / "left_hip" / "model.keras").is_file()
    assert (home / "notebooks" / "01_train_left_hip.ipynb").read_bytes() == committed
