"""Probability maps from one or more trained runs, at each image's original size.

Flip test-time augmentation: the mirrored image is segmented too, and the prediction of the
PARTNER structure on it, flipped back, is a second opinion on the structure itself
(the left hip of the mirrored image is the right hip of the original, mirrored). How the passes become the
film's maps is seglib.networks.film, which the threshold calibration after training follows too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from seglib.config import checked_threshold
from seglib.data.folders import PredictionDir
from seglib.data.io import grey_film, read_image, write_text
from seglib.data.layout import list_images
from seglib.data.outputs import output_folder
from seglib.data.pipeline import model_input, working_image
from seglib.inference.film_checks import stored_range, unexposed, warn_if_degenerate
from seglib.inference.fusion import fuse
from seglib.inference.quality import QualityTable
from seglib.networks.film import calibrated, film_maps, flipped_back, network_maps, structure_maps
from seglib.progress import progress
from seglib.symmetry.partners import flip_partners, partner_of
from seglib.training.run_dir import RunDir


class TTAPasses(NamedTuple):
    """The two flip-TTA passes of one film apart, structure -> map at the model's working resolution, each
    mapped by the run's plain threshold as a single pass is (flipped: None when a structure's mirror partner has
    no model); `averaged`: whether the film's maps are made from their mean (tta) or the plain pass alone;
    `film`: the film at the (largest) working resolution, (S, S, 1) in [0, 1] over the levels its bits hold
    (film_checks.stored_range), for the quality estimate's look at the film itself (opaque lead and metal,
    unexposed bands; None: not known)."""

    plain: dict[str, np.ndarray]
    flipped: dict[str, np.ndarray]
    averaged: bool
    film: np.ndarray | None = None


class Predictor:
    """The trained models of one or more runs, each structure predicted by exactly one of them."""

    def __init__(self, run_dirs: list[str | Path] | str | Path, calibrate: bool = True):
        """calibrate: apply each run's validation-chosen thresholds (seglib.training.calibration): with flip TTA
        those chosen on TTA means, where the run has them."""
        runs = [RunDir(d) for d in run_list(run_dirs)]
        self.run_dirs = [run.path for run in runs]
        self.runs = [(run.load_model(), run.config()) for run in runs]
        # tta -> structure -> threshold (RunDir.thresholds; absent: 0.5)
        self.thresholds = {tta: {s: t for run in runs for s, t in run.thresholds(tta).items()}
                           if calibrate else {} for tta in (False, True)}
        structures = [s for _, config in self.runs for s in config.structures]
        duplicated = sorted({s for s in structures if structures.count(s) > 1})
        if duplicated:
            raise ValueError(f"structure(s) {', '.join(duplicated)} predicted by more than one run")
        self.structures = tuple(structures)

    def tta_partners(self) -> dict[str, str]:
        """structure -> the structure whose mirrored prediction serves as its flip-TTA second opinion."""
        return flip_partners(self.structures)

    def probabilities(self, image: np.ndarray, tta: bool = False, name: str = "film", passes: bool = False):
        """structure -> float32 probability map with the image's own shape; with `passes`, the pair
        (those maps, TTAPasses) for seglib.inference.quality: the plain and the flipped pass apart, at the
        working resolution (the flipped pass is run for it even without `tta`, where the runs have the mirror
        partners; None for a degenerate film).

        `image`: a film as read_image returns it, or any array seglib.data.io.grey_film accepts (8- or 16-bit,
        other integers by their values, floats in [0, 1], grey or RGB), normalised by that one rule, as a
        film read from a file is; anything else raises DataError naming `name`. A film that cannot be
        segmented at all (seglib.inference.film_checks: blank, tiny, a strip) gets all-zero maps and one
        warning line on stderr naming `name`.

        The film is reduced to the working resolution once, the models (and flip TTA) run there, and each
        structure's final map alone is resampled (bilinear) to the film's size before any threshold: the
        outline is drawn at the film's resolution, and memory follows the working size, not the film's."""
        image = grey_film(image, name)
        if warn_if_degenerate(image, name) is not None:
            maps = {s: np.zeros(image.shape, np.float32) for s in self.structures}
            return (maps, None) if passes else maps
        working = {size: working_image(image, size) for size in {config.image_size for _, config in self.runs}}
        plain = self._network_maps(working)
        mirrored = (self._network_maps({size: np.ascontiguousarray(w[:, ::-1]) for size, w in working.items()})
                    if tta or (passes and self.mirrorable) else None)
        maps, tta_passes = self.film_maps(plain, mirrored, image, tta, working)
        return (maps, tta_passes) if passes else maps

    @property
    def mirrorable(self) -> bool:
        """Whether every structure's mirror partner is predicted too, so a mirrored pass can be run (for the
        quality estimate even without flip TTA)."""
        return all(partner_of(s) in self.structures for s in self.structures)

    def film_maps(self, plain: dict, mirrored: dict | None, image: np.ndarray, tta: bool, working: dict | None = None):
        """(structure -> map at the size of `image`, the film, TTAPasses) from the network's plain and mirrored
        pass at the working resolution (structure -> map, as structure_maps gives them; mirrored: None without
        one): seglib.networks.film.film_maps, with `tta` on the passes' mean, mapped by the thresholds of that
        setting. The film's unexposed edges (seglib.inference.film_checks.unexposed) hold no structure.
        `working`: size -> the film at that working size (as the network saw it), carried in TTAPasses."""
        flipped = None if mirrored is None else flipped_back(mirrored, self.tta_partners(), plain)
        maps = film_maps(plain, flipped if tta else None, image.shape, self.thresholds[tta])
        outside = unexposed(image)
        for structure in maps if outside is not None else ():  # one at a time: a film-sized copy at most
            maps[structure] = np.where(outside, np.float32(0), maps[structure])
        # The film as the network saw it, over the levels its bits hold (a 12-bit film in a 16-bit file uses a
        # sixteenth of the type's): the quality estimate reads its brightest level and its flat bands there.
        scale = np.iinfo(image.dtype).max / stored_range(image)
        film = None if not working else np.minimum(working[max(working)] * scale, 1)
        return maps, TTAPasses(self._one_pass(plain), None if flipped is None else self._one_pass(flipped), tta, film)

    def _one_pass(self, maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One pass's maps mapped by the plain thresholds, as a prediction without flip TTA draws them."""
        return {s: calibrated(m, self.thresholds[False].get(s, 0.5)) for s, m in maps.items()}

    def structure_maps(self, outputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """structure -> probability map at the working resolution, from each run's network output (in the order
        of self.runs), as the network gives it (film_maps applies the thresholds)."""
        return {s: m for (_, config), output in zip(self.runs, outputs)
                for s, m in structure_maps(output, config.structures).items()}

    def _network_maps(self, working: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
        """structure -> probability map at its model's working resolution (working: size -> working image)."""
        inputs = [model_input(working[config.image_size], config.side_aware) for _, config in self.runs]
        return {s: m for (model, config), x in zip(self.runs, inputs)
                for s, m in network_maps(model, config, x).items()}


def select_ids(images: dict[str, Path], run_dir: str | Path | None, subset: str | None) -> dict[str, Path]:
    """The images to predict: all, or those the run's split.csv puts in `subset` (e.g. test)."""
    if subset is None:
        return images
    wanted = {i for i, name in RunDir(run_dir).split().items() if name == subset}
    missing = sorted(wanted - set(images))
    if missing:
        raise FileNotFoundError(f"{len(missing)} {subset} image(s) of {run_dir} not in the image folder, e.g. {missing[0]}")
    return {i: p for i, p in images.items() if i in wanted}


def prepared_inference(run_dirs, images_dir, tta: bool = False, subset: str | None = None
                       ) -> tuple[Predictor, dict[str, Path]]:
    """The start of every folder inference (predict, fuse, segment): the runs loaded, flip TTA
    checked before any work, and the images to predict (all, or the runs' `subset` split)."""
    predictor = Predictor(run_dirs)
    if tta:
        predictor.tta_partners()
    return predictor, select_ids(list_images(images_dir), _first(run_dirs), subset)


def predictions(predictor: Predictor, images: dict[str, Path], tta: bool = False, passes: bool = False):
    """(id, image, structure -> probability map) for each image, one image in memory at a time; with
    `passes`, the third item is the pair (maps, TTAPasses) (Predictor.probabilities)."""
    for image_id, path in images.items():
        image = read_image(path)
        yield image_id, image, predictor.probabilities(image, tta=tta, name=str(path), passes=passes)


def predict_folder(run_dirs, images_dir, out_dir, tta: bool = False, subset: str | None = None,
                   threshold: float = 0.5, force: bool = False) -> Path:
    """Write OUT/probabilities/<structure>/<id>.png, OUT/masks/<structure>/<id>.png and OUT/quality.csv
    (seglib.inference.quality: a predicted Dice and a flag per image and structure)."""
    threshold = checked_threshold(threshold, "predict threshold")  # before any model is loaded
    predictor, images = prepared_inference(run_dirs, images_dir, tta, subset)
    quality = QualityTable(predictor, threshold)
    with output_folder(out_dir, "predict", [images_dir, *run_list(run_dirs)], force, ids=images) as staging:
        predicted = PredictionDir(staging)
        for image_id, image, (probabilities, passes) in progress(
                predictions(predictor, images, tta, passes=True), "predict", len(images)):
            for structure, probability in probabilities.items():
                predicted.write_probability(structure, image_id, probability)
                predicted.write_mask(structure, image_id, probability >= threshold)
            quality.add(image_id, image, passes)
        quality.write(predicted.quality_csv)
        write_text(predicted.predict_json, json.dumps(
            {"runs": [str(d) for d in run_list(run_dirs)], "images": str(images_dir), "tta": tta,
             "subset": subset, "threshold": threshold}, indent=2))
    return Path(out_dir)


def run_list(run_dirs) -> list:
    """One run directory or several, as a list."""
    return [run_dirs] if isinstance(run_dirs, (str, os.PathLike)) else list(run_dirs)


def _first(run_dirs):
    return run_list(run_dirs)[0]


def fuse_folder(run_dirs, images_dir, out_dir, tta: bool = False, subset: str | None = None,
                force: bool = False, **fuse_options) -> Path:
    """Predict with per-structure runs and fuse into OUT/labels/<id>.png (+ labels.json),
    OUT/masks/<structure>/<id>.png and OUT/probabilities/...; OUT/contested.csv counts the
    pixels that two models claimed, per image; OUT/fusion.json records the fusion options."""
    checked_threshold(fuse_options.get("threshold", 0.5), "fuse threshold")  # before any model is loaded
    predictor, images = prepared_inference(run_dirs, images_dir, tta, subset)
    contested, labels = [], {}
    with output_folder(out_dir, "fuse", [images_dir, *run_list(run_dirs)], force, ids=images) as staging:
        fused_folder = PredictionDir(staging)
        for image_id, _, probabilities in progress(predictions(predictor, images, tta), "fuse", len(images)):
            fused = fuse(probabilities, **fuse_options)
            labels = fused.labels
            fused_folder.write_label_map(image_id, fused.label_map)
            for structure, mask in fused.masks.items():
                fused_folder.write_mask(structure, image_id, mask)
                fused_folder.write_probability(structure, image_id, probabilities[structure])
            contested.append({"id": image_id, "contested_pixels": int(fused.contested.sum())})
        fused_folder.write_labels(labels)
        # how these labels were made, so a report can redraw contested pixels at the same threshold
        write_text(fused_folder.fusion_json, json.dumps({"tta": tta, **fuse_options}, indent=2))
        pd.DataFrame(contested).to_csv(fused_folder.contested_csv, index=False)
    return Path(out_dir)
