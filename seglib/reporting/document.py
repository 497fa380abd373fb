"""The report: every method's predictions on one test split evaluated against the ground truth
and assembled into OUT/report.md and a self-contained OUT/report.html, with the tables
(metrics.csv, metrics_summary.csv, margins.csv, laterality.csv) and the figures they link.

`build_report` is what notebook 03 and `python -m seglib report` call. It uses what it is given:
prediction folders and the dataset make the full report; training runs add the training
section; metrics CSVs alone (`extra_metrics`) give the metric tables and box plots."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from seglib.data.folders import DatasetDir, PredictionDir
from seglib.data.io import read_image, spreadsheet_safe, write_text
from seglib.data.layout import available_structures, load_records
from seglib.data.outputs import check_replaceable, output_folder
from seglib.evaluation.folder import evaluate_folder
from seglib.evaluation.statistics import margins_over, summarise
from seglib.reporting import figures
from seglib.reporting.tables import markdown_table, metric_table
from seglib.training.run_dir import RunDir

# The figures a full report links, in the order it shows them.
FIGURES = ("samples.png", "training_curves.png", "metric_boxplots.png", "best_median_worst.png",
           "fused_label_maps.png")
TABLES = ("metrics.csv", "metrics_summary.csv", "margins.csv", "laterality.csv", "contested.csv")
# Everything build_report may write into its folder.
REPORT_FILES = ("report.md", "report.html", *TABLES, *FIGURES)


def build_report(out_dir, predictions: dict[str, Path] | None = None, data_dir=None, reference: str | None = None,
                 runs: dict[str, list[Path]] | None = None, seconds_per_image: dict[str, float] | None = None,
                 postprocessing: pd.DataFrame | None = None, extra_metrics: pd.DataFrame | None = None,
                 show_images: bool = True, force: bool = True, inputs=()) -> Path:
    """Write OUT/report.md (+ .html, tables, figures) and return its path.

    predictions: method -> prediction folder in the dataset layout (needs data_dir);
    reference: the method the others are measured against (default: the first);
    runs: method -> its training run dirs; seconds_per_image: method -> inference time;
    postprocessing: the validation table of seglib.experiments.method_comparison.predict_methods;
    extra_metrics: rows of metrics CSVs written by `evaluate`, for methods without a folder here;
    show_images=False leaves out the figures that show the images (samples, overlays, label maps),
    for data whose licence forbids sharing them; inputs: further files the report is made from (the
    metrics CSVs extra_metrics was read from), which OUT must not be, contain or lie inside.

    OUT goes through the output guard (seglib.data.outputs.output_folder): the report is written
    into a temporary folder that becomes OUT only when complete, so a failure leaves an earlier
    report whole. `force` replaces an earlier report (notebook 03 regenerates its own; the command
    line asks for --force), never a folder that report did not write."""
    out_dir, predictions, runs = Path(out_dir), predictions or {}, runs or {}
    if predictions and data_dir is None:
        raise ValueError("prediction folders need the dataset (data_dir) with the ground truth")
    inputs = [data_dir, *predictions.values(), *(run for method_runs in runs.values() for run in method_runs),
              *inputs]
    check_replaceable(out_dir, "report", inputs, force)  # before the work, not after
    table = _metrics(predictions, data_dir, extra_metrics)
    reference = _validated_reference(reference, table, runs)
    with output_folder(out_dir, "report", inputs, force) as folder:
        _write_report(folder, table, predictions, data_dir, reference, runs, seconds_per_image, postprocessing,
                      show_images)
    return out_dir / "report.md"


def _write_report(out_dir: Path, table, predictions, data_dir, reference, runs, seconds_per_image, postprocessing,
                  show_images) -> None:
    _write_csv(table, out_dir / "metrics.csv")
    _write_csv(summarise(table), out_dir / "metrics_summary.csv")
    sections = ["# Segmentation report"]
    if data_dir is not None:
        sections += _dataset_section(data_dir, runs, out_dir, show_images)
    if runs:
        sections += _training_section(runs, out_dir)
    if postprocessing is not None and not postprocessing.empty:
        sections += _postprocessing_section(postprocessing)
    sections += _metrics_section(table, reference, out_dir)
    if predictions:
        if show_images:
            sections += _cases_section(table, predictions, data_dir, reference, out_dir)
        sections += _fusion_section(predictions, data_dir, reference, out_dir, show_images)
        sections += _laterality_section(predictions, data_dir, out_dir)
    if seconds_per_image:
        sections += _timing_section(seconds_per_image)
    text = "\n\n".join(sections) + "\n"
    write_html(text, out_dir, out_dir / "report.html")
    write_text(out_dir / "report.md", text, overwrite=True)


def _validated_reference(reference, table: pd.DataFrame, runs) -> str:
    # Checked before anything is written, so a typo never leaves a half-updated report folder.
    methods = list(table["method"].unique())
    reference = reference or methods[0]
    unknown = [name for name in (reference, *runs) if name not in methods]
    if unknown:
        raise ValueError(f"no metrics for method {unknown[0]!r}; the methods are {', '.join(methods)}")
    return reference


def _postprocessing_section(postprocessing: pd.DataFrame) -> list[str]:
    shown = _method_first(postprocessing).assign(mean_dice=lambda t: t["mean_dice"].map("{:.4f}".format))
    return ["## Post-processing, chosen on the validation split",
            ("Steps are tried greedily in this order; each is kept only if it raises the mean validation Dice "
             "(as nnU-Net decides). One row per step set tried; `chosen` marks the set used on the test images."),
            markdown_table(shown)]


def _timing_section(seconds_per_image: dict[str, float]) -> list[str]:
    timing = pd.DataFrame({"method": list(seconds_per_image), "seconds per image": list(seconds_per_image.values())})
    return [(f"## Inference time per image ({os.cpu_count()} CPU cores; deep methods include loading their models "
             "once and writing probability maps)"), markdown_table(timing)]


def _metrics(predictions, data_dir, extra_metrics) -> pd.DataFrame:
    tables = [evaluate_folder(folder, data_dir, method=name) for name, folder in predictions.items()]
    if extra_metrics is not None:
        tables.append(extra_metrics)
    if not tables:
        raise ValueError("nothing to report: give prediction folders or metrics tables")
    return pd.concat(tables, ignore_index=True)


def _dataset_section(data_dir, runs, out_dir, show_images: bool) -> list[str]:
    data_dir, structures = Path(data_dir), available_structures(data_dir)
    records = load_records(data_dir, structures)
    shapes = pd.DataFrame([read_image(r.image).shape for r in records], columns=["height", "width"])
    spacing = [r.pixel_spacing_mm for r in records if r.pixel_spacing_mm is not None]
    facts = {
        "images": len(records), "structures": ", ".join(structures),
        "height (px)": f"{shapes['height'].min()}–{shapes['height'].max()}",
        "width (px)": f"{shapes['width'].min()}–{shapes['width'].max()}",
        "pixel spacing known": f"{len(spacing)} of {len(records)} images",
    }
    if runs:
        split = pd.Series(RunDir(next(iter(runs.values()))[0]).split()).value_counts()
        facts["split"] = ", ".join(f"{split[name]} {name}" for name in ("train", "val", "test", "unused") if name in split)
    sections = [f"## Dataset `{data_dir.name}`", markdown_table(pd.DataFrame([facts]))]
    if show_images:
        figures.show_samples(data_dir, structures, n=4, out=out_dir / "samples.png")
        sections.append("![samples](samples.png)")
    return sections


def _training_section(runs, out_dir) -> list[str]:
    rows = [{"method": method, "run": run.path.name, **_start_and_size(run.config()), **run.summary()}
            for method, run_dirs in runs.items() for run in map(RunDir, run_dirs)]
    figures.plot_history(runs, out=out_dir / "training_curves.png")
    return ["## Training", ("The run summaries of each deep method (notebook 03 compares only variants trained like "
            "the U-Net: same data, split, budget, seed and options; only the architecture differs, and, where "
            "the U-Net was fine-tuned from a shipped model, the start, working size and schedule: no variant ships "
            "trained)."),
            markdown_table(pd.DataFrame(rows)),
            "![training curves: loss and Dice per epoch, training dashed, validation solid](training_curves.png)"]


def _start_and_size(config) -> dict:
    """Where a run's weights started (a shipped model's name, a run folder's name, or random weights) and its
    working size: what a fine-tuned U-Net and the variants it is compared with differ in."""
    return {"start": Path(config.init).name if config.init else "random weights", "px": config.image_size}


def _metrics_section(table, reference, out_dir) -> list[str]:
    margins = margins_over(table, reference)
    _write_csv(margins, out_dir / "margins.csv")
    figures.metric_boxplot(table, out=out_dir / "metric_boxplots.png")
    has_mm = any(column.endswith("_mm") for column in table.columns)
    sections = ["## Test metrics: mean ± std (median)",
                ("Distances in pixels of the original images (HD95 and ASSD as medpy computes them); surface Dice "
                 "at a tolerance of 1 px; `undefined` counts images where exactly one mask was empty."),
                markdown_table(metric_table(table))]
    if has_mm:
        sections += ["Distances in mm (images with a known pixel spacing):",
                     markdown_table(metric_table(table, metrics=("hd95_mm", "hd_mm", "assd_mm")))]
    sections += ["![box plots of Dice and HD95 per method and structure](metric_boxplots.png)"]
    if not margins.empty:
        sections += [f"## {reference} against each other method, paired per image",
                     ("Paired over the test images: mean ± std of the per-image gain (Dice: ours − theirs; "
                      "HD95: theirs − ours, px; positive = ours better), images where ours is better, and the "
                      "two-sided Wilcoxon signed-rank p-value (`tie`: every image equal). An image where either HD95 "
                      "is undefined (an empty mask) is left out of the HD95 columns, so count the failures in the "
                      "metric table. Each method was trained once (one seed) and the p-values, uncorrected for "
                      "the number of comparisons, treat the test images as the sample: read them as a guide to "
                      "how consistent a difference is across images, not to how it would vary between trainings."),
                     markdown_table(_margin_text(margins))]
    return sections


def _margin_text(margins: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, m in margins.iterrows():
        row = {"method": m["method"], "structure": m["structure"]}
        for metric in ("dice", "hd95"):
            digits = 4 if metric == "dice" else 2  # deep models differ in the third decimal of Dice
            row[f"{metric} gain"] = f"{m[f'{metric}_gain_mean']:+.{digits}f} ± {m[f'{metric}_gain_std']:.{digits}f}"
            row[f"{metric}: ours better"] = f"{m[f'{metric}_better']}/{m[f'n_{metric}']}"
            p_value = m[f"{metric}_wilcoxon_p"]
            row[f"{metric} p"] = "tie" if np.isnan(p_value) else f"{p_value:.2g}"
        rows.append(row)
    return pd.DataFrame(rows)


def _cases_section(table, predictions, data_dir, reference, out_dir) -> list[str]:
    picks = figures.best_median_worst(table[table["method"] == reference])
    figures.compare_methods(predictions, data_dir, picks.index, scores=picks, out=out_dir / "best_median_worst.png")
    return [f"## Best, median and worst test images (by {reference}'s mean Dice), every method",
            "![ground truth and each method's masks on the best, median and worst image](best_median_worst.png)"]


def _fusion_section(predictions, data_dir, reference, out_dir, show_images: bool) -> list[str]:
    folders = {name: PredictionDir(folder) for name, folder in predictions.items()}
    fused = {name: folder for name, folder in folders.items() if folder.contested_csv.is_file()}
    if not fused:
        return []
    counts = pd.concat([pd.read_csv(folder.contested_csv).assign(method=name) for name, folder in fused.items()])
    _write_csv(_method_first(counts), out_dir / "contested.csv")
    summary = counts.groupby("method", sort=False)["contested_pixels"].agg(["mean", "max"]).reset_index()
    sections = ["## Fused label maps and contested pixels",
                ("Contested pixels were claimed by two models (probability ≥ threshold) before fusion decided: "
                 "mean and max per test image (per image in contested.csv)."), markdown_table(summary)]
    if reference in fused and show_images:
        folder = fused[reference]
        ours = counts[counts["method"] == reference]
        worst = ours.nlargest(3, "contested_pixels")["id"]
        figures.show_contested(folder, DatasetDir(data_dir).images_dir, list(worst), out=out_dir / "fused_label_maps.png")
        which = ("the three images with the most contested pixels" if ours["contested_pixels"].any()
                 else "no pixel was contested on any test image, so these are the first three")
        sections.append(f"![{reference}'s fused label maps, contested pixels outlined in white; {which}]"
                        "(fused_label_maps.png)")
    return sections


def _laterality_section(predictions, data_dir, out_dir) -> list[str]:
    from seglib.evaluation.laterality import laterality_table
    from seglib.symmetry.partners import patient_side

    tables = []
    for name, folder in predictions.items():
        sided = [s for s in available_structures(folder) if patient_side(s) is not None]
        if sided:
            tables.append(laterality_table(folder, data_dir, sided).assign(method=name))
    if not tables:
        return []
    table = pd.concat(tables, ignore_index=True)
    truth = _truth_laterality(data_dir, table)
    table = pd.concat([truth, table], ignore_index=True) if truth is not None else table
    _write_csv(_method_first(table), out_dir / "laterality.csv")
    summary = table.groupby(["method", "structure"], sort=False)[["wrong_side_fraction", "in_partner_fraction"]]
    return ["## Left/right confusion",
            ("Fraction of a structure's predicted pixels on the wrong side of the midline, and inside the partner's "
             "ground truth: mean (max) over the test images; per image in laterality.csv. The midline is the "
             "manifest's where it gives one, else estimated from the image. The `ground truth` row measures that "
             "midline: where the true masks cross it, a method's wrong-side pixels are not confusion. The "
             "classical baselines split their mask at the estimated midline, so on an estimated midline they "
             "cannot be on its wrong side."),
            markdown_table(summary.agg(lambda v: f"{v.mean():.4f} ({v.max():.4f})").reset_index())]


def _truth_laterality(data_dir, predicted: pd.DataFrame) -> pd.DataFrame | None:
    """The same measure on the true masks of the predicted images (None for label-value datasets)."""
    from seglib.evaluation.laterality import laterality_table

    structures = list(predicted["structure"].unique())
    if not DatasetDir(data_dir).has_masks(structures):
        return None
    return laterality_table(data_dir, data_dir, structures, ids=set(predicted["id"])).assign(method="ground truth")


def _method_first(frame: pd.DataFrame) -> pd.DataFrame:
    if "method" not in frame.columns:
        return frame
    return frame[["method", *[c for c in frame.columns if c != "method"]]]


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    write_text(path, frame.map(spreadsheet_safe).to_csv(index=False), overwrite=True)


def write_html(markdown_text: str, figures_dir, out: Path) -> Path:
    """The markdown as one self-contained HTML file: figures are embedded, so it can be mailed or archived."""
    import mistune

    body = mistune.create_markdown(plugins=["table"])(markdown_text)

    def embed(match: re.Match) -> str:
        data = base64.b64encode((Path(figures_dir) / match.group(1)).read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^":/]+\.png)"', embed, body)
    return write_text(out, _HTML.format(body=body), overwrite=True)


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Segmentation report</title>
<style>
body {{ font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }}
th, td {{ border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; }}
th {{ background: #eee; }}
img {{ max-width: 100%; }}
</style></head>
<body>
{body}
</body></html>
"""
