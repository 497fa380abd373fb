"""Reading images and masks with errors that name the file; atomic, never-overwriting writes
(files: atomic_file; folders: seglib.data.outputs.output_folder)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm")  # JPEG: a common X-ray export


class DataError(ValueError):
    """A problem with an input file; the message always names the file."""


def read_image(path: str | Path) -> np.ndarray:
    """A 2D grey image as stored (uint8 or uint16); RGB(A) is converted to grey."""
    path = Path(path)
    return _as_grey(_read_pixels(path), path)


def _as_grey(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = _rgb_to_grey(array[..., :3])
    if array.ndim != 2:
        raise DataError(f"{path}: expected a 2D grey or RGB image, got an array of shape {array.shape}")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{path}: unsupported pixel type {array.dtype} (expected 8- or 16-bit grey)")
    return array


def read_mask(path: str | Path, label_value: int | None = None) -> np.ndarray:
    """A boolean mask. Binary files must hold only 0 and one foreground value (1 or 255);
    label-value files give the pixels equal to `label_value`."""
    path = Path(path)
    array = _read_pixels(path)
    if array.ndim == 3 and array.shape[-1] in (3, 4) and _is_colour(array[..., :3]):
        raise DataError(f"{path}: is a colour image; a mask must be grey, with only 0 and 255 (or 0 and 1)")
    array = _as_grey(array, path)
    if label_value is not None:
        return array == label_value
    values = np.unique(array)
    if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
        shown = ", ".join(str(v) for v in values[:8]) + (" ..." if len(values) > 8 else "")
        raise DataError(f"{path}: a binary mask must hold only 0 and 1 or 0 and 255; found values {shown}")
    return array > 0


def _read_pixels(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    if path.suffix.lower() == ".dcm" or has_dicom_preamble(path):
        return _read_dicom(path)
    import skimage.io  # here: DataError's importers (config, the CLI's --help) stay free of scikit-image
    from PIL import Image  # skimage reads PNG and JPEG through Pillow

    try:
        return skimage.io.imread(path)
    except Image.DecompressionBombError as error:  # refused before decoding: the file may be sound
        limit = str(error).split(", could be")[0]  # Pillow: "Image size (N pixels) exceeds limit of M pixels"
        raise DataError(f"{path}: image too large, not damaged: {limit}; reduce it first "
                        "(e.g. to the working resolution)") from None
    except Exception as error:  # the imaging libraries raise many types; all mean "unreadable"
        raise DataError(f"{path}: cannot read image: damaged, or not a PNG, JPEG or TIFF file") from error


def has_dicom_preamble(path: str | Path) -> bool:
    """Whether the file is DICOM by its content (a 128-byte preamble, then 'DICM'), whatever its
    name, case or extension."""
    try:
        with open(path, "rb") as file:
            return file.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _read_dicom(path: Path) -> np.ndarray:
    import pydicom  # only DICOM users pay for the import

    from seglib.data.dicom_seg import SEGMENTATION_CLASSES  # here: dicom_seg builds on this module

    try:
        dataset = pydicom.dcmread(path)
    except Exception as error:
        raise DataError(f"{path}: cannot read DICOM: {error}") from error
    if dataset.get("SOPClassUID") in SEGMENTATION_CLASSES:
        raise DataError(f"{path}: is a DICOM Segmentation (SEG), not an image; give the film it segments "
                        "(import --format dicom-seg reads SEGs)")
    try:
        pixels = dataset.pixel_array.astype(np.float64)
    except Exception as error:
        raise DataError(f"{path}: cannot read DICOM: {error}") from error
    pixels = pixels * float(getattr(dataset, "RescaleSlope", 1)) + float(getattr(dataset, "RescaleIntercept", 0))
    if getattr(dataset, "PhotometricInterpretation", "") == "MONOCHROME1":
        pixels = pixels.max() - pixels  # MONOCHROME1 stores bone dark; show it bright like every other input
    pixels -= pixels.min()
    if pixels.max() > 0:
        pixels *= 65535.0 / pixels.max()
    return pixels.round().astype(np.uint16)


def _is_colour(rgb: np.ndarray) -> bool:
    return not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))


def _rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    if not _is_colour(rgb):
        return rgb[..., 0]
    # A colour radiograph is unusual (a screenshot, an annotated figure); use luminance.
    grey = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return grey.round().astype(rgb.dtype)


def read_table(path: str | Path, required=(), text_columns: tuple[str, ...] | None = None):
    """A CSV file as a DataFrame whose ids stay text: an id "NA", "null" or "007" is itself, never a
    missing value or a number (`text_columns`: the columns read as text, default all; the others
    are parsed, blank meaning missing). DataError naming the file when it is missing, empty, not
    UTF-8, not a table, or lacks a `required` column."""
    import pandas as pd  # readers of images alone do not pay for it

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    types = str if text_columns is None else dict.fromkeys(text_columns, str)
    try:
        table = pd.read_csv(path, dtype=types, keep_default_na=False, na_values=[] if text_columns is None else [""],
                            encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file; expected a CSV table with a header line") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save it as UTF-8 CSV") from None
    except (pd.errors.ParserError, ValueError) as error:
        raise DataError(f"{path}: cannot read as CSV: {str(error).strip()}") from None
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise DataError(f"{path}: no {missing[0]!r} column (needed: {', '.join(required)}; found: "
                        f"{', '.join(map(str, table.columns)) or 'none'})")
    return table


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8/uint16 pixels as float32 in [0, 1]."""
    return image.astype(np.float32) / float(np.iinfo(image.dtype).max)


def write_png(path: str | Path, array: np.ndarray) -> Path:
    """Write a PNG through a temporary name, so a crash never leaves a truncated file."""
    import skimage.io

    with atomic_file(path) as temporary:
        skimage.io.imsave(temporary, array, check_contrast=False)
    return Path(path)


def write_text(path: str | Path, text: str, overwrite: bool = False) -> Path:
    with atomic_file(path, overwrite=overwrite) as temporary:
        temporary.write_text(text)
    return Path(path)


@contextmanager
def atomic_file(path: str | Path, overwrite: bool = False):
    """Yield a temporary sibling name for the caller to write; it becomes `path` only if the block
    succeeds, so a crash never leaves a truncated file. The temporary keeps the suffix, for writers
    that choose the format by it. An existing `path` is refused unless `overwrite`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; refusing to overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)
