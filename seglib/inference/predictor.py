"""Probability maps from one or more trained runs, at each image's original size.

Flip test-time augmentation: the mirrored image is segmented too, and the prediction of the
PARTNER structure on it, flipped back, is a second opinion on the structure itself
(the left hip of the mirrored image is the right hip of the original, mirrored).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import tensorflow as tf

from seglib.config import checked_threshold
from seglib.data.io import grey_film, read_image, write_png, write_text
from seglib.data.layout import DatasetWriter, list_images
from seglib.data.outputs import output_folder
from seglib.data.pipeline import model_input, working_image
from seglib.inference.film_checks import warn_if_degenerate
from seglib.inference.fusion import fuse
from seglib.inference.quality import QualityTable
from seglib.networks.tiling import apply_model
from seglib.progress import progress
from seglib.symmetry.partners import flip_partners, partner_of
from seglib.training.calibration import calibrated, run_thresholds
from seglib.training.run_dir import RunDir, pretrained_run


class TTAPasses(NamedTuple):
    """The two flip-TTA passes of one film apart, structure -> map at the model's working resolution
    (flipped: None when a structure's mirror partner has no model); `averaged`: whether the film's maps are
    their mean (tta) or the plain pass alone."""

    plain: dict[str, np.ndarray]
    flipped: dict[str, np.ndarray]
    averaged: bool


class Predictor:
    """The trained models of one or more runs, each structure predicted by exactly one of them."""

    def __init__(self, run_dirs: list[str | Path] | str | Path, calibrate: bool = True):
        """calibrate: apply each run's validation-chosen threshold (seglib.training.calibration)."""
        self.run_dirs = [RunDir(d).path for d in run_list(run_dirs)]
        self.runs = [(RunDir(d).load_model(), RunDir(d).config()) for d in self.run_dirs]
        self.thresholds = {s: t for d in run_list(run_dirs) for s, t in run_thresholds(d).items()} if calibrate else {}
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
        plain = self._predict(working)
        mirrored = (self._predict({size: np.ascontiguousarray(w[:, ::-1]) for size, w in working.items()})
                    if tta or (passes and self.mirrorable) else None)
        maps, tta_passes = self.film_maps(plain, mirrored, image.shape, tta)
        return (maps, tta_passes) if passes else maps

    @property
    def mirrorable(self) -> bool:
        """Whether every structure's mirror partner is predicted too, so a mirrored pass can be run (for the
        quality estimate even without flip TTA)."""
        return all(partner_of(s) in self.structures for s in self.structures)

    def film_maps(self, plain: dict, mirrored: dict | None, shape, tta: bool):
        """(structure -> map at the film's `shape`, TTAPasses) from the plain and the mirrored pass at the
        working resolution (mirrored: None without one; with `tta` the maps are the passes' mean)."""
        flipped = None
        if mirrored is not None:
            flipped = {s: _resized(mirrored[p][:, ::-1], plain[s].shape) for s, p in self.tta_partners().items()}
        maps = {s: (plain[s] + flipped[s]) / 2.0 for s in plain} if tta else plain
        return {s: _resized(m, shape) for s, m in maps.items()}, TTAPasses(plain, flipped, tta)

    def calibrated(self, outputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """structure -> probability map, from each run's network output (in the order of self.runs), mapped
        so that the run's validation-chosen threshold becomes 0.5."""
        return {s: calibrated(output[..., i], self.thresholds.get(s, 0.5))
                for (_, config), output in zip(self.runs, outputs) for i, s in enumerate(config.structures)}

    def _predict(self, working: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
        """structure -> probability map at its model's working resolution."""
        return self.calibrated([apply_model(model, model_input(working[config.image_size], config.side_aware), config)
                                for model, config in self.runs])


# The shipped pelvis model's bones overlap in projection (the femoral heads in the acetabula, the ilia behind
# the sacrum); its label maps draw the hip bones, its first concern, over the others.
PRETRAINED_FUSION = {"pelvis": {"strategy": "priority", "priority": ["left_hip", "right_hip"]}}


def pretrained(name: str = "pelvis", calibrate: bool = True) -> Predictor:
    """The Predictor of a model that ships with seglib (seglib.config.PRETRAINED_MODELS), e.g.
    `seglib.pretrained("pelvis").probabilities(film)`: no training, and nothing is downloaded."""
    return Predictor(pretrained_run(name), calibrate)


def _resized(probability: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A probability map resampled (bilinear) to `shape`; itself when it already has that shape."""
    if probability.shape[:2] == tuple(shape[:2]):
        return probability
    return tf.image.resize(probability[..., None], shape[:2], method="bilinear").numpy()[..., 0]


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


def save_probability(path: Path, probability: np.ndarray) -> None:
    """16-bit PNG: 1/65535 resolution is ample, and the folder stays viewable and in dataset layout."""
    write_png(path, np.round(np.clip(probability, 0, 1) * 65535).astype(np.uint16))


def predict_folder(run_dirs, images_dir, out_dir, tta: bool = False, subset: str | None = None,
                   threshold: float = 0.5, force: bool = False) -> Path:
    """Write OUT/probabilities/<structure>/<id>.png, OUT/masks/<structure>/<id>.png and OUT/quality.csv
    (seglib.inference.quality: a predicted Dice and a flag per image and structure)."""
    threshold = checked_threshold(threshold, "predict threshold")  # before any model is loaded
    predictor, images = prepared_inference(run_dirs, images_dir, tta, subset)
    quality = QualityTable(predictor, threshold)
    with output_folder(out_dir, "predict", [images_dir, *run_list(run_dirs)], force, ids=images) as staging:
        dataset = DatasetWriter(staging)
        for image_id, image, (probabilities, passes) in progress(
                predictions(predictor, images, tta, passes=True), "predict", len(images)):
            for structure, probability in probabilities.items():
                save_probability(staging / "probabilities" / structure / f"{image_id}.png", probability)
                dataset.mask(structure, image_id, probability >= threshold)
            quality.add(image_id, image, passes)
        quality.write(staging / "quality.csv")
        write_text(staging / "predict.json", json.dumps(
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
        dataset = DatasetWriter(staging)
        for image_id, _, probabilities in progress(predictions(predictor, images, tta), "fuse", len(images)):
            fused = fuse(probabilities, **fuse_options)
            labels = fused.labels
            dataset.label_map(image_id, fused.label_map)
            for structure, mask in fused.masks.items():
                dataset.mask(structure, image_id, mask)
                save_probability(staging / "probabilities" / structure / f"{image_id}.png", probabilities[structure])
            contested.append({"id": image_id, "contested_pixels": int(fused.contested.sum())})
        write_text(staging / "labels.json", json.dumps(labels, indent=2))
        # how these labels were made, so a report can redraw contested pixels at the same threshold
        write_text(staging / "fusion.json", json.dumps({"tta": tta, **fuse_options}, indent=2))
        pd.DataFrame(contested).to_csv(staging / "contested.csv", index=False)
    return Path(out_dir)
