"""Choose the fusion post-processing on the validation split, the way nnU-Net does: a step is
kept only if it does not lower the mean validation Dice. A step that helps on phantoms (one
connected bone) can hurt on real data (a lung split by a catheter shadow), so it is measured,
not assumed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seglib.datasets import load_records
from seglib.fusion import fuse
from seglib.io import read_image
from seglib.metrics import segmentation_metrics
from seglib.predict import Predictor, select_ids

STEPS = ("largest_component", "fill_holes")


def select_postprocessing(run_dirs, data_dir, subset: str = "val", tta: bool = True
                          ) -> tuple[dict[str, bool], pd.DataFrame]:
    """The fusion options to use, and the validation Dice of every option set tried."""
    predictor = Predictor(run_dirs)
    records = load_records(data_dir, predictor.structures)
    wanted = select_ids({r.id: r.image for r in records}, run_dirs[0], subset)
    cases = [(predictor.probabilities(read_image(r.image), tta=tta), {s: m.read() for s, m in r.masks.items()})
             for r in records if r.id in wanted]
    return choose_postprocessing(cases)


def choose_postprocessing(cases) -> tuple[dict[str, bool], pd.DataFrame]:
    """cases: (probabilities by structure, true masks by structure) per image."""
    options = {step: False for step in STEPS}
    tried = [_scored(options, cases)]
    for step in STEPS:  # greedy, in a fixed order, as nnU-Net
        candidate = {**options, step: True}
        tried.append(_scored(candidate, cases))
        if tried[-1]["mean_dice"] >= _best_so_far(tried[:-1], options):
            options = candidate
    return options, pd.DataFrame(tried)


def _scored(options: dict[str, bool], cases) -> dict:
    dice = [segmentation_metrics(fuse(probabilities, **options).masks[s], truth[s])["dice"]
            for probabilities, truth in cases for s in truth]
    return {**options, "mean_dice": float(np.mean(dice))}


def _best_so_far(tried: list[dict], options: dict[str, bool]) -> float:
    return next(row["mean_dice"] for row in tried if all(row[k] == v for k, v in options.items()))
