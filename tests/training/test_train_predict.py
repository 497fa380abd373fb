"""End to end on tiny phantoms: train two per-bone runs, predict, fuse, evaluate, and the CLI."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import write_square_dataset

from seglib.cli.commands import main
from seglib.config import profile_config
from seglib.data.io import read_image, write_png
from seglib.evaluation.folder import evaluate_folder
from seglib.evaluation.statistics import summarise
from seglib.inference.predictor import Predictor, fuse_folder, predict_folder
from seglib.training.fit import train
from seglib.training.run_dir import RunDir


@pytest.fixture(scope="module")
def runs(learned_hip_runs):
    return learned_hip_runs  # the session's smoke training (tests/conftest.py), shared with the learning floor


@pytest.mark.slow
def test_run_directory_holds_model_config_history_and_split(runs, phantom_dataset):
    run = runs["left_hip"]
    assert {"model.keras", "config.json", "history.csv", "split.csv", "summary.json"} <= {p.name for p in run.iterdir()}
    history, summary = RunDir(run).history(), RunDir(run).summary()
    assert len(history) == summary["epochs_run"] > 1
    # The training time at each epoch's end: how long the run took to reach a validation Dice.
    seconds = history["seconds"].tolist()
    assert 0 < seconds[0] and all(a < b for a, b in zip(seconds, seconds[1:]))
    assert seconds[-1] <= summary["train_seconds"] + 0.1
    assert summary["best_val_dice"] == pytest.approx(history["val_dice"].max())
    assert summary["best_epoch"] == history["val_dice"].idxmax() + 1
    config = RunDir(run).config()
    assert config.structures == ("left_hip",) and config.image_size == 64
    split = RunDir(run).split()
    assert len(split) == 16 and set(split.values()) == {"train", "val", "test"}
    model = keras.saving.load_model(RunDir(run).model_path)  # safe_mode on by default, no custom_objects
    assert model.output_shape == (None, 64, 64, 1)


@pytest.mark.slow
def test_existing_run_directory_is_never_overwritten(runs, phantom_dataset):
    config = profile_config("smoke", data=str(phantom_dataset), structures=("left_hip",), epochs=1)
    with pytest.raises(FileExistsError, match="left_hip: exists and is not empty.*--force"):
        train(config, runs["left_hip"])


@pytest.mark.slow
def test_same_seed_gives_identical_weights(tmp_path):
    data = write_square_dataset(tmp_path / "d", n=8, size=32)
    config = profile_config("smoke", data=str(data), structures=("left_thing",), image_size=32, depth=2, epochs=1)
    weights = [RunDir(train(config, tmp_path / f"run{i}", verbose=0)).load_model().get_weights()
               for i in range(2)]
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


def test_training_refuses_bad_data_naming_the_file(tmp_path):
    data = write_square_dataset(tmp_path / "d", n=8, size=32)
    bad = data / "masks" / "left_thing" / "case3.png"
    bad.unlink()
    write_png(bad, np.full((32, 32), 7, np.uint8))
    config = profile_config("smoke", data=str(data), structures=("left_thing",), image_size=32, depth=2)
    with pytest.raises(ValueError, match=r"(?s)1 problem\(s\).*case3.png: a binary mask must hold only"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_predictions_have_the_original_size_and_flip_tta_uses_the_partner(runs, phantom_dataset):
    # the network's own probabilities, so the TTA map is the plain mean (thresholds: tests/networks/test_film.py)
    predictor = Predictor([runs["left_hip"], runs["right_hip"]], calibrate=False)
    image = read_image(next((phantom_dataset / "images").glob("*.png")))[:, 2:]  # 64 x 62: not square
    direct = predictor.probabilities(image)
    assert direct["left_hip"].shape == image.shape
    mirrored = predictor.probabilities(np.ascontiguousarray(image[:, ::-1]))
    tta = predictor.probabilities(image, tta=True)
    expected = (direct["left_hip"] + mirrored["right_hip"][:, ::-1]) / 2
    np.testing.assert_allclose(tta["left_hip"], expected, atol=1e-6)
    with pytest.raises(ValueError, match="flip TTA for left_hip needs a model of the mirror partner"):
        Predictor(runs["left_hip"]).probabilities(image, tta=True)


@pytest.mark.slow
def test_fuse_then_evaluate_the_test_split(runs, phantom_dataset, tmp_path):
    out = fuse_folder([runs["left_hip"], runs["right_hip"]], phantom_dataset / "images", tmp_path / "fused",
                      tta=True, subset="test")
    test_ids = {i for i, name in RunDir(runs["left_hip"]).split().items() if name == "test"}
    assert {p.stem for p in (out / "labels").glob("*.png")} == test_ids
    assert json.loads((out / "labels.json").read_text()) == {"left_hip": 1, "right_hip": 2}
    label_map = read_image(out / "labels" / f"{sorted(test_ids)[0]}.png")
    assert set(np.unique(label_map)) <= {0, 1, 2}
    assert len(pd.read_csv(out / "contested.csv")) == len(test_ids)
    table = evaluate_folder(out, phantom_dataset)
    assert len(table) == 2 * len(test_ids) and table["dice"].between(0, 1).all()
    assert "hd95_mm" in table.columns  # the phantom manifest gives the pixel spacing
    assert set(summarise(table)["structure"]) == {"left_hip", "right_hip"}


@pytest.mark.slow
def test_cli_predict_evaluate_and_check(runs, phantom_dataset, tmp_path, capsys):
    assert main(["predict", "--runs", str(runs["left_hip"]), "--images", str(phantom_dataset / "images"),
                 "--out", str(tmp_path / "pred"), "--subset", "test"]) == 0
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--data", str(phantom_dataset),
                 "--out", str(tmp_path / "m.csv")]) == 0
    assert "left_hip" in capsys.readouterr().out
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--data", str(phantom_dataset),
                 "--out", str(tmp_path / "m.csv")]) == 2
    assert "m.csv: already exists" in capsys.readouterr().err
    assert main(["check", "--data", str(phantom_dataset)]) == 0


def test_cli_check_lists_problems_and_exits_non_zero(tmp_path, capsys):
    data = write_square_dataset(tmp_path / "d", n=3, size=32)
    assert main(["check", "--data", str(data)]) == 0
    (data / "masks" / "left_thing" / "case1.png").unlink()
    write_png(data / "masks" / "left_thing" / "case1.png", np.zeros((8, 8), np.uint8))
    assert main(["check", "--data", str(data)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("error:") and "left_thing/case1.png" in line and "8x8" in line for line in out), out
    assert out[-1].endswith("1 error(s), 0 warning(s)")


@pytest.mark.slow
def test_large_16_bit_images_are_predicted_at_their_original_size(runs, tmp_path):
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    write_png(images / "big.png", rng.integers(0, 65535, (3000, 2400), dtype=np.uint16))
    write_png(images / "small.png", rng.integers(0, 255, (50, 70), dtype=np.uint8))
    out = predict_folder([runs["left_hip"], runs["right_hip"]], images, tmp_path / "pred", tta=True)
    assert read_image(out / "masks" / "left_hip" / "big.png").shape == (3000, 2400)
    assert read_image(out / "probabilities" / "right_hip" / "small.png").shape == (50, 70)


@pytest.mark.slow
def test_side_aware_and_consistency_runs_train_predict_and_load(phantom_dataset, tmp_path):
    side = train(profile_config("smoke", data=str(phantom_dataset), structures=("left_hip",), epochs=1),
                 tmp_path / "side", verbose=0)  # side-aware by default
    assert RunDir(side).load_model().input_shape == (None, 64, 64, 2)
    image = read_image(next((phantom_dataset / "images").glob("*.png")))
    assert Predictor(side).probabilities(image)["left_hip"].shape == image.shape
    both = train(profile_config("smoke", data=str(phantom_dataset), structures=("left_hip", "right_hip"), epochs=1,
                                consistency_weight=0.5, side_aware=False), tmp_path / "both", verbose=0)
    assert "consistency" in RunDir(both).history().columns
    tta = Predictor(both).probabilities(image, tta=True)  # one model predicts both partners
    assert set(tta) == {"left_hip", "right_hip"}
    with pytest.raises(ValueError, match="cannot be combined"):
        train(profile_config("smoke", data=str(phantom_dataset), structures=("left_hip", "right_hip"),
                             side_aware=True, consistency_weight=0.5), tmp_path / "bad")


def test_cli_report_tables_and_plots_any_metrics_csv(tmp_path):
    rows = [{"id": f"i{k}", "structure": s, "method": m, "dice": 0.5 + 0.01 * k, "iou": 0.4, "precision": 0.6,
             "recall": 0.7, "hd95": float(k), "assd": 1.0, "surface_dice": 0.3}
            for k in range(4) for s in ("left_hip", "right_hip") for m in ("model", "otsu")]
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    assert main(["report", "--eval", str(tmp_path / "m.csv"), "--out", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "| otsu | right_hip | 4 | 0.515 ± 0.013 (0.515) |" in text
    assert (tmp_path / "rep" / "metric_boxplots.png").stat().st_size > 10_000
