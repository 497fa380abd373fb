"""What each symmetry component buys: train at a fixed budget with and without it, at 100% and
25% of the training images, and evaluate the fused test predictions.

    python -m seglib ablation --data DIR --structure left_hip --structure right_hip --out reports/ablation

writes ablation.csv (one row per configuration, fraction and structure), ablation.md (the table)
and ablation.png (Dice bars with their spread)."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pandas as pd

from seglib.config import profile_config
from seglib.data.folders import DatasetDir
from seglib.data.io import write_text
from seglib.data.layout import load_records
from seglib.data.outputs import check_replaceable, output_folder
from seglib.data.splits import split_records, write_split
from seglib.progress import progress_bar
from seglib.reporting.display import InlineFigure as Figure  # shows inline in notebooks
from seglib.reporting.figures import save
from seglib.reporting.plots import structure_color
from seglib.reporting.tables import markdown_table
from seglib.training.run_dir import RunDir

# name -> (config changes, one model for both partners?, flip TTA at test time?)
CONFIGURATIONS = {
    "plain": (dict(mirror_flip=False, side_aware=False), False, False),
    "mirror": (dict(mirror_flip=True, side_aware=False), False, False),
    "mirror+tta": (dict(mirror_flip=True, side_aware=False), False, True),
    "mirror+tta+side": (dict(mirror_flip=True, side_aware=True), False, True),
    "mirror+tta+unified_focal": (dict(mirror_flip=True, side_aware=False, loss="unified_focal_asym"), False, True),
    "mirror+tta+consistency": (dict(mirror_flip=True, side_aware=False, consistency_weight=1.0), True, True),
}


def ablation_folders(dataset: str, root: str | Path = ".") -> tuple[Path, Path]:
    """Where the ablation of a dataset named `dataset` writes its table and chart, and its runs:
    ROOT/reports/ablation/<dataset> and ROOT/runs/ablation/<dataset>, as `python -m seglib ablation` does."""
    return Path(root) / "reports" / "ablation" / dataset, Path(root) / "runs" / "ablation" / dataset


def subsample_split(split: dict[str, str], fraction: float, seed: int) -> dict[str, str]:
    """Keep `fraction` of the training images (seeded), the others become 'unused';
    validation and test stay as they are."""
    train_ids = sorted(i for i, s in split.items() if s == "train")
    keep = set(random.Random(seed).sample(train_ids, max(1, round(len(train_ids) * fraction))))
    return {i: "unused" if s == "train" and i not in keep else s for i, s in split.items()}


def run_ablation(data, structures, out_dir, work_dir, profile: str = "demo", fractions=(1.0, 0.25),
                 epochs: int | None = None, split_file=None, configurations=None, seed: int = 0,
                 force: bool = True) -> pd.DataFrame:
    """The ablation table, also written to OUT_DIR after every configuration. OUT_DIR goes through
    the output guard: `force` replaces an earlier ablation output (the notebook regenerates its
    own; the command line asks for --force), never a folder that ablation did not write."""
    data, out_dir, work_dir = DatasetDir(data), Path(out_dir), Path(work_dir)
    if len(structures) != 2:  # mirrored examples, the side channel and consistency need a left and a right
        raise ValueError(f"ablation needs a mirror pair of structures (left and right), got {list(structures)}")
    check_replaceable(out_dir, "ablation", [data, split_file], force)  # before hours of training
    # from random weights: what each option adds to training, not to a network already trained with it
    base = profile_config(profile, data=str(data), structures=tuple(structures), epochs=epochs, seed=seed,
                          init="none")
    records = load_records(data, structures)
    split = split_records(records, base.val_fraction, base.test_fraction, seed, root=data, split_file=split_file)
    rows, names = [], configurations or CONFIGURATIONS
    bar = progress_bar(len(fractions) * len(names), "ablation", unit="configuration")
    for fraction in fractions:
        fraction_dir = work_dir / f"fraction_{fraction:g}"
        fraction_dir.mkdir(parents=True, exist_ok=True)
        split_path = fraction_dir / "split.csv"
        subsampled = subsample_split(split, fraction, seed)
        write_split(subsampled, split_path)
        for name in names:
            rows += _evaluate_configuration(name, replace(base, split_file=str(split_path)), fraction,
                                            list(subsampled.values()).count("train"), fraction_dir, data)
            table = pd.DataFrame(rows)
            write_ablation_outputs(table, out_dir)  # after every configuration: partial results survive
            bar.update()
    bar.close()
    return pd.DataFrame(rows)


def _evaluate_configuration(name, base, fraction, n_train, fraction_dir, data) -> list[dict]:
    # Imported here: the CLI reads CONFIGURATIONS to build `--help`, which should not load TensorFlow.
    from seglib.evaluation.folder import evaluate_folder
    from seglib.inference.predictor import fuse_folder
    from seglib.training.fit import train

    changes, joint, tta = CONFIGURATIONS[name]
    # Configurations that train alike (e.g. with and without TTA) share their runs.
    run_root = fraction_dir / ("runs_" + "_".join(f"{k}-{v}" for k, v in sorted(changes.items())))
    groups = [base.structures] if joint else [(s,) for s in base.structures]
    runs = []
    for group in groups:
        config = replace(base, structures=tuple(group), **changes)
        run_dir = run_root / "_".join(group)
        runs.append(run_dir if _finished_with(run_dir, config) else train(config, run_dir, force=True, verbose=0))
    fused = fuse_folder(runs, data.images_dir, fraction_dir / name / "fused_test", tta=tta, subset="test", force=True)
    table = evaluate_folder(fused, data, list(base.structures))
    seconds = sum(RunDir(r).summary()["train_seconds"] for r in runs)
    return [{"configuration": name, "fraction": fraction, "n_train": n_train, "structure": structure,
             "dice_mean": group["dice"].mean(), "dice_std": group["dice"].std(),
             "hd95_mean": group["hd95"].mean(), "hd95_std": group["hd95"].std(),
             "n_test": len(group), "train_seconds": seconds}
            for structure, group in table.groupby("structure")]


def _finished_with(run_dir: Path, config) -> bool:
    """A finished run of exactly this config can be reused (an interrupted ablation goes on where it stopped);
    one from before the validation-chosen threshold is trained again, so every configuration is scored alike."""
    run = RunDir(run_dir)
    return run.is_finished() and run.config() == config and run.calibration_path.is_file()


def write_ablation_outputs(table: pd.DataFrame, out_dir: Path) -> None:
    """The table, its markdown and chart into OUT_DIR, each time complete (a temporary folder
    renamed); it replaces only an earlier ablation output."""
    with output_folder(out_dir, "ablation", force=True) as folder:
        _write_ablation_files(table, folder)


def _write_ablation_files(table: pd.DataFrame, out_dir: Path) -> None:
    write_text(out_dir / "ablation.csv", table.to_csv(index=False), overwrite=True)
    shown = table.assign(dice=[f"{m:.3f} ± {s:.3f}" for m, s in zip(table["dice_mean"], table["dice_std"])],
                         hd95=[f"{m:.1f} ± {s:.1f}" for m, s in zip(table["hd95_mean"], table["hd95_std"])],
                         train_seconds=table["train_seconds"].round(0).astype(int))
    columns = ["fraction", "n_train", "configuration", "structure", "dice", "hd95", "n_test", "train_seconds"]
    write_text(out_dir / "ablation.md", "# Ablation of the symmetry components\n\n"
               "Dice and HD95 (pixels): mean ± std over the test images; training wall time of the "
               "configuration's models (s).\n\n" + markdown_table(shown[columns]) + "\n", overwrite=True)
    save(ablation_chart(table), out_dir / "ablation.png")


def ablation_chart(table: pd.DataFrame) -> Figure:
    fractions = sorted(table["fraction"].unique(), reverse=True)
    figure = Figure(figsize=(5.5 * len(fractions), 4), layout="constrained")
    for ax, fraction in zip(figure.subplots(1, len(fractions), squeeze=False)[0], fractions):
        part = table[table["fraction"] == fraction]
        names = list(dict.fromkeys(part["configuration"]))
        structures = list(dict.fromkeys(part["structure"]))
        width = 0.8 / len(structures)
        for k, structure in enumerate(structures):
            rows = part[part["structure"] == structure].set_index("configuration").loc[names]
            ax.bar([i + k * width for i in range(len(names))], rows["dice_mean"], width, yerr=rows["dice_std"],
                   color=structure_color(structure), label=structure, capsize=2)
        ax.set_xticks([i + width * (len(structures) - 1) / 2 for i in range(len(names))], names, rotation=30,
                      ha="right", fontsize=8)
        low = max(0.0, float((part["dice_mean"] - part["dice_std"]).min()) - 0.05)
        ax.set(ylim=(low, 1.0), ylabel="test Dice", title=f"{fraction:.0%} of the training images")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    return figure
