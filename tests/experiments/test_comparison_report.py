"""Methods compared on one test split, and the report built from them: paired margins, the
contemporary variants trained like the U-Net, report.md / report.html and the CLI."""

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon

from seglib.cli.commands import main
from seglib.config import profile_config
from seglib.evaluation.statistics import margins_over
from seglib.experiments.method_comparison import (
    OURS,
    contemporary_runs,
    matches_reference,
    predict_methods,
    variant_config,
)
from seglib.reporting.document import FIGURES, build_report, write_html
from seglib.training.fit import train
from seglib.training.run_dir import RunDir


def test_margins_are_paired_per_image_and_positive_when_the_reference_is_better():
    rows = [("a", 0.9, 1.0, 0.5, 3.0), ("b", 0.8, 2.0, 0.8, 1.0), ("c", 0.7, np.nan, 0.6, 5.0), ("d", 0.6, 2.0, 0.2, 4.0)]
    table = pd.DataFrame(
        [{"id": i, "structure": "left_x", "method": "ours", "dice": d, "hd95": h} for i, d, h, _, _ in rows]
        + [{"id": i, "structure": "left_x", "method": "otsu", "dice": d, "hd95": h} for i, _, _, d, h in rows[::-1]])
    margin = margins_over(table, "ours").iloc[0]
    dice_gain = np.array([0.4, 0.0, 0.1, 0.4])  # matched by id, not by row order
    assert margin["dice_gain_mean"] == pytest.approx(dice_gain.mean())
    assert margin["dice_gain_std"] == pytest.approx(dice_gain.std(ddof=1))
    assert (margin["dice_better"], margin["n_dice"]) == (3, 4)
    assert margin["dice_wilcoxon_p"] == pytest.approx(wilcoxon(dice_gain).pvalue)
    # HD95: theirs - ours, the image with an undefined distance left out
    assert margin["hd95_gain_mean"] == pytest.approx(np.mean([2.0, -1.0, 2.0]))
    assert (margin["hd95_better"], margin["n_hd95"]) == (2, 3)


def test_identical_methods_have_zero_margin_and_no_p_value():
    table = pd.DataFrame([{"id": f"i{k}", "structure": "s", "method": m, "dice": 0.5, "hd95": 1.0}
                          for k in range(3) for m in ("ours", "copy")])
    margin = margins_over(table, "ours").iloc[0]
    assert margin["dice_gain_mean"] == 0 and np.isnan(margin["dice_wilcoxon_p"])
    with pytest.raises(ValueError, match="no rows of the reference method 'nobody'"):
        margins_over(table, "nobody")


def test_margins_refuse_ambiguous_tables_and_keep_the_sign_of_mm_distances():
    rows = [{"id": f"i{k}", "structure": "s", "method": m, "dice": 0.5, "hd95_mm": d}
            for k in range(3) for m, d in (("ours", 1.0), ("theirs", 3.0))]
    margin = margins_over(pd.DataFrame(rows), "ours", metrics=("hd95_mm",)).iloc[0]
    assert margin["hd95_mm_gain_mean"] == 2.0  # a smaller distance is better, in mm too
    twice = pd.DataFrame(rows + rows[:1])  # two metrics CSVs under one method name
    with pytest.raises(ValueError, match="method 'ours' has 2 repeated rows"):
        margins_over(twice, "ours")
    other_structure = pd.DataFrame(rows[:1] + [{**rows[1], "structure": "t"}])
    with pytest.raises(ValueError, match="method 'theirs' has no s rows"):
        margins_over(other_structure, "ours")


def test_html_report_is_self_contained(tmp_path):
    from matplotlib.figure import Figure

    from seglib.reporting.figures import save

    save(Figure(figsize=(1, 1)), tmp_path / "plot.png")
    html = write_html("# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![a plot](plot.png)\n", tmp_path,
                      tmp_path / "r.html").read_text()
    assert "<table>" in html and "<td>2</td>" in html
    assert 'src="data:image/png;base64,' in html and 'src="plot.png"' not in html


@pytest.fixture(scope="module")
def compared(phantom_dataset, tmp_path_factory):
    """Smoke U-Nets, a residual U-Net trained like them, Otsu; all predicted on the test split."""
    root = tmp_path_factory.mktemp("compare")
    unets = [train(profile_config("smoke", data=str(phantom_dataset), structures=(s,), epochs=1), root / s, verbose=0)
             for s in ("left_hip", "right_hip")]
    runs = {OURS: unets, **contemporary_runs(unets, ["resunet"], root, train_missing=True)}
    return runs, predict_methods(phantom_dataset, runs, ["otsu"], root / "predictions", tta=True)


@pytest.mark.slow
def test_variants_are_trained_exactly_like_the_unet_except_the_architecture(compared):
    runs, _ = compared
    for unet, variant in zip(runs[OURS], runs["residual U-Net"]):
        ours, theirs = RunDir(unet).config(), RunDir(variant).config()
        assert theirs.architecture == "resunet" and ours.architecture == "unet"
        assert {k: v for k, v in vars(theirs).items() if k not in ("architecture", "split_file")} == \
               {k: v for k, v in vars(ours).items() if k not in ("architecture", "split_file")}
        assert RunDir(variant).split() == RunDir(unet).split()
        assert matches_reference(variant, unet)


def test_against_a_fine_tuned_unet_the_variants_train_from_random_weights_on_the_profiles_schedule(tmp_path):
    """No variant ships pretrained: copying the U-Net's init would refuse to train (another network), and its
    fine-tuning rate would leave a network from random weights unlearnt."""
    unet = RunDir(tmp_path / "left_hip").write(profile_config("demo", structures=("left_hip",)), split={"a": "train"})
    variant, scratch = variant_config(unet.path, "resunet"), profile_config("demo", init="none")
    assert unet.config().init == "pelvis"
    assert (variant.init, variant.learning_rate, variant.epochs, variant.image_size) == \
           ("", scratch.learning_rate, scratch.epochs, scratch.image_size)
    assert (variant.architecture, variant.structures) == ("resunet", unet.config().structures)
    for name, config, alike in (("resunet", variant, True),
                                ("resunet_at_the_unet_rate", dataclasses.replace(variant, learning_rate=unet.config().learning_rate), False)):
        run = RunDir(tmp_path / name).write(config, split=unet.split())
        run.write_summary({})
        assert matches_reference(run.path, unet.path) is alike


@pytest.mark.slow
def test_a_variant_trained_with_another_budget_is_left_out_not_compared(compared, tmp_path, capsys):
    runs, _ = compared
    unet = runs[OURS][0]
    stale = tmp_path / "resunet" / unet.name
    stale.mkdir(parents=True)
    config, stale_run = RunDir(unet).config(), RunDir(stale)
    stale_run.write(dataclasses.replace(config, architecture="resunet", epochs=config.epochs + 5))
    stale_run.write_summary({})
    assert contemporary_runs([unet], ["resunet"], tmp_path, train_missing=False) == {}
    assert "residual U-Net left out" in capsys.readouterr().out
    # same options, but another split: it may have trained on the U-Net's test images
    stale_run.config_path.unlink()
    split = RunDir(unet).split()
    stale_run.write(dataclasses.replace(config, architecture="resunet"), split=dict(zip(split, reversed(split.values()))))
    assert not matches_reference(stale, unet)
    stale_run.split_path.write_text(RunDir(unet).split_path.read_text())
    assert not matches_reference(stale, unet)  # same split, but scored at 0.5 while the U-Net has its threshold
    stale_run.calibration_path.write_text(RunDir(unet).calibration_path.read_text())
    assert matches_reference(stale, unet)
    with pytest.raises(ValueError, match="unknown architecture 'transformer'"):
        contemporary_runs([unet], ["transformer"], tmp_path)


@pytest.mark.slow
def test_every_method_predicts_the_same_test_images(compared, phantom_dataset):
    runs, methods = compared
    test_ids = {i for i, name in RunDir(runs[OURS][0]).split().items() if name == "test"}
    assert list(methods.folders) == [OURS, "residual U-Net", "otsu"]
    for folder in methods.folders.values():
        for structure in ("left_hip", "right_hip"):
            assert {p.stem for p in (folder / "masks" / structure).glob("*.png")} == test_ids
    assert set(methods.postprocessing["method"]) == {OURS, "residual U-Net"}  # chosen per deep method
    assert all(seconds > 0 for seconds in methods.seconds_per_image.values())


@pytest.mark.slow
def test_report_has_every_section_table_and_figure(compared, phantom_dataset, tmp_path):
    runs, methods = compared
    report = build_report(tmp_path / "rep", methods.folders, phantom_dataset, reference=OURS, runs=runs,
                          seconds_per_image=methods.seconds_per_image, postprocessing=methods.postprocessing)
    text = report.read_text()
    for heading in ("## Dataset `pelvis", "## Training", "## Post-processing", "## Test metrics",
                    "## U-Net against each other method, paired per image", "## Best, median and worst",
                    "## Fused label maps and contested pixels", "## Left/right confusion", "## Inference time"):
        assert heading in text
    for name in FIGURES:
        assert f"]({name})" in text and (tmp_path / "rep" / name).stat().st_size > 5_000
    metrics = pd.read_csv(tmp_path / "rep" / "metrics.csv")
    assert set(metrics["method"]) == {OURS, "residual U-Net", "otsu"} and "hd95_mm" in metrics.columns
    margins = pd.read_csv(tmp_path / "rep" / "margins.csv")
    assert set(zip(margins["method"], margins["structure"])) == {
        (m, s) for m in ("residual U-Net", "otsu") for s in ("left_hip", "right_hip")}
    assert "residual U-Net | left_hip |" in text  # in the metric table, the margins and the timing
    html = (tmp_path / "rep" / "report.html").read_text()
    assert len(re.findall(r'src="data:image/png;base64,', html)) == len(FIGURES)
    laterality = pd.read_csv(tmp_path / "rep" / "laterality.csv")
    assert laterality["method"].iloc[0] == "ground truth"  # the midline's own error, beside the methods'
    assert set(laterality["id"]) == set(metrics["id"])
    assert methods.postprocessing.groupby("method")["chosen"].sum().eq(1).all()  # one step set used per method


@pytest.mark.slow
def test_cli_report_on_prediction_folders_and_on_metrics_csvs(compared, phantom_dataset, tmp_path, capsys):
    _, methods = compared
    preds = [f"{name}={folder}" for name, folder in methods.folders.items()]
    assert main(["report", "--pred", *preds, "--data", str(phantom_dataset), "--out", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## U-Net against each other method, paired per image" in text and "best_median_worst.png" in text
    assert "## Training" not in text  # no runs given: no training section
    assert main(["report", "--eval", str(tmp_path / "rep" / "metrics.csv"), "--reference", "otsu",
                 "--out", str(tmp_path / "csv")]) == 0
    assert "## otsu against each other method, paired per image" in (tmp_path / "csv" / "report.md").read_text()
    assert main(["report", "--pred", *preds, "--out", str(tmp_path / "bad")]) == 2
    assert "--pred needs --data" in capsys.readouterr().err
    assert main(["report", "--pred", preds[0], preds[0], "--data", str(phantom_dataset),
                 "--out", str(tmp_path / "bad")]) == 2
    assert "--pred names method 'U-Net' twice" in capsys.readouterr().err
    assert main(["report", "--pred", preds[0], "--data", str(phantom_dataset), "--reference", "nobody",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "no metrics for method 'nobody'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before anything was written
    with pytest.raises(SystemExit) as exit:
        main(["report", "--pred", "no-equals-sign", "--out", str(tmp_path / "bad")])
    assert exit.value.code == 2
    assert "argument --pred: 'no-equals-sign': expected NAME=DIR" in capsys.readouterr().err


@pytest.mark.slow
def test_report_without_images_shows_no_picture_of_the_data(compared, phantom_dataset, tmp_path):
    _, methods = compared
    preds = [f"{name}={folder}" for name, folder in methods.folders.items()]
    args = ["report", "--pred", *preds, "--data", str(phantom_dataset), "--out", str(tmp_path / "rep")]
    assert main(args) == 0 and (tmp_path / "rep" / "samples.png").exists()
    assert main([*args, "--no-images"]) == 2  # an earlier report is replaced only with --force
    assert main([*args, "--no-images", "--force"]) == 0  # the same folder again: no image may survive from the first run
    written = {p.name for p in (tmp_path / "rep").iterdir()}
    assert not written & {"samples.png", "best_median_worst.png", "fused_label_maps.png"}
    assert "metric_boxplots.png" in written and "## Test metrics" in (tmp_path / "rep" / "report.md").read_text()
