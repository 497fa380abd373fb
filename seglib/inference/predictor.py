"""Probability maps from one or more trained runs, at each image's original size.

Flip test-time augmentation: the mirrored image is segmented too, and the prediction of the
PARTNER structure on it, flipped back, is a second opinion on the structure itself
(the left hip of the mirrored image is the right hip of the original, mirrored).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from seglib.config import RunConfig
from seglib.data.io import read_image, write_png, write_text
from seglib.data.layout import list_images
from seglib.data.outputs import output_folder
from seglib.data.pipeline import preprocess_for_prediction
from seglib.data.splits import read_split
from seglib.inference.fusion import fuse
from seglib.symmetry.partners import partner_of
from seglib.training.run_dir import load_run_model


class Predictor:
    """The trained models of one or more runs, each structure predicted by exactly one of them."""

    def __init__(self, run_dirs: list[str | Path] | str | Path):
        self.runs = [(load_run_model(d), RunConfig.load(Path(d) / "config.json")) for d in run_list(run_dirs)]
        structures = [s for _, config in self.runs for s in config.structures]
        duplicated = sorted({s for s in structures if structures.count(s) > 1})
        if duplicated:
            raise ValueError(f"structure(s) {', '.join(duplicated)} predicted by more than one run")
        self.structures = tuple(structures)

    def tta_partners(self) -> dict[str, str]:
        """structure -> the structure whose mirrored prediction serves as its flip-TTA second opinion."""
        partners = {s: partner_of(s) for s in self.structures}
        missing = sorted(s for s, p in partners.items() if p not in self.structures)
        if missing:
            raise ValueError(f"flip TTA for {', '.join(missing)} needs a model of the mirror partner "
                             f"({', '.join(str(partner_of(s)) for s in missing)}); pass both runs or drop --tta")
        return partners

    def probabilities(self, image: np.ndarray, tta: bool = False) -> dict[str, np.ndarray]:
        """structure -> float32 probability map with the image's own shape."""
        direct = self._predict(image)
        if not tta:
            return direct
        mirrored = self._predict(np.ascontiguousarray(image[:, ::-1]))
        return {s: (direct[s] + mirrored[p][:, ::-1]) / 2.0 for s, p in self.tta_partners().items()}

    def _predict(self, image: np.ndarray) -> dict[str, np.ndarray]:
        result = {}
        for model, config in self.runs:
            batch = preprocess_for_prediction(image, config.image_size, config.side_aware)[None]
            # predict_on_batch runs the compiled graph: ~3.5x faster per image than an eager call.
            maps = model.predict_on_batch(batch)[0]
            maps = tf.image.resize(maps, image.shape, method="bilinear").numpy()
            result.update({s: maps[..., i] for i, s in enumerate(config.structures)})
        return result


def select_ids(images: dict[str, Path], run_dir: str | Path | None, subset: str | None) -> dict[str, Path]:
    """The images to predict: all, or those the run's split.csv puts in `subset` (e.g. test)."""
    if subset is None:
        return images
    wanted = {i for i, name in read_split(Path(run_dir) / "split.csv").items() if name == subset}
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


def predictions(predictor: Predictor, images: dict[str, Path], tta: bool = False):
    """(id, image, structure -> probability map) for each image, one image in memory at a time."""
    for image_id, path in images.items():
        image = read_image(path)
        yield image_id, image, predictor.probabilities(image, tta=tta)


def save_probability(path: Path, probability: np.ndarray) -> None:
    """16-bit PNG: 1/65535 resolution is ample, and the folder stays viewable and in dataset layout."""
    write_png(path, np.round(np.clip(probability, 0, 1) * 65535).astype(np.uint16))


def save_mask(path: Path, mask: np.ndarray) -> None:
    write_png(path, mask.astype(np.uint8) * 255)


def predict_folder(run_dirs, images_dir, out_dir, tta: bool = False, subset: str | None = None,
                   threshold: float = 0.5, force: bool = False) -> Path:
    """Write OUT/probabilities/<structure>/<id>.png and OUT/masks/<structure>/<id>.png."""
    predictor, images = prepared_inference(run_dirs, images_dir, tta, subset)
    with output_folder(out_dir, "predict", [images_dir, *run_list(run_dirs)], force, ids=images) as staging:
        for image_id, _, probabilities in predictions(predictor, images, tta):
            for structure, probability in probabilities.items():
                save_probability(staging / "probabilities" / structure / f"{image_id}.png", probability)
                save_mask(staging / "masks" / structure / f"{image_id}.png", probability >= threshold)
        write_text(staging / "predict.json", json.dumps(
            {"runs": [str(d) for d in run_list(run_dirs)], "images": str(images_dir), "tta": tta,
             "subset": subset, "threshold": threshold}, indent=2))
    return Path(out_dir)


def run_list(run_dirs) -> list:
    """One run directory or several, as a list."""
    return [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)


def _first(run_dirs):
    return run_list(run_dirs)[0]


def fuse_folder(run_dirs, images_dir, out_dir, tta: bool = False, subset: str | None = None,
                force: bool = False, **fuse_options) -> Path:
    """Predict with per-structure runs and fuse into OUT/labels/<id>.png (+ labels.json),
    OUT/masks/<structure>/<id>.png and OUT/probabilities/...; OUT/contested.csv counts the
    pixels that two models claimed, per image; OUT/fusion.json records the fusion options."""
    predictor, images = prepared_inference(run_dirs, images_dir, tta, subset)
    contested, labels = [], {}
    with output_folder(out_dir, "fuse", [images_dir, *run_list(run_dirs)], force, ids=images) as staging:
        for image_id, _, probabilities in predictions(predictor, images, tta):
            fused = fuse(probabilities, **fuse_options)
            labels = fused.labels
            write_png(staging / "labels" / f"{image_id}.png", fused.label_map)
            for structure, mask in fused.masks.items():
                save_mask(staging / "masks" / structure / f"{image_id}.png", mask)
                save_probability(staging / "probabilities" / structure / f"{image_id}.png", probabilities[structure])
            contested.append({"id": image_id, "contested_pixels": int(fused.contested.sum())})
        write_text(staging / "labels.json", json.dumps(labels, indent=2))
        # how these labels were made, so a report can redraw contested pixels at the same threshold
        write_text(staging / "fusion.json", json.dumps({"tta": tta, **fuse_options}, indent=2))
        pd.DataFrame(contested).to_csv(staging / "contested.csv", index=False)
    return Path(out_dir)
