"""The probability thresholds of a run, chosen on its validation split at the films' own resolution.

A network trained with a Dice term draws a structure's outline a little too wide: pixels along the edge get
probabilities above 0.5 although the truth leaves them out (precision below recall). Rather than trust 0.5,
`choose_thresholds` measures, after training, which threshold gives the best mean validation Dice per
structure, and the predictor maps the probabilities so that this threshold becomes 0.5
(seglib.networks.film.calibrated). Everything downstream (masks at 0.5, fusion's argmax, reports) then works
unchanged on calibrated maps; a run without RUN_DIR/calibration.json (older runs) keeps its raw probabilities.

Flip TTA averages two passes into a smoother map, whose best threshold is another: for each structure whose
mirror partner the run predicts too, a second threshold ("threshold_tta") is chosen on the mean of the two
passes, and the predictor applies the one of its setting (RunDir.thresholds; the plain one where a run has no
TTA threshold). Both are measured on the maps seglib.networks.film makes, the predictor's own. `recalibrate`
chooses them again for a finished run (one trained before TTA thresholds existed) without training it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from seglib.data.io import DataError, read_image, write_text
from seglib.data.layout import load_records
from seglib.data.pipeline import model_input, working_image
from seglib.evaluation.metrics import dice
from seglib.networks.film import film_maps, flipped_back, network_maps
from seglib.symmetry.partners import partner_of
from seglib.training.run_dir import RunDir

CANDIDATE_THRESHOLDS = tuple(np.round(np.arange(0.3, 0.71, 0.05), 2))
# calibration.json: the thresholds without and with flip TTA, and the mean validation Dice they were chosen by
TABLES = {"threshold": "mean_dice", "threshold_tta": "mean_dice_tta"}


def choose_thresholds(model, config, run_dir: str | Path, records) -> dict[str, dict[str, float]]:
    """{"threshold": structure -> the candidate threshold with the best mean Dice of `model` over `records`
    (the run's validation images, each at its own size, as the predictor makes its maps), "threshold_tta": the
    same on the flip-TTA means, for the structures whose mirror partner the run predicts}; the one nearest 0.5
    among equals. Written to RUN/calibration.json with the Dice of every candidate."""
    partners = {s: partner_of(s) for s in config.structures if partner_of(s) in config.structures}
    scores = {"threshold": _zeros(config.structures), "threshold_tta": _zeros(partners)}
    for record in records:
        truth = {s: record.masks[s].read() > 0 for s in config.structures}
        for setting, maps in _validation_maps(model, config, read_image(record.image), partners).items():
            for s, probability in maps.items():
                scores[setting][s] += np.array([dice(probability >= t, truth[s]) for t in CANDIDATE_THRESHOLDS])
    scores = {setting: {s: dice / len(records) for s, dice in table.items()} for setting, table in scores.items()
              if table}  # a run without mirror partners has no TTA threshold
    chosen = {setting: {s: _best(dice) for s, dice in table.items()} for setting, table in scores.items()}
    tables = {TABLES[setting]: {s: dict(zip(map(str, CANDIDATE_THRESHOLDS), np.round(dice, 5).tolist()))
                                for s, dice in table.items()} for setting, table in scores.items()}
    chosen_on = f"{len(records)} validation images at their own size" + (
        "; threshold_tta on the mean of the plain and the mirrored pass (flip TTA)" if partners else "")
    write_text(RunDir(run_dir).calibration_path, json.dumps({**chosen, "chosen_on": chosen_on, **tables}, indent=2),
               overwrite=True)
    return chosen


def recalibrate(run_dir: str | Path, data: str | Path | None = None) -> dict[str, dict[str, float]]:
    """choose_thresholds again for a finished run, from its model and its validation split (split.csv) in its
    dataset (config.json's `data`, or `data` where the dataset now lives): adds the flip-TTA thresholds to a run
    trained before they existed, without training. Rewrites RUN/calibration.json (which training wrote)."""
    run = RunDir(run_dir)
    if not run.is_finished():
        raise DataError(f"{run}: not a finished training run (no {run.summary_path.name}); training calibrates "
                        "its thresholds when it finishes")
    config = run.config()
    folder = data or config.data
    wanted = {i for i, name in run.split().items() if name == "val"}
    records = [r for r in load_records(folder, config.structures) if r.id in wanted]
    missing = sorted(wanted - {r.id for r in records})
    if missing:
        raise DataError(f"{run.split_path}: {len(missing)} validation image(s) not in {folder}, e.g. {missing[0]}")
    return choose_thresholds(run.load_model(), config, run, records)


def _validation_maps(model, config, film: np.ndarray, partners: dict[str, str]) -> dict[str, dict]:
    """setting -> structure -> raw probability map at the film's size, as the predictor makes it without and
    with flip TTA (seglib.networks.film; the thresholds are what is being chosen)."""
    working = working_image(film, config.image_size)
    plain = network_maps(model, config, model_input(working, config.side_aware))
    maps = {"threshold": film_maps(plain, None, film.shape)}
    if partners:
        mirrored = network_maps(model, config, model_input(np.ascontiguousarray(working[:, ::-1]), config.side_aware))
        maps["threshold_tta"] = film_maps({s: plain[s] for s in partners}, flipped_back(mirrored, partners, plain),
                                          film.shape)
    return maps


def _zeros(structures) -> dict[str, np.ndarray]:
    return {s: np.zeros(len(CANDIDATE_THRESHOLDS)) for s in structures}


def _best(dice: np.ndarray) -> float:
    """The candidate with the best Dice (to 6 decimals), the one nearest 0.5 among equals."""
    distance = np.abs(np.array(CANDIDATE_THRESHOLDS) - 0.5)
    return float(CANDIDATE_THRESHOLDS[np.lexsort((distance, -np.round(dice, 6)))[0]])

