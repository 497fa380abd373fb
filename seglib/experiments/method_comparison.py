"""The methods a report compares on one test split, each ending as a prediction folder in the
dataset layout so that evaluation and figures treat them alike:

- our U-Net: one model per structure, fused (notebooks 01-03);
- contemporary variants of our own builders (residual U-Net, attention U-Net), trained with
  exactly the U-Net's data, split, budget, seed and options; only the architecture differs (and the start:
  a U-Net fine-tuned from the shipped pelvis model meets variants trained from random weights as the profile
  trains them);
- classical scikit-image baselines (seglib.inference.baselines).

Every deep method gets its own fusion post-processing, chosen on the validation split."""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from seglib.config import RunConfig, profile_config
from seglib.data.folders import DatasetDir, PredictionDir
from seglib.training.run_dir import RunDir

OURS = "U-Net"
VARIANTS = {"resunet": "residual U-Net", "attention_unet": "attention U-Net"}


@dataclass
class MethodPredictions:
    folders: dict[str, Path]  # method -> prediction folder (masks/<structure>/<id>.png)
    seconds_per_image: dict[str, float]  # wall time on this machine, model loading included
    postprocessing: pd.DataFrame  # validation Dice of each post-processing option set tried, per method


def variant_runs(reference_runs, architecture: str, runs_root: str | Path) -> list[Path]:
    """Where the variant of each per-structure U-Net run lives: RUNS_ROOT/<architecture>/<run name>."""
    return [Path(runs_root) / architecture / Path(run).name for run in reference_runs]


def variant_config(reference_run: str | Path, architecture: str) -> RunConfig:
    """The reference run's config with another architecture, pinned to the reference's split; where the reference
    started from trained weights, from random ones at what the profile gives such a run (working size, rate,
    epochs), so `make compare` keeps its budget."""
    reference = RunDir(reference_run)
    config = reference.config()
    if config.init:
        scratch = profile_config(config.profile, init="none")
        config = dataclasses.replace(config, init="", learning_rate=scratch.learning_rate, epochs=scratch.epochs,
                                     image_size=scratch.image_size)
    return dataclasses.replace(config, architecture=architecture, split_file=str(reference.split_path))


def matches_reference(run_dir: str | Path, reference_run: str | Path) -> bool:
    """True if run_dir is a finished run trained like reference_run apart from the architecture:
    same options and the very same split (a U-Net retrained with another budget or split makes an
    older variant an unfair comparison, or one that trained on the U-Net's test images)."""
    run, reference = RunDir(run_dir), RunDir(reference_run)
    if not run.is_finished():
        return False
    trained = run.config()
    wanted = variant_config(reference_run, trained.architecture)  # split_file: the same split is checked below
    same_options = all(getattr(trained, f.name) == getattr(wanted, f.name)
                       for f in dataclasses.fields(RunConfig) if f.name != "split_file")
    # Both with or both without a validation-chosen threshold: else one method is scored at another threshold.
    calibrated_alike = run.calibration_path.is_file() == reference.calibration_path.is_file()
    return same_options and run.split() == reference.split() and calibrated_alike


def contemporary_runs(reference_runs, architectures, runs_root, train_missing: bool = False,
                      verbose: int | str = 0) -> dict[str, list[Path]]:
    """method name -> per-structure run dirs of each variant that is trained like the reference.
    Missing or stale runs are trained when `train_missing`; otherwise the method is left out
    and the reason printed."""
    found = {}
    for architecture in architectures:
        if architecture not in VARIANTS:
            raise ValueError(f"unknown architecture {architecture!r}; choose from {', '.join(VARIANTS)}")
        runs = variant_runs(reference_runs, architecture, runs_root)
        missing = [(ref, run) for ref, run in zip(reference_runs, runs) if not matches_reference(run, ref)]
        if missing and train_missing:
            from seglib.training.fit import train

            for reference, run in missing:
                train(variant_config(reference, architecture), run, force=True, verbose=verbose)
        elif missing:
            print(f"{VARIANTS[architecture]} left out: no run trained like the U-Net at "
                  f"{', '.join(str(run) for _, run in missing)} (train_contemporary=True trains it)")
            continue
        found[VARIANTS[architecture]] = runs
    return found


def predict_methods(data_dir, runs: dict[str, list[Path]], baselines, out_root, tta: bool = True,
                    subset: str = "test", strategy: str = "argmax", threshold: float = 0.5) -> MethodPredictions:
    """Predict `subset` of the dataset with every method; `runs` maps a deep method's name to its
    per-structure run dirs (the first method's split decides the images). `strategy` and
    `threshold` as in seglib.inference.fusion.fuse; with "priority", the structures' order is the priority."""
    from seglib.data.layout import list_images
    from seglib.inference.baselines import predict_baseline_folder
    from seglib.inference.postprocessing import select_postprocessing
    from seglib.inference.predictor import fuse_folder, select_ids

    dataset, out_root = DatasetDir(data_dir), Path(out_root)
    first_runs = next(iter(runs.values()))
    structures = [s for run in first_runs for s in RunDir(run).config().structures]
    ids = list(select_ids(list_images(dataset.images_dir), first_runs[0], subset))
    fusion = {"strategy": strategy, "threshold": threshold,
              "priority": structures if strategy == "priority" else None}
    folders, seconds, tried = {}, {}, []
    # Prediction folders are derived outputs, regenerated on every run (force=True).
    for name, run_dirs in runs.items():
        options, table = select_postprocessing(run_dirs, dataset, subset="val", tta=tta, **fusion)
        tried.append(table.assign(method=name))
        started = time.perf_counter()
        folders[name] = fuse_folder(run_dirs, dataset.images_dir, out_root / f"{_slug(name)}_{subset}", tta=tta,
                                    subset=subset, force=True, **fusion, **options)
        seconds[name] = (time.perf_counter() - started) / len(ids)
        _check_same_images(folders[name], structures, ids, name)
    for name in baselines:
        started = time.perf_counter()
        folders[name] = predict_baseline_folder(name, dataset.images_dir, out_root / f"baseline_{_slug(name)}_{subset}",
                                                structures, ids=ids, force=True)
        seconds[name] = (time.perf_counter() - started) / len(ids)
    postprocessing = pd.concat(tried, ignore_index=True) if tried else pd.DataFrame()
    return MethodPredictions(folders, seconds, postprocessing)


def _check_same_images(folder: Path, structures, ids, name: str) -> None:
    # Each run set predicts the test split of its own split.csv; a comparison needs one test set.
    for structure in structures:
        masks = PredictionDir(folder).masks_dir(structure)
        predicted = sorted(p.stem for p in masks.glob("*.png"))
        if predicted != sorted(ids):
            raise ValueError(f"{name}: {masks} holds {len(predicted)} images, not the "
                             f"{len(ids)} of the first method's split; its runs were trained on another split")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
