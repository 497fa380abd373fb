"""Converters from other dataset formats into the standard layout.

Each `import_<format>(source, out)` writes
    OUT/images/<id>.png               the image, 8- or 16-bit grey as in the source
    OUT/masks/<structure>/<id>.png    one binary mask (0/255) per structure and image
    OUT/manifest.csv                  id, patient_id, height, width (+ pixel spacing when known)
through `seglib.data.outputs.output_folder`: OUT appears complete or not at all, an existing non-empty
OUT is refused, and the source is only read. A bad input raises DataError naming the file.

Formats (FORMATS):
    labels  SOURCE/images/<id>.png, SOURCE/labels/<id>.png, SOURCE/labels.json {"left_hip": 134, ...}
    uwmgi   Kaggle UW-Madison GI tract: SOURCE/train.csv (id, class, segmentation as RLE) and
            SOURCE/train/caseN/caseN_dayD/scans/slice_SSSS_W_H_PW_PH.png
    sides   per-side mask folders like Montgomery County: SOURCE/{images,CXR_png}/<id>.png,
            SOURCE/[ManualMask/]leftMask/<id>.png and .../rightMask/<id>.png
    dicom   SOURCE/images/<id>.dcm (+ optional SOURCE/masks/<structure>/<id>.png)
    dicom-seg  DICOM SEG files + the DICOM images they segment, anywhere under SOURCE (found by content)

Pixel spacing: `pixel_spacing_mm` is one number per image. When rows and columns are spaced
differently, the manifest also gets `pixel_spacing_row_mm` (distance between rows) and
`pixel_spacing_col_mm`, which evaluation uses for exact distances in mm; `pixel_spacing_mm` is then
their mean, kept as a summary for readers that want one number.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from seglib.data.dicom_seg import (
    MEDIA_STORAGE_DIRECTORY,
    SEGMENTATION_CLASSES,
    pixel_spacing,
    read_header,
    read_segmentation,
)
from seglib.data.folders import IMAGES, DatasetDir
from seglib.data.io import DataError, has_dicom_preamble, read_image, read_mask
from seglib.data.layout import list_images, matching_files, read_manifest, require_declared_labels
from seglib.data.names import checked_name
from seglib.data.outputs import output_folder
from seglib.progress import progress

SIDE_MEANINGS = {"patient": "by the patient's side", "image": "as seen on the image"}
SIDE_CONVENTIONS = tuple(SIDE_MEANINGS)


@dataclass
class _Sample:
    """One converted image: what goes into images/, masks/ and its manifest row."""

    id: str
    image: np.ndarray
    masks: dict[str, np.ndarray]
    info: dict[str, object] = field(default_factory=dict)  # manifest columns besides id, height, width


def _write_dataset(out: str | Path, samples: Iterable[_Sample], source: str | os.PathLike, total: int | None = None) -> Path:
    with output_folder(out, "import", [source]) as folder:
        rows = []
        dataset = DatasetDir(folder)
        for sample in progress(samples, "import", total):
            dataset.write_sample(sample.id, sample.image, sample.masks)
            height, width = sample.image.shape
            rows.append({"id": sample.id, "patient_id": sample.id, **sample.info, "height": height, "width": width})
        if not rows:
            raise DataError(f"{source}: nothing to import")
        _manifest_table(rows).to_csv(dataset.manifest_path, index=False)
    return Path(out)


def _manifest_table(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    if "pixel_spacing_row_mm" in table and table["pixel_spacing_row_mm"].equals(table["pixel_spacing_col_mm"]):
        # Square pixels everywhere: pixel_spacing_mm says it all.
        table = table.drop(columns=["pixel_spacing_row_mm", "pixel_spacing_col_mm"])
    return table


def _spacing_columns(row_mm: float, col_mm: float) -> dict[str, float]:
    return {"pixel_spacing_mm": round((row_mm + col_mm) / 2, 6),
            "pixel_spacing_row_mm": row_mm, "pixel_spacing_col_mm": col_mm}


def _same_size(array: np.ndarray, shape: tuple[int, ...], path: Path) -> np.ndarray:
    if array.shape != shape:
        raise DataError(f"{path}: size {array.shape[1]}x{array.shape[0]} differs from its image's "
                        f"{shape[1]}x{shape[0]}")
    return array


def _carried_manifest(source: DatasetDir, images: dict[str, Path]) -> Callable[[str], dict]:
    """The source's own manifest.csv columns for an id (empty when there is none), so spacing,
    patients and splits survive the conversion."""
    manifest = read_manifest(source)
    if manifest is None:
        return lambda image_id: {}
    orphans = sorted(set(manifest.index) - set(images))
    if orphans:
        raise DataError(f"{source.manifest_path}: ids without an image: {orphans[:5]} ({len(orphans)} in all)")
    columns = [c for c in manifest.columns if c not in ("id", "height", "width")]

    def info(image_id: str) -> dict:
        if image_id not in manifest.index:
            return {}
        return {c: v for c, v in manifest.loc[image_id, columns].items() if not pd.isna(v)}
    return info


# --- labels: one label-value mask per image ---------------------------------------------------

def import_labels(source: str | Path, out: str | Path) -> Path:
    """SOURCE/images/<id>.png + SOURCE/labels/<id>.png + SOURCE/labels.json -> one mask per structure.

    A label file holding a value that labels.json does not declare is an error (it would
    otherwise vanish from every mask)."""
    source = DatasetDir(source)
    label_values = _declared_label_values(source)
    images = list_images(source.images_dir)
    label_files = matching_files(images, source.labels_dir, "label file")
    carried = _carried_manifest(source, images)

    def samples() -> Iterator[_Sample]:
        for image_id, image_path in images.items():
            image = read_image(image_path)
            labels = _same_size(read_image(label_files[image_id]), image.shape, label_files[image_id])
            require_declared_labels(labels, label_values, label_files[image_id])
            masks = {structure: labels == value for structure, value in label_values.items()}
            yield _Sample(image_id, image, masks, carried(image_id))
    return _write_dataset(out, samples(), source, len(images))


def _declared_label_values(source: DatasetDir) -> dict[str, int]:
    path = source.labels_json
    if not path.is_file():
        raise DataError(f'{path}: not found; the labels format needs it, e.g. {{"left_hip": 134, "right_hip": 255}}')
    return source.read_labels()


# --- uwmgi: Kaggle UW-Madison GI tract ------------------------------------------------------

UWMGI_ID = re.compile(r"(case\d+)_(day\d+)_slice_(\d+)")
UWMGI_SLICE = re.compile(r"slice_(\d+)_(\d+)_(\d+)_(\d+(?:\.\d+)?)_(\d+(?:\.\d+)?)")


def rle_decode(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """The competition's run-length encoding -> a boolean mask of `shape` (height, width).

    `rle` is "start length start length ...", starts 1-based, over the image flattened in
    row-major order (the convention of the competition's public notebooks: decode into a flat
    array, then reshape to (height, width)). An empty string is an empty mask."""
    numbers = _rle_numbers(rle)
    starts, lengths = numbers[0::2] - 1, numbers[1::2]
    ends = starts + lengths
    size = shape[0] * shape[1]
    if (starts < 0).any() or (lengths < 1).any() or (ends > size).any() or (starts[1:] < ends[:-1]).any():
        raise ValueError(f"run-length encoding does not fit an image of {shape[0]}x{shape[1]} pixels "
                         f"(runs must be 1-based, positive, sorted, non-overlapping and end by pixel {size})")
    flat = np.zeros(size, dtype=bool)
    for start, end in zip(starts, ends):
        flat[start:end] = True
    return flat.reshape(shape)


def _rle_numbers(rle: str) -> np.ndarray:
    tokens = rle.split()
    if len(tokens) % 2 or not all(token.isdigit() for token in tokens):
        raise ValueError(f"run-length encoding must be pairs of positive integers, got {rle[:40]!r}")
    return np.array(tokens, dtype=np.int64)


def parse_uwmgi_slice_name(name: str | Path) -> dict[str, float | int]:
    """slice_SSSS_W_H_PW_PH.png -> slice, width, height (pixels), pixel_width_mm, pixel_height_mm."""
    match = UWMGI_SLICE.fullmatch(Path(name).stem)
    if match is None:
        raise DataError(f"{name}: not a UW-Madison slice name slice_SSSS_W_H_PW_PH.png")
    number, width, height, pixel_width, pixel_height = match.groups()
    return {"slice": int(number), "width": int(width), "height": int(height),
            "pixel_width_mm": float(pixel_width), "pixel_height_mm": float(pixel_height)}


def import_uwmgi(source: str | Path, out: str | Path) -> Path:
    """Kaggle UW-Madison GI tract (train.csv + train/ slices) -> one mask per class.

    Ids are the Kaggle ids (caseN_dayD_slice_SSSS); patient_id is caseN, so splits keep a
    case's days together. Images stay 16-bit. Every id needs one row per class."""
    source = Path(source)
    table_path = source / "train.csv"
    runs = _uwmgi_runs(table_path)
    classes = sorted({name for rows in runs.values() for name in rows})
    slices = _uwmgi_slice_files(source, runs)

    def samples() -> Iterator[_Sample]:
        for image_id, rows in runs.items():
            missing = [name for name in classes if name not in rows]
            if missing:
                raise DataError(f"{table_path}: id {image_id} has no row for class {', '.join(missing)}")
            yield _uwmgi_sample(image_id, slices[image_id], rows, table_path)
    return _write_dataset(out, samples(), source, len(runs))


def _uwmgi_runs(table_path: Path) -> dict[str, dict[str, str]]:
    """id -> class -> RLE string, in the table's order."""
    if not table_path.is_file():
        raise DataError(f"{table_path}: not found (the uwmgi format needs train.csv with id,class,segmentation)")
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    absent = {"id", "class", "segmentation"} - set(table.columns)
    if absent:
        raise DataError(f"{table_path}: missing columns {sorted(absent)}")
    runs: dict[str, dict[str, str]] = {}
    rows = zip(table["id"], table["class"], table["segmentation"])
    for line, (image_id, name, rle) in enumerate(rows, start=2):
        if UWMGI_ID.fullmatch(image_id) is None:
            raise DataError(f"{table_path}: line {line}: id {image_id!r} is not caseN_dayD_slice_SSSS")
        checked_name(name, f"{table_path}: line {line}: class")  # it becomes a folder name under masks/
        if name in runs.setdefault(image_id, {}):
            raise DataError(f"{table_path}: line {line}: second row for {image_id} class {name}")
        runs[image_id][name] = rle
    return runs


def _uwmgi_slice_files(source: Path, runs: dict[str, dict[str, str]]) -> dict[str, Path]:
    """id -> its slice PNG; a slice on disk that train.csv does not list is an error (its masks are unknown)."""
    files = {}
    for path in sorted((source / "train").glob("case*/case*_day*/scans/slice_*.png")):
        parse_uwmgi_slice_name(path)  # a malformed name is an error here, not a confusing id below
        image_id = f"{path.parents[1].name}_slice_{path.name.split('_')[1]}"
        if image_id not in runs:
            raise DataError(f"{path}: slice not listed in {source / 'train.csv'} (expected id {image_id})")
        files[image_id] = path
    missing = [image_id for image_id in runs if image_id not in files]
    if missing:
        case, day, number = UWMGI_ID.fullmatch(missing[0]).groups()
        expected = source / "train" / case / f"{case}_{day}" / "scans" / f"slice_{number}_W_H_PW_PH.png"
        raise DataError(f"{expected}: no slice image for id {missing[0]} ({len(missing)} ids without image)")
    return files


def _uwmgi_sample(image_id: str, path: Path, rows: dict[str, str], table_path: Path) -> _Sample:
    described = parse_uwmgi_slice_name(path.name)
    image = read_image(path)
    if image.shape != (described["height"], described["width"]):
        raise DataError(f"{path}: image is {image.shape[1]}x{image.shape[0]} but its name says "
                        f"{described['width']}x{described['height']}")
    masks = {}
    for name, rle in rows.items():
        try:
            masks[name] = rle_decode(rle, image.shape)
        except ValueError as error:
            raise DataError(f"{table_path}: {image_id} {name}: {error}") from error
    case, day, _ = UWMGI_ID.fullmatch(image_id).groups()
    spacing = _spacing_columns(row_mm=described["pixel_height_mm"], col_mm=described["pixel_width_mm"])
    return _Sample(image_id, image, masks, {"patient_id": case, "day": day, "slice": described["slice"], **spacing})


# --- sides: one folder per side (Montgomery County) -----------------------------------------

def import_sides(source: str | Path, out: str | Path, structure: str = "lung",
                 side_convention: str = "patient") -> Path:
    """Per-side mask folders (leftMask/, rightMask/) -> left_<structure>, right_<structure>.

    `side_convention` says whose left the folder names mean: "patient" (leftMask holds the
    patient's left structure, seen on the image's right in a frontal view) or "image" (leftMask
    holds the structure on the image's left, i.e. the patient's right). Nothing in the files says
    which, so every image is checked after the mapping: a left_* mask must lie on the image's
    right half and a right_* mask on its left half; otherwise DataError names the file and
    suggests the other convention. Which convention Montgomery's folders follow is not assumed
    here: the check decides, image by image."""
    if side_convention not in SIDE_CONVENTIONS:
        raise ValueError(f"side_convention must be one of {SIDE_CONVENTIONS}, got {side_convention!r}")
    checked_name(structure, "structure")  # it becomes part of folder names
    source = Path(source)
    images = list_images(_one_folder(source, [IMAGES, "CXR_png"], "images"))
    targets = {"leftMask": "left_", "rightMask": "right_"}
    if side_convention == "image":
        targets = {"leftMask": "right_", "rightMask": "left_"}
    folders = {targets[side] + structure: _one_folder(source, [side, f"ManualMask/{side}"], f"{side} masks")
               for side in targets}
    mask_files = {name: matching_files(images, folder, f"{folder.name} mask") for name, folder in folders.items()}
    carried = _carried_manifest(DatasetDir(source), images)

    def samples() -> Iterator[_Sample]:
        for image_id, image_path in images.items():
            image = read_image(image_path)
            masks = {}
            for name, files in mask_files.items():
                masks[name] = _same_size(read_mask(files[image_id]), image.shape, files[image_id])
                _require_expected_side(masks[name], name, files[image_id], side_convention)
            yield _Sample(image_id, image, masks, carried(image_id))
    return _write_dataset(out, samples(), source, len(images))


def _one_folder(source: Path, candidates: list[str], what: str) -> Path:
    found = [source / name for name in candidates if (source / name).is_dir()]
    if len(found) != 1:
        problem = "none of" if not found else "more than one of"
        raise DataError(f"{source}: {problem} {', '.join(candidates)} found for the {what}")
    return found[0]


def _require_expected_side(mask: np.ndarray, name: str, path: Path, side_convention: str) -> None:
    """Patient's left is on the image's right: a left_* mask's centroid must be right of the
    image centre, a right_* mask's left of it. An empty mask has no side to check."""
    if not mask.any():
        return
    centre = (mask.shape[1] - 1) / 2
    column = float(np.nonzero(mask)[1].mean())
    on_image_right = column > centre
    if on_image_right != name.startswith("left_"):
        other = SIDE_CONVENTIONS[1 - SIDE_CONVENTIONS.index(side_convention)]
        raise DataError(
            f"{path}: imported as {name} (side_convention={side_convention!r}) but it lies on the image's "
            f"{'right' if on_image_right else 'left'} half (centroid column {column:.0f} of {mask.shape[1]}); "
            f"the patient's left appears on the image's right in a frontal radiograph. If the folders name "
            f"sides {SIDE_MEANINGS[other]}, import with side_convention={other!r}; if only some images fail, "
            f"those images or masks are mirrored.")


# --- dicom ---------------------------------------------------------------------------------

def import_dicom(source: str | Path, out: str | Path) -> Path:
    """SOURCE/images/<id>.dcm (+ optional SOURCE/masks/<structure>/<id>.png) -> 16-bit PNG images.

    Pixels go through seglib.data.io.read_image: RescaleSlope/Intercept applied, MONOCHROME1
    inverted so bone is bright, then stretched to the full 16-bit range (absolute values are
    not kept). Spacing comes from PixelSpacing, else ImagerPixelSpacing (detector plane, not
    corrected for magnification); none leaves it blank. patient_id is the DICOM PatientID
    when set, so one patient's images stay in one split."""
    source = DatasetDir(source)
    images = list_images(source.images_dir)
    not_dicom = [path for path in images.values() if path.suffix.lower() != ".dcm"]
    if not_dicom:
        raise DataError(f"{not_dicom[0]}: the dicom format expects .dcm files in {source.images_dir}")
    mask_files = {folder.name: matching_files(images, folder, f"{folder.name} mask")
                  for folder in source.mask_folders()}

    def samples() -> Iterator[_Sample]:
        for image_id, image_path in images.items():
            image = read_image(image_path)
            masks = {name: _same_size(read_mask(files[image_id]), image.shape, files[image_id])
                     for name, files in mask_files.items()}
            yield _Sample(image_id, image, masks, _dicom_info(image_path, image_id))
    return _write_dataset(out, samples(), source, len(images))


def _dicom_info(path: Path, image_id: str) -> dict[str, object]:
    header = read_header(path)
    info: dict[str, object] = {"patient_id": str(header.get("PatientID", "") or "").strip() or image_id}
    spacing = pixel_spacing(header, path)
    if spacing is not None:
        info.update(_spacing_columns(*spacing))
    return info


# --- dicom-seg ---------------------------------------------------------------------------

def _dicom_files(source: Path) -> list[Path]:
    """Every DICOM file under SOURCE, recognised by its content (preamble + 'DICM'), whatever its
    name, case or extension; every other file is named on stderr, so nothing is skipped silently."""
    if not source.is_dir():
        raise DataError(f"{source}: source folder not found")
    found = []
    for path in sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if has_dicom_preamble(path):
            found.append(path)
        else:
            print(f"warning: {path}: not a DICOM file (no DICM preamble); skipped", file=sys.stderr)
    if not found:
        raise DataError(f"{source}: no DICOM files (a 128-byte preamble, then 'DICM') anywhere under it")
    return found


def _dicom_headers(source: Path) -> dict:
    """The header of every DICOM file under SOURCE that can hold an image or a SEG; the others (a
    DICOMDIR, a report, a presentation state) are named on stderr as they are skipped."""
    headers = {}
    for path in _dicom_files(source):
        header = read_header(path)
        if header.file_meta.get("MediaStorageSOPClassUID") == MEDIA_STORAGE_DIRECTORY:
            print(f"warning: {path}: a DICOMDIR (the index of a CD's files), not an image; skipped", file=sys.stderr)
        elif "Rows" not in header:
            print(f"warning: {path}: a DICOM {_sop_class_name(header)} without pixels, not an image; skipped",
                  file=sys.stderr)
        else:
            headers[path] = header
    return headers


def _sop_class_name(header) -> str:
    from pydicom.uid import UID

    uid = header.get("SOPClassUID")
    return f"object of unknown SOP class {uid}" if not uid or UID(uid).name == uid else UID(uid).name


def _images_by_uid(headers: dict) -> dict[str, Path]:
    """SOP instance UID -> image file: the UID is how a SEG names its image, so it must name one file."""
    images: dict[str, Path] = {}
    for path, header in headers.items():
        uid = header.get("SOPInstanceUID")
        if not uid:
            raise DataError(f"{path}: DICOM image without SOPInstanceUID; no SEG can say it segments this image")
        if uid in images:
            raise DataError(f"{images[uid]} and {path}: the same SOPInstanceUID {uid} (a copy or a re-export?); "
                            "a SEG of it could belong to either, so keep one of them in the source")
        images[uid] = path
    return images


def _require_same_segments(segmented: dict[Path, tuple[Path, dict]]) -> None:
    """Every image needs every structure (the layout has no 'not segmented'), so all SEGs must
    describe the same segments; an absent segment is not an empty mask."""
    first_seg, first_masks = next(iter(segmented.values()), (None, {}))
    for seg_path, masks in segmented.values():
        if set(masks) != set(first_masks):
            differ = sorted(set(masks) ^ set(first_masks))
            raise DataError(f"{seg_path}: segments {', '.join(masks)} but {first_seg} segments "
                            f"{', '.join(first_masks)} (differ: {', '.join(differ)}); every image of a dataset "
                            "needs the same structures")


DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")  # dropped from a DICOM file's name to make its id


def _image_ids(paths: list[Path], source: Path) -> dict[Path, str]:
    """An id per image: its file name; when two images share one (a CD names each series' files
    IM000000, IM000001, ...), every id is the path under SOURCE, folders joined by '_'."""
    ids = {path: _file_id(Path(path.name)) for path in paths}
    if len(set(ids.values())) < len(ids):
        ids = {path: _file_id(path.relative_to(source)) for path in paths}
    first: dict[str, Path] = {}
    for path, image_id in ids.items():
        if first.setdefault(image_id, path) != path:
            raise DataError(f"{path}: duplicate id {image_id!r} (also {first[image_id]})")
    return ids


def _file_id(relative: Path) -> str:
    """The path without a DICOM extension, folders joined by '_'. Other dots stay: a file named by
    its UID (1.2.840.113619.2.55.3.504) has no extension, and its last number tells it apart."""
    name = relative.stem if relative.suffix.lower() in DICOM_SUFFIXES else relative.name
    return "_".join((*relative.parts[:-1], name))


def import_dicom_seg(source: str | Path, out: str | Path) -> Path:
    """DICOM SEG files and the DICOM images they reference, as DICOM files anywhere under SOURCE
    (found by content, whatever their names; a DICOMDIR and other objects without pixels are skipped
    with a line on stderr), -> images/ (as the dicom format reads them) and one mask per segment
    (seglib.data.dicom_seg.read_segmentation).

    An image takes its file's name as id (its path under SOURCE when names repeat). Every SEG's images
    must be in SOURCE, every image must be segmented by exactly one SEG, all SEGs must have the same
    segments, and no two images may share a SOP instance UID (else an error names the files): a mask
    without its image, an image without masks or a mask on the wrong image is not training data.
    Manifest: as the dicom format, plus the SEG file."""
    source = Path(source)
    headers = _dicom_headers(source)
    segs = [path for path, header in headers.items() if header.get("SOPClassUID") in SEGMENTATION_CLASSES]
    images = _images_by_uid({path: header for path, header in headers.items() if path not in segs})
    segmented = {}  # image path -> (SEG path, masks)
    for seg_path in segs:
        for uid, masks in read_segmentation(seg_path).items():
            if uid not in images:
                raise DataError(f"{seg_path}: segments image {uid}, which is not among the DICOM files in {source}")
            if images[uid] in segmented:
                raise DataError(f"{images[uid]}: segmented by both {segmented[images[uid]][0]} and {seg_path}")
            segmented[images[uid]] = seg_path, masks
    unsegmented = sorted(set(images.values()) - set(segmented))
    if unsegmented:
        raise DataError(f"{unsegmented[0]}: image not segmented by any SEG in {source} ({len(unsegmented)} such images)")
    _require_same_segments(segmented)
    ids = _image_ids(sorted(segmented), source)

    def samples() -> Iterator[_Sample]:
        for image_path, (seg_path, masks) in sorted(segmented.items()):
            image = read_image(image_path)
            masks = {name: _same_size(mask, image.shape, seg_path) for name, mask in masks.items()}
            info = _dicom_info(image_path, ids[image_path]) | {"seg_file": str(seg_path.relative_to(source))}
            yield _Sample(ids[image_path], image, masks, info)
    return _write_dataset(out, samples(), source, len(segmented))


# --- entry point -----------------------------------------------------------------------------

FORMATS: dict[str, Callable[..., Path]] = {
    "labels": import_labels,
    "uwmgi": import_uwmgi,
    "sides": import_sides,
    "dicom": import_dicom,
    "dicom-seg": import_dicom_seg,
}


def import_dataset(format: str, source: str | Path, out: str | Path, **options) -> Path:
    """Convert SOURCE in `format` into the standard layout at OUT; options go to the converter
    (e.g. structure=, side_convention= for "sides")."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; known formats: {', '.join(FORMATS)}")
    return FORMATS[format](source, out, **options)
