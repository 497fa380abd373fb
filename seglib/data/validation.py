"""Validate a dataset and list every problem, not just the first.

`seglib.data.layout.load_records` stops at the first structural problem, which is right for
training; a user fixing a dataset wants the whole list at once. Both list the files with the same
`seglib.data.layout.scan`, so what one accepts the other accepts. `check_dataset` reads the
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
from pathlib import Path

import numpy as np

from seglib.data.folders import DatasetDir
from seglib.data.io import DataError, read_image, read_mask, read_table
from seglib.data.layout import Problem, positive_mm, require_declared_labels, scan
from seglib.data.splits import SPLITS, manifest_split
from seglib.symmetry.partners import partner_of

# Manifest columns that hold file paths (e.g. path, image_path, source_file).
PATH_COLUMN = re.compile(r"(^|_)(path|file|filename)$")


def has_errors(problems: list[Problem]) -> bool:
    return any(problem.level == "error" for problem in problems)


def check_dataset(root: str | Path, structures: list[str] | tuple[str, ...] | None = None) -> list[Problem]:
    """Every problem of the dataset at `root` for `structures` (default: all it has): the files as
    `scan` lists them for training too, then their pixels and the manifest."""
    checker = _Checker(Path(root))
    checker.run(structures)
    return checker.problems


class _Checker:
    def __init__(self, root: Path):
        self.root = root
        self.problems: list[Problem] = []

    def error(self, path: Path | str, message: str) -> None:
        self.problems.append(Problem("error", str(path), message))

    def warning(self, path: Path | str, message: str) -> None:
        self.problems.append(Problem("warning", str(path), message))

    def run(self, structures) -> None:
        found = scan(self.root, structures)
        self.problems.extend(found.problems)
        if not self.root.is_dir():
            return
        labelled = {structure: found.label_values[structure] for structure in found.labelled}
        label_files = {i: source.path for i, source in found.masks[found.labelled[0]].items()} if labelled else {}
        mask_files = {structure: {i: source.path for i, source in sources.items()}
                      for structure, sources in found.masks.items() if structure not in labelled}
        for image_id, image_path in found.images.items():
            self.check_sample(image_id, image_path, mask_files, label_files, labelled, found.label_values)
        self.check_manifest(found.images)

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
        if image_id not in files:  # scan has reported it
            return None
        path = files[image_id]
        mask = self.read(read_mask, path)
        if mask is None:
            return None
        return (mask, path) if self.same_size(mask, shape, path, image_path) else None

    def labels_of(self, image_id, image_path, label_files, label_values, shape) -> tuple[np.ndarray, Path] | None:
        """The label-value array of an image (read once for all its label structures)."""
        if image_id not in label_files:  # scan has reported it
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
        path = DatasetDir(self.root).manifest_path
        if not path.exists():
            return
        manifest = self.read(lambda file: read_table(file, required=("id",)), path)
        if manifest is None:
            return
        for line, row in enumerate(manifest.to_dict("records"), start=2):
            self.check_manifest_row(path, line, row, images)
        for image_id in sorted(set(manifest["id"][manifest["id"].duplicated()])):
            self.error(path, f"duplicate id {image_id!r} in {int((manifest['id'] == image_id).sum())} rows")
        self.read(lambda file: manifest_split(manifest, file), path)

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
