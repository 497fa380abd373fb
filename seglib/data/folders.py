"""The dataset folder and the prediction folder as types. Their file names live here and nowhere else:

    DATASET/images/<id>.png               grey image (PNG; TIFF and DICOM too)
    DATASET/masks/<structure>/<id>.png    binary mask, 0/255 (0/1 read too)
    DATASET/labels/<id>.png + labels.json label maps and structure -> label value, e.g. {"left_hip": 134}
    DATASET/manifest.csv                  optional: id, split, patient_id, pixel_spacing_mm, ...

    PRED/masks/, PRED/labels/ + labels.json  as in a dataset, so evaluation reads a prediction like truth
    PRED/probabilities/<structure>/<id>.png  probability maps, 16-bit
    PRED/predict.json, PRED/fusion.json      how `predict` and `fuse` made the folder
    PRED/quality.csv, PRED/contested.csv     per image: predicted Dice and flag; pixels two models claimed

Like seglib.training.run_dir.RunDir, each type passes for its path (os.fspath), so it goes wherever a folder
is expected; a function that receives a path wraps it once and passes the typed folder on. Reading the
layout (which files make a dataset, and their problems) is seglib.data.layout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from seglib.data.io import DataError, read_image, write_png, write_text
from seglib.data.names import checked_name, checked_names

IMAGES, MASKS, LABELS, LABELS_JSON, MANIFEST = "images", "masks", "labels", "labels.json", "manifest.csv"
PROBABILITIES = "probabilities"
PROBABILITY_SCALE = 65535  # a probability map as a 16-bit PNG: 1/65535 resolution is ample, and it stays viewable


def _in_folder(name: str) -> property:
    """The path of `name` inside the folder, as a read-only attribute."""
    return property(lambda folder: folder.path / name, doc=f"FOLDER/{name}")


class Folder(os.PathLike):
    """A folder seglib reads or writes, as a type: passes for its path (os.fspath), so it goes wherever a folder is
    expected; `.path` is the Path. DatasetDir, PredictionDir, a run (seglib.training.run_dir.RunDir) and a segment
    output (seglib.inference.segment.Segmentation) are Folders."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:  # in messages and f-strings, the folder itself
        return str(self.path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class DatasetDir(Folder):
    """One dataset folder (the standard layout): where each file of it is, and the one writer of its
    files, each written complete or not at all (seglib.data.io.write_png). The folder itself is the
    caller's output_folder."""

    images_dir = _in_folder(IMAGES)
    masks_root = _in_folder(MASKS)
    labels_dir = _in_folder(LABELS)
    labels_json = _in_folder(LABELS_JSON)
    manifest_path = _in_folder(MANIFEST)

    def image_path(self, image_id: str, suffix: str = ".png") -> Path:
        return self.images_dir / f"{image_id}{suffix}"

    def masks_dir(self, structure: str) -> Path:
        return self.masks_root / structure

    def mask_path(self, structure: str, image_id: str, suffix: str = ".png") -> Path:
        return self.masks_dir(structure) / f"{image_id}{suffix}"

    def label_path(self, image_id: str, suffix: str = ".png") -> Path:
        return self.labels_dir / f"{image_id}{suffix}"

    def mask_folders(self) -> list[Path]:
        """The masks/<structure>/ folders, by name (their names unchecked: seglib.data.names checks them)."""
        return sorted(p for p in self.masks_root.glob("*") if p.is_dir())

    def has_masks(self, structures) -> bool:
        """Whether every one of `structures` has a masks/<structure>/ folder (binary masks, not only labels)."""
        return all(self.masks_dir(structure).is_dir() for structure in structures)

    def looks_like_dataset(self) -> bool:
        """images/ and masks/, or a manifest: a dataset (an output never goes there)."""
        return (self.images_dir.is_dir() and self.masks_root.is_dir()) or self.manifest_path.is_file()

    def read_labels(self) -> dict[str, int]:
        """labels.json: structure -> label value ({} when the folder has none). The one reader: values
        1..65535, no two structures sharing one, safe structure names; else DataError naming the file."""
        path = self.labels_json
        if not path.exists():
            return {}
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: not valid JSON: {error}") from error
        if not isinstance(values, dict) or not all(isinstance(v, int) and 0 < v < 65536 for v in values.values()):
            raise DataError(f"{path}: must map structure names to integer label values 1..65535")
        shared = sorted({v for v in values.values() if list(values.values()).count(v) > 1})
        if shared:  # one pixel value cannot mean two structures
            names = [name for name, v in values.items() if v in shared]
            raise DataError(f"{path}: structures {', '.join(names)} share label values {shared}")
        checked_names(values, str(path))
        return values

    def write_labels(self, labels: dict[str, int], overwrite: bool = False) -> Path:
        """labels.json, the one writer (overwrite: a resumed folder's own)."""
        return write_text(self.labels_json, json.dumps(labels, indent=2), overwrite=overwrite)

    def write_image(self, image_id: str, pixels: np.ndarray) -> Path:
        return write_png(self.image_path(image_id), pixels)

    def write_mask(self, structure: str, image_id: str, mask: np.ndarray) -> Path:
        """A binary mask as 0/255."""
        path = self.mask_path(checked_name(structure, "structure"), image_id)
        return write_png(path, np.asarray(mask, bool).astype(np.uint8) * 255)

    def write_label_map(self, image_id: str, labels: np.ndarray) -> Path:
        """The one writer of label maps (values as labels.json declares them)."""
        return write_png(self.label_path(image_id), labels)

    def write_sample(self, image_id: str, image: np.ndarray, masks: dict[str, np.ndarray]) -> None:
        self.write_image(image_id, image)
        for structure, mask in masks.items():
            self.write_mask(structure, image_id, mask)


class PredictionDir(DatasetDir):
    """One prediction folder (`predict`, `fuse`, `baseline`, `segment`): the dataset layout (masks, label maps,
    labels.json) plus probability maps and the records of how it was made."""

    probabilities_root = _in_folder(PROBABILITIES)
    predict_json = _in_folder("predict.json")
    fusion_json = _in_folder("fusion.json")
    quality_csv = _in_folder("quality.csv")
    contested_csv = _in_folder("contested.csv")

    def probability_path(self, structure: str, image_id: str) -> Path:
        return self.probabilities_root / structure / f"{image_id}.png"

    def write_probability(self, structure: str, image_id: str, probability: np.ndarray) -> Path:
        scaled = np.round(np.clip(probability, 0, 1) * PROBABILITY_SCALE).astype(np.uint16)
        return write_png(self.probability_path(structure, image_id), scaled)

    def read_probability(self, structure: str, image_id: str) -> np.ndarray:
        return read_image(self.probability_path(structure, image_id)) / float(PROBABILITY_SCALE)

    def read_labels(self) -> dict[str, int]:
        """labels.json of a fused folder; unlike a dataset's, never optional: without it the label maps mean nothing."""
        if not self.labels_json.is_file():
            raise DataError(f"{self.labels_json}: not found; a fused prediction folder (fuse, segment) has one")
        return super().read_labels()

    def predicted_structures(self) -> list[str]:
        """The structures the folder holds masks of (masks/<structure>/), by name."""
        return [folder.name for folder in self.mask_folders()]
