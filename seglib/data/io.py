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
    if path.suffix.lower() == ".dcm":
        return _read_dicom(path)
    import skimage.io  # here: DataError's importers (config, the CLI's --help) stay free of scikit-image

    try:
        return skimage.io.imread(path)
    except Exception as error:  # the imaging libraries raise many types; all mean "unreadable"
        raise DataError(f"{path}: cannot read image: damaged, or not a PNG, JPEG or TIFF file") from error


def _read_dicom(path: Path) -> np.ndarray:
    import pydicom  # only DICOM users pay for the import

    try:
        dataset = pydicom.dcmread(path)
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
