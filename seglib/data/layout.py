"""The standard dataset layout read as records (splits are in seglib.data.splits, the full
validation in seglib.data.validation).

    DATASET/images/<id>.png               grey image (PNG; TIFF and DICOM too)
    DATASET/masks/<structure>/<id>.png    binary mask, 0/255 or 0/1
    DATASET/labels/<id>.png + labels.json label-value masks, e.g. {"left_hip": 134, "right_hip": 255}
    DATASET/manifest.csv                  optional: id, split, patient_id, pixel_spacing_mm, ...

Pixel spacing comes from `pixel_spacing_row_mm` and `pixel_spacing_col_mm` when a manifest row has
both (non-square pixels), else from `pixel_spacing_mm` for both directions.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from seglib.data.io import IMAGE_SUFFIXES, DataError, read_mask
from seglib.data.names import checked_name, checked_names

NOT_AN_IMAGE = f"not an image file seglib reads ({', '.join(IMAGE_SUFFIXES)})"


@dataclass(frozen=True)
class MaskSource:
    """Where one structure's mask of one image comes from: a binary file, or one value of a label file."""

    path: Path
    label_value: int | None = None

    def read(self) -> np.ndarray:
        return read_mask(self.path, self.label_value)


@dataclass(frozen=True)
class Record:
    id: str
    image: Path
    masks: dict[str, MaskSource] = field(default_factory=dict)
    patient_id: str = ""
    pixel_spacing_mm: tuple[float, float] | None = None  # (row, col) as DICOM PixelSpacing: row = distance between rows


def list_images(folder: str | Path, report_skipped: bool = True) -> dict[str, Path]:
    """id -> image path for every image file in `folder`; two files with one id is an error.
    Any other (non-hidden) file or folder is skipped with one line on stderr naming it, unless
    the caller reports them itself (`report_skipped=False`, as training does through check)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found")
    images: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.is_dir():
            if report_skipped:
                print(f"warning: {path}: {NOT_AN_IMAGE}; skipped", file=sys.stderr)
            continue
        if path.stem in images:
            raise DataError(f"{path}: duplicate id {path.stem!r} (also {images[path.stem]})")
        images[path.stem] = path
    if not images:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return images


def read_manifest(root: str | Path) -> pd.DataFrame | None:
    path = Path(root) / "manifest.csv"
    if not path.exists():
        return None
    manifest = pd.read_csv(path, dtype={"id": str, "patient_id": str, "split": str})
    if "id" not in manifest.columns:
        raise DataError(f"{path}: manifest has no 'id' column")
    duplicated = manifest["id"][manifest["id"].duplicated()].tolist()
    if duplicated:
        raise DataError(f"{path}: duplicate ids {duplicated[:5]}")
    return manifest.set_index("id", drop=False)


def read_label_values(root: str | Path) -> dict[str, int]:
    path = Path(root) / "labels.json"
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


def require_declared_labels(labels: np.ndarray, label_values: dict[str, int], path: Path) -> None:
    """DataError naming the label file when it holds a value labels.json does not declare (that
    structure would otherwise vanish from every mask)."""
    undeclared = sorted(set(np.unique(labels).tolist()) - {0} - set(label_values.values()))
    if undeclared:
        raise DataError(f"{path}: label values {undeclared} are not declared in labels.json "
                        f"(declared: {label_values})")


def available_structures(root: str | Path) -> list[str]:
    root = Path(root)
    folders = [checked_name(p.name, str(p)) for p in sorted((root / "masks").glob("*")) if p.is_dir()]
    return sorted(set(folders) | set(read_label_values(root)))


def require_structures(root: str | Path, structures) -> None:
    """An error naming the first structure that the dataset at `root` has no masks of."""
    known = available_structures(root)
    missing = [structure for structure in structures if structure not in known]
    if missing:
        raise DataError(f"{root}: no masks for structure {missing[0]!r} (neither masks/{missing[0]}/ "
                        f"nor labels.json); structures in this dataset: {', '.join(known) or 'none'}")


def load_records(root: str | Path, structures: tuple[str, ...] | list[str], report_skipped: bool = True
                 ) -> list[Record]:
    """One record per image with the mask of every requested structure.

    An image without a mask, a mask without an image, or an unknown structure is an error."""
    root = Path(root)
    images = list_images(root / "images", report_skipped)
    manifest = read_manifest(root)
    sources = {structure: _mask_sources(root, structure, images) for structure in structures}
    records = []
    for image_id, image_path in images.items():
        row = manifest.loc[image_id] if manifest is not None and image_id in manifest.index else None
        records.append(Record(
            id=image_id,
            image=image_path,
            masks={structure: sources[structure][image_id] for structure in structures},
            patient_id=_manifest_value(row, "patient_id") or image_id,
            pixel_spacing_mm=_spacing(row, root / "manifest.csv"),
        ))
    return records


def _mask_sources(root: Path, structure: str, images: dict[str, Path]) -> dict[str, MaskSource]:
    folder = root / "masks" / structure
    if folder.is_dir():
        masks = {p.stem: MaskSource(p) for p in sorted(folder.iterdir())
                 if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES}
    elif structure in (label_values := read_label_values(root)):
        masks = {p.stem: MaskSource(p, label_values[structure]) for p in sorted((root / "labels").glob("*.png"))}
        folder = root / "labels"
    else:
        require_structures(root, [structure])
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise DataError(f"{folder / orphans[0]}.png: mask without image ({len(orphans)} such masks)")
    missing = sorted(set(images) - set(masks))
    if missing:
        raise DataError(f"{images[missing[0]]}: image without a {structure} mask in {folder} "
                        f"({len(missing)} such images)")
    return masks


def _manifest_value(row, column: str) -> str | None:
    if row is None or column not in row.index or pd.isna(row[column]):
        return None
    return str(row[column])


def _spacing(row, manifest: Path) -> tuple[float, float] | None:
    """(row_mm, col_mm): the row/column columns when both are given, else pixel_spacing_mm for both."""
    if all(_manifest_value(row, c) is not None for c in ("pixel_spacing_row_mm", "pixel_spacing_col_mm")):
        return (_millimetres(row, "pixel_spacing_row_mm", manifest),
                _millimetres(row, "pixel_spacing_col_mm", manifest))
    if _manifest_value(row, "pixel_spacing_mm") is None:
        return None
    return (_millimetres(row, "pixel_spacing_mm", manifest),) * 2


def _millimetres(row, column: str, manifest: Path) -> float:
    value = _manifest_value(row, column)
    mm = positive_mm(value)
    if mm is None:
        raise DataError(f"{manifest}: {column} {value!r} of id {row['id']!r} is not a positive number")
    return mm


def positive_mm(text) -> float | None:
    """A pixel spacing as a number, or None unless it is positive and finite (a zero, negative or
    infinite spacing would make every mm metric wrong)."""
    try:
        mm = float(text)
    except (TypeError, ValueError):
        return None
    return mm if math.isfinite(mm) and mm > 0 else None
