"""Choose the fusion post-processing on the validation split, the way nnU-Net does: a step is
kept only if it raises the mean validation Dice (over all structures; nnU-Net also decides per class). A step that helps on phantoms (one
connected bone) can hurt on real data (a lung split by a catheter shadow), so it is measured,
not assumed.

Steps, tried greedily in this order (each one on top of those kept before it):

1. ``remove_small_objects``: drop components under ``SMALL_OBJECT_FRACTION`` of the image, i.e.
   stray specks, while keeping every real part of a structure that is split in two.
2. ``largest_component``: keep only the largest component (right when a structure is one piece).
3. ``fill_holes``: fill small enclosed holes.

The chosen steps come back as ``fuse()`` keyword arguments (see ``fuse_options``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seglib.data.folders import DatasetDir
from seglib.data.layout import load_records
from seglib.evaluation.metrics import segmentation_metrics
from seglib.inference.fusion import fuse
from seglib.inference.predictor import predictions, prepared_inference

SMALL_OBJECT_FRACTION = 0.001  # 0.1 % of the image: well below any real structure, so only specks go

# step -> (the fuse() option it sets, value when on, value when off)
STEPS = {
    "remove_small_objects": ("min_object_fraction", SMALL_OBJECT_FRACTION, 0.0),
    "largest_component": ("largest_component", True, False),
    "fill_holes": ("fill_holes", True, False),
}


def fuse_options(steps: dict[str, bool]) -> dict:
    """``fuse()`` keyword arguments for ``{step: on?}``; steps not named are off."""
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown post-processing steps {sorted(unknown)}; valid: {', '.join(STEPS)}")
    return {option: on if steps.get(step, False) else off for step, (option, on, off) in STEPS.items()}


def select_postprocessing(run_dirs, data_dir, subset: str = "val", tta: bool = True, **fusion
                          ) -> tuple[dict, pd.DataFrame]:
    """The ``fuse()`` options to use, and the validation Dice of every step set tried; `fusion`
    (strategy, threshold, priority) is passed to every ``fuse()`` call, as it will be on the test split."""
    dataset = DatasetDir(data_dir)
    predictor, images = prepared_inference(run_dirs, dataset.images_dir, tta, subset)
    truth = {r.id: r for r in load_records(dataset, predictor.structures)}
    cases = [(probabilities, {s: m.read() for s, m in truth[image_id].masks.items()})
             for image_id, _, probabilities in predictions(predictor, images, tta)]
    return choose_postprocessing(cases, **fusion)


def choose_postprocessing(cases, **fusion) -> tuple[dict, pd.DataFrame]:
    """cases: (probabilities by structure, true masks by structure) per image; fusion: further
    ``fuse()`` options (strategy, threshold, priority) that stay fixed.

    Returns the ``fuse()`` options of the chosen steps and a table with one row per step set
    tried (first row: all off): a boolean column per step, ``mean_dice`` and ``chosen``.
    """
    steps = {step: False for step in STEPS}
    tried = [_scored(steps, cases, fusion)]
    best, chosen = tried[0]["mean_dice"], 0
    for step in STEPS:  # greedy, in a fixed order
        candidate = {**steps, step: True}
        tried.append(_scored(candidate, cases, fusion))
        # Kept only if it measurably helps, as nnU-Net decides: a step without effect on the
        # validation images is not applied blindly to the test images.
        if tried[-1]["mean_dice"] > best:
            steps, best, chosen = candidate, tried[-1]["mean_dice"], len(tried) - 1
    table = pd.DataFrame(tried)
    table["chosen"] = table.index == chosen
    return fuse_options(steps), table


def _scored(steps: dict[str, bool], cases, fusion: dict) -> dict:
    options = fuse_options(steps)
    dice = [segmentation_metrics(fuse(probabilities, **fusion, **options).masks[s], truth[s])["dice"]
            for probabilities, truth in cases for s in truth]
    return {**steps, "mean_dice": float(np.mean(dice))}
