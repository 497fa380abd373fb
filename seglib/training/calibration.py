"""The probability threshold of a run, chosen on its validation split at the films' own resolution.

A network trained with a Dice term draws a structure's outline a little too wide: pixels along the edge get
probabilities above 0.5 although the truth leaves them out (precision below recall). Rather than trust 0.5,
`choose_thresholds` measures, after training, which threshold gives the best mean validation Dice per
structure, and `calibrated` maps the probabilities so that this threshold becomes 0.5. Everything downstream
(masks at 0.5, fusion's argmax, flip TTA averaging, reports) then works unchanged on calibrated maps; a run
without RUN_DIR/calibration.json (older runs) keeps its raw probabilities.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from seglib.config import checked_threshold
from seglib.data.io import DataError, read_image, write_text
from seglib.data.pipeline import model_input, working_image
from seglib.networks.tiling import apply_model
from seglib.training.run_dir import RunDir

CANDIDATE_THRESHOLDS = tuple(np.round(np.arange(0.3, 0.71, 0.05), 2))


def choose_thresholds(model, config, run_dir: str | Path, records) -> dict[str, float]:
    """structure -> the candidate threshold with the best mean Dice of `model` over `records` (the run's
    validation images, each at its own size: the probabilities resampled as inference does), the one nearest
    0.5 among equals; written to RUN/calibration.json."""
    scores = {s: np.zeros(len(CANDIDATE_THRESHOLDS)) for s in config.structures}
    for record in records:
        film = read_image(record.image)
        inputs = model_input(working_image(film, config.image_size), config.side_aware)
        maps = tf.image.resize(apply_model(model, inputs, config), film.shape, method="bilinear").numpy()
        for index, structure in enumerate(config.structures):
            truth = record.masks[structure].read() > 0
            for column, threshold in enumerate(CANDIDATE_THRESHOLDS):
                scores[structure][column] += _dice(maps[..., index] >= threshold, truth) / len(records)
    distance = np.abs(np.array(CANDIDATE_THRESHOLDS) - 0.5)
    chosen = {s: float(CANDIDATE_THRESHOLDS[np.lexsort((distance, -np.round(d, 6)))[0]]) for s, d in scores.items()}
    write_text(RunDir(run_dir).calibration_path, json.dumps(
        {"threshold": chosen, "chosen_on": f"{len(records)} validation images at their own size",
         "mean_dice": {s: dict(zip(map(str, CANDIDATE_THRESHOLDS), np.round(d, 5).tolist()))
                       for s, d in scores.items()}}, indent=2), overwrite=True)
    return chosen


def run_thresholds(run_dir: str | Path) -> dict[str, float]:
    """structure -> the run's chosen threshold; empty for a run without calibration (0.5 then applies).
    Each is a probability strictly between 0 and 1 (seglib.config.checked_threshold), for a structure of the run."""
    run = RunDir(run_dir)
    path = run.calibration_path
    if not path.exists():
        return {}
    try:
        thresholds = dict(json.loads(path.read_text())["threshold"])  # structure -> threshold
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path}: not a seglib calibration file: {error}") from error
    unknown = sorted(set(thresholds) - set(run.config().structures))
    if unknown:
        raise DataError(f"{path}: threshold of {', '.join(unknown)}, which the run does not predict")
    return {s: checked_threshold(t, f"{path}: threshold of {s}") for s, t in thresholds.items()}


def calibrated(probability: np.ndarray, threshold: float) -> np.ndarray:
    """Probabilities mapped piecewise linearly so that `threshold` becomes 0.5, 0 and 1 stay."""
    if threshold == 0.5:
        return probability
    low = probability * np.float32(0.5 / threshold)
    high = np.float32(0.5) + (probability - np.float32(threshold)) * np.float32(0.5 / (1 - threshold))
    return np.where(probability < threshold, low, high).astype(np.float32)


def _dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    total = prediction.sum() + truth.sum()
    return 1.0 if total == 0 else 2.0 * float((prediction & truth).sum()) / float(total)
