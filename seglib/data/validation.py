"""Validate a dataset and list every problem, not just the first.

`seglib.data.layout.load_records` stops at the first structural problem, which is right for
training; a user fixing a dataset wants the whole list at once. `check_dataset` reads the
standard layout (images/, masks/<structure>/) and the label-value layout (labels/ + labels.json)
and reports, each with the file it concerns:

errors    unreadable image or mask; mask without image; image without mask; image/mask size
          mismatch; non-binary mask values; label values not declared in labels.json; duplicate
          ids (a.png next to a.tif; repeated manifest ids); anything that escapes the dataset
          folder (symlinks pointing outside, '..' or '/' in manifest ids, manifest paths leading
          outside); left_X and right_X masks sharing pixels; manifest rows without an image;
          unusable manifest values (split names, pixel spacing)
warnings  empty masks; files in image or mask folders that seglib does not read
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seglib.data.io import IMAGE_SUFFIXES, DataError, read_image, read_mask
from seglib.data.layout import NOT_AN_IMAGE, positive_mm, read_label_values, require_declared_labels
from seglib.data.names import checked_name
from seglib.data.splits import SPLITS
from seglib.symmetry.partners import partner_of

# Manifest columns that hold file paths (e.g. path, image_path, source_file).
PATH_COLUMN = re.compile(r"(^|_)(path|file|filename)$")


@dataclass(frozen=True)
class Problem:
    level: str  # "error" | "warning"
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.path}: {self.message}"


def has_errors(problems: list[Problem]) -> bool:
    return any(problem.level == "error" for problem in problems)


def check_dataset(root: str | Path, structures: list[str] | tuple[str, ...] | None = None) -> list[Problem]:
    """Every problem of the dataset at `root` for `structures` (default: all it has)."""
    checker = _Checker(Path(root))
    checker.run(structures)
    return checker.problems


class _Checker:
    def __init__(self, root: Path):
        self.root = root
        self.problems: list[Problem] = []
        self.binary_structures = {p.name for p in (root / "masks").glob("*") if p.is_dir()}

    def error(self, path: Path | str, message: str) -> None:
        self.problems.append(Problem("error", str(path), message))

    def warning(self, path: Path | str, message: str) -> None:
        self.problems.append(Problem("warning", str(path), message))

    def run(self, structures) -> None:
        if not self.root.is_dir():
            self.error(self.root, "dataset folder not found")
            return
        images = self.listed_files(self.root / "images", "image")
        if not images and (self.root / "images").is_dir():
            self.error(self.root / "images", f"no images ({', '.join(IMAGE_SUFFIXES)}) in the image folder")
        self.report_unsafe_mask_folders()
        label_values = self.label_values()
        if structures is None:
            structures = sorted(self.binary_structures | set(label_values))
        if not structures:
            self.error(self.root, "no structures: neither masks/<structure>/ folders nor labels.json")
        mask_files = {}  # structure -> id -> binary mask file
        labelled = {}  # structure -> its value in the label files
        for structure in structures:
            if structure in self.binary_structures:  # masks/ wins, as in seglib.data.layout
                mask_files[structure] = self.mask_files(structure, images)
            elif structure in label_values:
                labelled[structure] = label_values[structure]
            else:
                self.error(self.root, f"no masks for structure {structure!r} "
                                      f"(neither masks/{structure}/ nor labels.json)")
        label_files = self.label_files(images) if labelled else {}
        for image_id, image_path in images.items():
            self.check_sample(image_id, image_path, mask_files, label_files, labelled, label_values)
        self.check_manifest(images)

    # --- files and folders ------------------------------------------------------------------

    def listed_files(self, folder: Path, what: str) -> dict[str, Path]:
        """id -> file for the images (or masks) in `folder`, reporting duplicates, escapes and strays."""
        if not folder.is_dir():
            self.error(folder, f"{what} folder not found")
            return {}
        folder_escapes = self.report_escape(folder)
        files: dict[str, Path] = {}
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES or path.is_dir():
                self.warning(path, f"{NOT_AN_IMAGE}; ignored")
                continue
            if not folder_escapes:
                self.report_escape(path)
            if path.stem in files:
                self.error(path, f"duplicate id {path.stem!r} (also {files[path.stem].name})")
                continue
            files[path.stem] = path
        return files

    def report_unsafe_mask_folders(self) -> None:
        for name in sorted(self.binary_structures):
            if self.read(lambda folder: checked_name(folder.name, str(folder)), self.root / "masks" / name) is None:
                self.binary_structures.discard(name)

    def report_escape(self, path: Path) -> bool:
        """A symlink (or a link in its folders) that leads out of the dataset makes it depend on
        files it does not contain."""
        if path.resolve().is_relative_to(self.root.resolve()):
            return False
        self.error(path, f"points outside the dataset folder (to {path.resolve()})")
        return True

    def label_values(self) -> dict[str, int]:
        path = self.root / "labels.json"
        if not path.exists():
            if (self.root / "labels").is_dir():
                self.warning(self.root / "labels", "label files without labels.json; they are not read")
            return {}
        self.report_escape(path)
        try:
            return read_label_values(self.root)
        except DataError as error:
            self.error(path, _without_path(error, path))
            return {}

    def mask_files(self, structure: str, images: dict[str, Path]) -> dict[str, Path]:
        files = self.listed_files(self.root / "masks" / structure, f"{structure} mask")
        self.report_orphans(files, images, f"{structure} mask")
        return files

    def label_files(self, images: dict[str, Path]) -> dict[str, Path]:
        files = self.listed_files(self.root / "labels", "label")
        self.report_orphans(files, images, "label file")
        return files

    def report_orphans(self, files: dict[str, Path], images: dict[str, Path], what: str) -> None:
        for image_id in sorted(set(files) - set(images)):
            self.error(files[image_id], f"{what} without image (no images/{image_id}.*)")

    # --- one image and its masks ---------------------------------------------------------

    def check_sample(self, image_id, image_path, mask_files, label_files, labelled, label_values) -> None:
        shape = self.image_shape(image_path)
        masks: dict[str, tuple[np.ndarray, Path]] = {}  # structure -> (mask, file it came from)
        for structure, files in mask_files.items():
            found = self.binary_mask(image_id, image_path, structure, files, shape)
            if found is not None:
                masks[structure] = found
        labels = self.labels_of(image_id, image_path, label_files, label_values, shape) if labelled else None
        if labels is not None:
            masks.update({structure: (labels[0] == value, labels[1]) for structure, value in labelled.items()})
        for structure, (mask, path) in masks.items():
            if not mask.any():
                self.warning(path, f"empty {structure} mask")
        self.report_overlaps(masks)

    def read(self, reader, path: Path):
        """reader(path), or None after reporting why the file could not be read."""
        try:
            return reader(path)
        except DataError as error:
            self.error(path, _without_path(error, path))
            return None

    def image_shape(self, path: Path) -> tuple[int, int] | None:
        image = self.read(read_image, path)
        return None if image is None else image.shape

    def binary_mask(self, image_id, image_path, structure, files, shape) -> tuple[np.ndarray, Path] | None:
        if image_id not in files:
            self.error(image_path, f"image without a {structure} mask (no masks/{structure}/{image_id}.png)")
            return None
        path = files[image_id]
        mask = self.read(read_mask, path)
        if mask is None:
            return None
        return (mask, path) if self.same_size(mask, shape, path, image_path) else None

    def labels_of(self, image_id, image_path, label_files, label_values, shape) -> tuple[np.ndarray, Path] | None:
        """The label-value array of an image (read once for all its label structures)."""
        if not label_files:
            return None
        if image_id not in label_files:
            self.error(image_path, f"image without a label file (no labels/{image_id}.png)")
            return None
        path = label_files[image_id]
        labels = self.read(read_image, path)
        if labels is None:
            return None
        self.read(lambda file: require_declared_labels(labels, label_values, file), path)
        return (labels, path) if self.same_size(labels, shape, path, image_path) else None

    def same_size(self, mask: np.ndarray, shape, path: Path, image_path: Path) -> bool:
        if shape is None or mask.shape == shape:
            return shape is not None
        self.error(path, f"size {mask.shape[1]}x{mask.shape[0]} differs from image {image_path.name} "
                         f"({shape[1]}x{shape[0]})")
        return False

    def report_overlaps(self, masks: dict[str, tuple[np.ndarray, Path]]) -> None:
        """A left structure and its right partner cannot share pixels in a frontal view; shared
        pixels mean one mask was copied, mirrored wrongly, or painted over its partner."""
        for structure, (mask, path) in masks.items():
            partner = partner_of(structure)
            if structure.startswith("left_") and partner in masks:
                shared = int((mask & masks[partner][0]).sum())
                if shared:
                    self.error(path, f"{structure} and {partner} share {shared} pixels (see {masks[partner][1]})")

    # --- manifest ---------------------------------------------------------------------------

    def check_manifest(self, images: dict[str, Path]) -> None:
        path = self.root / "manifest.csv"
        if not path.exists():
            return
        self.report_escape(path)
        try:
            manifest = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (ValueError, UnicodeDecodeError) as error:  # pandas parser errors are ValueErrors
            self.error(path, f"cannot read as CSV: {error}")
            return
        if "id" not in manifest.columns:
            self.error(path, "no 'id' column")
            return
        for line, row in enumerate(manifest.to_dict("records"), start=2):
            self.check_manifest_row(path, line, row, images)
        for image_id in sorted(set(manifest["id"][manifest["id"].duplicated()])):
            self.error(path, f"duplicate id {image_id!r} in {int((manifest['id'] == image_id).sum())} rows")

    def check_manifest_row(self, path: Path, line: int, row: dict[str, str], images: dict[str, Path]) -> None:
        image_id = row["id"]
        where = f"line {line}"
        if image_id in ("", ".", "..") or "/" in image_id or "\\" in image_id:
            self.error(path, f"{where}: id {image_id!r} is not a file name (it would escape images/)")
        elif image_id not in images:
            self.error(path, f"{where}: id {image_id!r} has no image in images/")
        for column, value in row.items():
            if PATH_COLUMN.search(column) and value and not self.inside(value):
                self.error(path, f"{where}: {column} {value!r} leads outside the dataset folder")
            if column.startswith("pixel_spacing") and value and positive_mm(value) is None:
                self.error(path, f"{where}: {column} {value!r} is not a positive number")
        if row.get("split") and row["split"] not in SPLITS:
            self.error(path, f"{where}: split {row['split']!r} is not one of {', '.join(SPLITS)}")

    def inside(self, relative: str) -> bool:
        if "://" in relative:  # a URL names a remote source, not a file of the dataset
            return True
        return (self.root / relative).resolve().is_relative_to(self.root.resolve())


def _without_path(error: DataError, path: Path) -> str:
    """A DataError's message without its leading 'path: ' (the Problem carries the path)."""
    return str(error).removeprefix(f"{path}: ")
