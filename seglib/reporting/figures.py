"""Figures the notebooks show and the report writes into reports/: samples, training curves,
predictions against ground truth, fused label maps, metric distributions.

Every function returns a matplotlib Figure (built without pyplot's global state, so it works
headless; an InlineFigure, so a notebook shows it as a picture) and, given `out`, saves it at 150 dpi
through a temporary name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator, ScalarFormatter, SymmetricalLogLocator
from PIL import Image as PILImage

from seglib.data.folders import PredictionDir
from seglib.data.io import atomic_file, read_image, read_mask
from seglib.data.layout import load_records
from seglib.reporting.display import InlineFigure as Figure  # shows inline in notebooks
from seglib.reporting.plots import overlay, structure_color
from seglib.training.run_dir import RunDir

DPI = 150


def save(figure: Figure, out: str | Path | None) -> Figure:
    """Write `figure` to `out` (if given), replacing a figure of an earlier run; returns the figure."""
    if out is not None:
        with atomic_file(out, overwrite=True) as temporary:
            figure.savefig(temporary, dpi=DPI, bbox_inches="tight")
    return figure


def show_samples(data_dir, structures, n: int = 8, out=None) -> Figure:
    """The first n images of a dataset with their masks."""
    records = load_records(data_dir, structures)[:n]
    figure, axes = _grid(len(records), ncols=4)
    for ax, record in zip(axes, records):
        overlay(ax, read_image(record.image), {s: m.read() for s, m in record.masks.items()}, title=record.id)
    _legend(figure, structures)
    return save(figure, out)


def plot_history(runs, out=None) -> Figure:
    """Loss and Dice per epoch, training (dashed) and validation (solid), one colour per structure.
    `runs`: run dirs, or method -> run dirs for one row of panels per method."""
    runs = runs if isinstance(runs, dict) else {"": list(runs)}
    figure = Figure(figsize=(10, 3.4 * len(runs)), layout="constrained")
    # shared axes per column, so methods compare at a glance
    panels = figure.subplots(len(runs), 2, squeeze=False, sharex=True, sharey="col")
    for (method, run_dirs), (loss_ax, dice_ax) in zip(runs.items(), panels):
        for run_dir in run_dirs:
            history = RunDir(run_dir).history()
            name = Path(run_dir).name
            color = structure_color(name)
            for ax, metric in ((loss_ax, "loss"), (dice_ax, "dice")):
                ax.plot(history["epoch"] + 1, history[metric], "--", color=color, label=f"{name} train")
                ax.plot(history["epoch"] + 1, history[f"val_{metric}"], "-", color=color, label=f"{name} val")
        for ax, title in ((loss_ax, "loss"), (dice_ax, "Dice")):
            ax.set(xlabel="epoch", title=f"{method} {title}".strip())
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        loss_ax.set_yscale("log")  # an early validation spike (batch norm warming up) would flatten the rest
        dice_ax.legend(fontsize=8)
    return save(figure, out)


def show_predictions(pred_dir, data_dir, structures, ids=None, n: int = 4, out=None,
                     scores: pd.Series | None = None) -> Figure:
    """Truth beside prediction for `ids` (default: the first n predicted images)."""
    if ids is None:
        ids = sorted(p.stem for p in PredictionDir(pred_dir).masks_dir(structures[0]).glob("*.png"))[:n]
    return compare_methods({"predicted": pred_dir}, data_dir, ids, scores=scores, out=out, structures=structures)


def best_median_worst(table: pd.DataFrame) -> pd.Series:
    """Mean Dice over structures per image; the ids of the best, median and worst images."""
    per_image = table.groupby("id")["dice"].mean().sort_values()
    picks = [per_image.index[-1], per_image.index[len(per_image) // 2], per_image.index[0]]
    return per_image.loc[list(dict.fromkeys(picks))]


def compare_methods(predictions: dict, data_dir, ids, scores: pd.Series | None = None, out=None,
                    structures=None) -> Figure:
    """One row per image: the ground truth, then each method's masks (method -> prediction folder);
    `structures` default to every structure the folders predicted."""
    predictions = {method: PredictionDir(folder) for method, folder in predictions.items()}
    structures = structures or sorted({s for folder in predictions.values() for s in folder.predicted_structures()})
    records = {r.id: r for r in load_records(data_dir, structures)}
    columns = ["ground truth", *predictions]
    figure = Figure(figsize=(2.4 * len(columns), 2.6 * len(ids)), layout="constrained")
    for row, image_id in zip(figure.subplots(len(ids), len(columns), squeeze=False), ids):
        image = read_image(records[image_id].image)
        masks = [{s: m.read() for s, m in records[image_id].masks.items()}]
        masks += [{s: read_mask(f.mask_path(s, image_id)) for s in structures if f.mask_path(s, image_id).is_file()}
                  for f in predictions.values()]
        for ax, column, shown in zip(row, columns, masks):
            overlay(ax, image, shown, title=column)
        label = image_id + (f"\nDice {scores[image_id]:.3f}" if scores is not None else "")
        row[0].text(-0.04, 0.5, label, transform=row[0].transAxes, rotation=90, ha="right", va="center", fontsize=8)
    _legend(figure, structures)
    return save(figure, out)


def show_contested(pred_dir, images_dir, ids, out=None) -> Figure:
    """The fused label map over its image, with the pixels both models claimed outlined in white."""
    pred_dir = PredictionDir(pred_dir)
    labels = pred_dir.read_labels()
    fusion = pred_dir.fusion_json
    threshold = json.loads(fusion.read_text()).get("threshold", 0.5) if fusion.is_file() else 0.5  # fuse's default
    figure = Figure(figsize=(3 * len(ids), 3), layout="constrained")
    for ax, image_id in zip(figure.subplots(1, len(ids), squeeze=False)[0], ids):
        label_map = read_image(pred_dir.label_path(image_id))
        masks = {name: label_map == value for name, value in labels.items()}
        probabilities = [pred_dir.read_probability(name, image_id) for name in labels]
        contested = (np.stack(probabilities) >= threshold).sum(axis=0) >= 2  # as fusion counts them
        image = read_image(next(Path(images_dir).glob(f"{image_id}.*")))
        overlay(ax, image, masks, contour=False, title=f"{image_id}: {contested.sum()} contested px")
        ax.contour(contested, levels=[0.5], colors="white", linewidths=0.8)
    return save(figure, out)


def show_overlays(segment_dir, n: int = 6, out=None) -> Figure:
    """n overlays of a `segment` output folder (OUT/overlays/), with a legend of its structures: the films
    its quality.csv flags first, least trusted first (their lowest predicted Dice in the title), then the rest."""
    segment_dir = Path(segment_dir)
    overlays = {path.stem: path for path in sorted((segment_dir / "overlays").glob("*.png"))}
    trust = _least_predicted_dice(segment_dir / "quality.csv")
    flagged_first = {image_id: (-flag, dice) for image_id, (dice, flag) in trust.items()}
    shown = sorted(overlays, key=lambda image_id: flagged_first.get(image_id, (0, 1.0)))[:n]
    figure, axes = _grid(len(shown), ncols=3)
    for ax, image_id in zip(axes, shown):
        with PILImage.open(overlays[image_id]) as picture:  # colour: read_image reads radiographs, in grey
            ax.imshow(np.asarray(picture.convert("RGB")))
        dice, flag = trust.get(image_id, (None, 0))
        ax.set_title(image_id + (f"  FLAGGED (predicted Dice {dice:.2f})" if flag else ""), fontsize=9,
                     color="crimson" if flag else "black")
        ax.set_axis_off()
    _legend(figure, list(PredictionDir(segment_dir).read_labels()))
    return save(figure, out)


def _least_predicted_dice(quality_csv: Path) -> dict[str, tuple[float, int]]:
    """id -> (its lowest predicted Dice, 1 when any structure is flagged), from a quality.csv (none: {})."""
    if not quality_csv.is_file():
        return {}
    table = pd.read_csv(quality_csv, dtype={"id": str}, keep_default_na=False)
    table["id"] = table["id"].str.replace(r"^'(?=[=+\-@\t\r])", "", regex=True)  # undo spreadsheet_safe
    grouped = table.groupby("id").agg(dice=("predicted_dice", "min"), flag=("flag", "max"))
    return {image_id: (float(row.dice), int(row.flag)) for image_id, row in grouped.iterrows()}


def metric_boxplot(table: pd.DataFrame, metrics=("dice", "hd95"), out=None) -> Figure:
    """Distribution over test images per method and structure (box colour = structure), one panel per metric."""
    groups = list(table.groupby(["method", "structure"], sort=False))
    figure = Figure(figsize=(max(4.5, 0.8 * len(groups)) * len(metrics), 4), layout="constrained")
    for ax, metric in zip(figure.subplots(1, len(metrics), squeeze=False)[0], metrics):
        values = [g[metric].dropna().to_numpy() for _, g in groups]
        boxes = ax.boxplot(values, patch_artist=True, medianprops={"color": "black"})
        for box, ((_, structure), _) in zip(boxes["boxes"], groups):
            box.set_facecolor(structure_color(structure))
            box.set_alpha(0.6)
        ax.set_xticks(range(1, len(groups) + 1), [f"{m}\n{s}" for (m, s), _ in groups], rotation=35, ha="right",
                      fontsize=8)
        distance = metric in ("hd95", "hd", "assd")
        if distance:
            # baselines miss by tens of pixels, models by about one: a linear axis would hide one of them
            ax.set_yscale("symlog", linthresh=1.0)
            ax.yaxis.set_major_locator(SymmetricalLogLocator(base=10, linthresh=1.0, subs=(1, 2, 5)))
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.set_ylim(bottom=0)
        ax.set(title=metric + (" (px, symmetric log scale)" if distance else ""))
        ax.grid(alpha=0.3, axis="y")
    return save(figure, out)


def _grid(n: int, ncols: int):
    nrows = max(1, -(-n // ncols))
    figure = Figure(figsize=(3 * min(n, ncols), 3 * nrows), layout="constrained")
    axes = figure.subplots(nrows, min(n, ncols), squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    return figure, axes


def _legend(figure: Figure, structures) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=structure_color(s), label=s) for s in structures]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
