"""The standard dataset layout read as records (the folder's files: seglib.data.folders.DatasetDir; splits
are in seglib.data.splits, the full validation in seglib.data.validation).

    DATASET/images/<id>.png               grey image (PNG; TIFF and DICOM too)
    DATASET/masks/<structure>/<id>.png    binary mask, 0/255 or 0/1
    DATASET/labels/<id>.png + labels.json label-value masks, e.g. {"left_hip": 134, "right_hip": 255}
    DATASET/manifest.csv                  optional: id, split, patient_id, pixel_spacing_mm, ...

Pixel spacing comes from `pixel_spacing_row_mm` and `pixel_spacing_col_mm` when a manifest row has
both (non-square pixels), else from `pixel_spacing_mm` for both directions.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from seglib.data.folders import DatasetDir
from seglib.data.io import IMAGE_SUFFIXES, DataError, read_mask, read_table
from seglib.data.names import checked_name
from seglib.data.outputs import output_folder

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


@dataclass(frozen=True)
class Problem:
    """One problem of a dataset, with the file it concerns."""

    level: str  # "error" | "warning"
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.path}: {self.message}"

    def as_error(self) -> DataError:
        return DataError(f"{self.path}: {self.message}")


@dataclass
class Scan:
    """What `scan` found: the files training reads, and every problem with the files (their pixels
    are not read here: seglib.data.validation does that)."""

    images: dict[str, Path] = field(default_factory=dict)  # id -> image file
    masks: dict[str, dict[str, MaskSource]] = field(default_factory=dict)  # structure -> id -> source
    label_values: dict[str, int] = field(default_factory=dict)  # as labels.json declares them
    labelled: list[str] = field(default_factory=list)  # the structures read from the label files
    problems: list[Problem] = field(default_factory=list)

    def error(self, path: Path | str, message: str) -> None:
        self.problems.append(Problem("error", str(path), message))

    def warning(self, path: Path | str, message: str) -> None:
        self.problems.append(Problem("warning", str(path), message))

    def first_error(self) -> Problem | None:
        return next((problem for problem in self.problems if problem.level == "error"), None)


def scan(root: str | Path, structures=None) -> Scan:
    """The one reading of the dataset files, behind both `load_records` (stops at the first error)
    and `check_dataset` (lists them all): images/, masks/<structure>/ or labels/ + labels.json, each
    folder listed by the same rules (`_list_folder`); then masks without images and images without
    masks. `structures` default to all the dataset has."""
    dataset, root, found = DatasetDir(root), Path(root), Scan()
    if not root.is_dir():
        found.error(root, "dataset folder not found")
        return found
    if dataset.manifest_path.exists():
        _escapes(dataset.manifest_path, root, found)
    found.images = _list_folder(dataset.images_dir, "image", root, found)
    if not found.images and dataset.images_dir.is_dir():
        found.error(dataset.images_dir, f"no images ({', '.join(IMAGE_SUFFIXES)}) in the image folder")
    binary = _binary_structures(dataset, found)
    found.label_values = label_values = _scanned_label_values(dataset, found)
    if structures is None:
        structures = sorted(set(binary) | set(label_values))
        if not structures:
            found.error(root, "no structures: neither masks/<structure>/ folders nor labels.json")
    label_files = None
    for structure in structures:
        if structure in binary:  # masks/ wins over labels.json
            files = _list_folder(dataset.masks_dir(structure), f"{structure} mask", root, found)
            found.masks[structure] = {image_id: MaskSource(path) for image_id, path in files.items()}
            _report_unmatched(found, files, dataset.masks_dir(structure), structure, f"{structure} mask")
        elif structure in label_values:
            if label_files is None:
                label_files = _list_folder(dataset.labels_dir, "label", root, found)
                _report_unmatched(found, label_files, dataset.labels_dir, structure, "label file")
            found.masks[structure] = {image_id: MaskSource(path, label_values[structure])
                                      for image_id, path in label_files.items()}
            found.labelled.append(structure)
        else:
            known = sorted(set(binary) | set(label_values))
            found.error(root, f"no masks for structure {structure!r} (neither masks/{structure}/ nor labels.json); "
                              f"structures in this dataset: {', '.join(known) or 'none'}")
    return found


def _list_folder(folder: Path, what: str, root: Path | None, found: Scan) -> dict[str, Path]:
    """id -> file for the images (or masks) in `folder`. Hidden files (.DS_Store, editors' backups)
    are not data; anything else that is not an image file seglib reads (other suffixes, folders
    such as one named extra.png) is a warning; duplicate ids, broken links and files that lead out
    of the dataset (`root`) are errors."""
    if not folder.is_dir():
        found.error(folder, f"{what} folder not found")
        return {}
    folder_escapes = root is not None and _escapes(folder, root, found)
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        target = _resolved(path, found)
        if target is None:
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES or target.is_dir():
            found.warning(path, f"{NOT_AN_IMAGE}; skipped")
            continue
        if root is not None and not folder_escapes:
            _escapes(path, root, found)  # an error, but the file is still the one for its id
        if path.stem in files:
            found.error(path, f"duplicate id {path.stem!r} (also {files[path.stem].name})")
            continue
        files[path.stem] = path
    return files


def _resolved(path: Path, found: Scan) -> Path | None:
    """Where `path` leads, or None after reporting a symlink loop or a link to nothing."""
    try:
        return path.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 reports a loop so
        found.error(path, "symbolic link loop")
    except OSError as error:
        found.error(path, "symbolic link loop" if error.errno == errno.ELOOP else "broken symbolic link")
    return None


def _escapes(path: Path, root: Path, found: Scan) -> bool:
    """A symlink (or a link in its folders) that leads out of the dataset makes it depend on files
    it does not contain."""
    target = _resolved(path, found)
    if target is None or target.is_relative_to(root.resolve()):
        return target is None
    found.error(path, f"points outside the dataset folder (to {target})")
    return True


def _binary_structures(dataset: DatasetDir, found: Scan) -> list[str]:
    """The masks/<structure>/ folders with safe names (an unsafe one is an error)."""
    structures = []
    for folder in dataset.mask_folders():
        try:
            structures.append(checked_name(folder.name, str(folder)))
        except DataError as error:
            found.error(folder, str(error).removeprefix(f"{folder}: "))
    return structures


def _scanned_label_values(dataset: DatasetDir, found: Scan) -> dict[str, int]:
    path = dataset.labels_json
    if not path.exists():
        if dataset.labels_dir.is_dir():
            found.warning(dataset.labels_dir, "label files without labels.json; they are not read")
        return {}
    if _escapes(path, dataset.path, found):
        return {}
    try:
        return dataset.read_labels()
    except DataError as error:
        found.error(path, str(error).removeprefix(f"{path}: "))
        return {}


def _report_unmatched(found: Scan, files: dict[str, Path], folder: Path, structure: str, what: str) -> None:
    """Masks without an image, then images without a mask (an image folder that could not be read
    has already been reported). The one statement of this rule: importers use it too."""
    for image_id in sorted(set(files) - set(found.images)):
        found.error(files[image_id], f"{what} without an image (no image named {image_id}.*)")
    if not found.images:
        return
    for image_id in sorted(set(found.images) - set(files)):
        found.error(found.images[image_id], f"image without a {what} (none named {image_id}.* in {folder})")


def matching_files(images: dict[str, Path], folder: str | Path, what: str) -> dict[str, Path]:
    """id -> file in `folder` (masks, label files) for every image, by the dataset's rules (scan);
    the first file without an image, or image without a file, is raised."""
    found = Scan(images=images)
    files = _list_folder(Path(folder), what, None, found)
    _report_unmatched(found, files, Path(folder), what, what)
    _raise_first_error(found, report_warnings=True)
    return files


def list_images(folder: str | Path, report_skipped: bool = True) -> dict[str, Path]:
    """id -> image path for every image file in `folder`, by the dataset's listing rules (scan);
    two files with one id is an error. Any other (non-hidden) file or folder is skipped with one
    line on stderr naming it, unless the caller reports them itself (`report_skipped=False`)."""
    folder, found = Path(folder), Scan()
    images = _list_folder(folder, "image", None, found)
    _raise_first_error(found, report_skipped)
    if not images:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return images


def _raise_first_error(found: Scan, report_warnings: bool) -> None:
    error = found.first_error()
    if error is not None:
        raise error.as_error()
    if report_warnings:
        for problem in found.problems:
            print(problem, file=sys.stderr)


def read_manifest(root: str | Path) -> pd.DataFrame | None:
    path = DatasetDir(root).manifest_path
    if not path.exists():
        return None
    # ids, patients and splits stay text ("NA" is an id); other columns are parsed, blank = missing
    manifest = read_table(path, required=("id",), text_columns=("id", "patient_id", "split"))
    duplicated = manifest["id"][manifest["id"].duplicated()].tolist()
    if duplicated:
        raise DataError(f"{path}: duplicate ids {duplicated[:5]}")
    return manifest.set_index("id", drop=False)


def require_declared_labels(labels: np.ndarray, label_values: dict[str, int], path: Path) -> None:
    """DataError naming the label file when it holds a value labels.json does not declare (that
    structure would otherwise vanish from every mask)."""
    undeclared = sorted(set(np.unique(labels).tolist()) - {0} - set(label_values.values()))
    if undeclared:
        raise DataError(f"{path}: label values {undeclared} are not declared in labels.json "
                        f"(declared: {label_values})")


def available_structures(root: str | Path) -> list[str]:
    dataset = DatasetDir(root)
    folders = [checked_name(p.name, str(p)) for p in dataset.mask_folders()]
    return sorted(set(folders) | set(dataset.read_labels()))


def require_structures(root: str | Path, structures) -> None:
    """An error naming the first structure that the dataset at `root` has no masks of."""
    known = available_structures(root)
    missing = [structure for structure in structures if structure not in known]
    if missing:
        raise DataError(f"{root}: no masks for structure {missing[0]!r} (neither masks/{missing[0]}/ "
                        f"nor labels.json); structures in this dataset: {', '.join(known) or 'none'}")


def load_records(root: str | Path, structures: tuple[str, ...] | list[str], report_skipped: bool = True
                 ) -> list[Record]:
    """One record per image with the mask of every requested structure, from `scan`: its first
    error is raised (an image without a mask, a mask without an image, an unknown structure, ...);
    its warnings go to stderr unless `report_skipped` is False (training reports them through check)."""
    found = scan(root, structures)
    _raise_first_error(found, report_skipped)
    manifest, manifest_path = read_manifest(root), DatasetDir(root).manifest_path
    records = []
    for image_id, image_path in found.images.items():
        row = manifest.loc[image_id] if manifest is not None and image_id in manifest.index else None
        records.append(Record(
            id=image_id,
            image=image_path,
            masks={structure: found.masks[structure][image_id] for structure in structures},
            patient_id=_manifest_value(row, "patient_id") or image_id,
            pixel_spacing_mm=_spacing(row, manifest_path),
        ))
    return records


def _manifest_value(row, column: str) -> str | None:
    if row is None or column not in row.index or pd.isna(row[column]) or row[column] == "":
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


def join_datasets(parts: dict[str, Path], out: str | Path) -> Path:
    """One dataset of several (prefix -> dataset folder with binary masks): every image and mask under the
    id `<prefix>_<id>`, hard-linked where the file system allows (else copied), and the manifests' rows with
    the new ids and patients (two parts' `case_0001` are different people). The parts must hold the same
    structures. OUT appears complete or not at all (seglib.data.outputs)."""
    scans = {prefix: scan(root) for prefix, root in parts.items()}
    for found in scans.values():
        if found.first_error() is not None:
            raise found.first_error().as_error()
    structures = {prefix: sorted(found.masks) for prefix, found in scans.items()}
    if len({tuple(names) for names in structures.values()}) > 1 or any(found.labelled for found in scans.values()):
        raise DataError(f"cannot join {', '.join(map(str, parts.values()))}: each must have binary masks of the same "
                        f"structures (they have {structures})")
    with output_folder(out, "join", list(parts.values())) as staging:
        joined, manifests = DatasetDir(staging), []
        for prefix, found in scans.items():
            for image_id, path in found.images.items():
                _link(path, joined.image_path(f"{prefix}_{image_id}", path.suffix))
                for structure, masks in found.masks.items():
                    mask = masks[image_id].path
                    _link(mask, joined.mask_path(structure, f"{prefix}_{image_id}", mask.suffix))
            manifest = read_manifest(parts[prefix])
            if manifest is not None:
                renamed = {column: prefix + "_" + manifest[column] for column in ("id", "patient_id") if column in manifest}
                manifests.append(manifest.assign(**renamed))
        if manifests:
            pd.concat(manifests).to_csv(joined.manifest_path, index=False)
    return Path(out)


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, target)
