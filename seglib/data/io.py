"""Reading images and masks with errors that name the file; atomic, never-overwriting writes
(files: atomic_file; folders: seglib.data.outputs.output_folder)."""

from __future__ import annotations

import errno
import io
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm")  # JPEG: a common X-ray export
# DICOM Segmentation SOP classes: a SEG is refused as a film here, and read as masks by seglib.data.dicom_seg.
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
SEGMENTATION_CLASSES = (SEGMENTATION_STORAGE, "1.2.840.10008.5.1.4.1.1.66.7")  # + Label Map Segmentation


class DataError(ValueError):
    """A problem with an input file; the message always names the file."""


def read_image(path: str | Path) -> np.ndarray:
    """A 2D grey image as stored (uint8 or uint16): the file's pixels read by the rule of `grey_film`."""
    path = Path(path)
    return grey_film(_read_pixels(path), path)


def grey_film(pixels, source: str | Path = "film") -> np.ndarray:
    """A film's pixels, from a file or in memory, as every reader of films takes them: a 2D uint8 or
    uint16 array (the same array when it already is one). The one rule for what a film may be:

    - shape (H, W), (H, W, 1), or (H, W, 3) / (H, W, 4) RGB(A), which becomes grey (luminance; alpha dropped);
    - uint8 and uint16 as they are: black is 0, white the type's maximum (255, 65535);
    - other integer types (int64, the type NumPy gives by default, int32, int16, uint32, ...) by their
      values, not their type's range: values in 0-255 are read as 8-bit, in 0-65535 as 16-bit, so a film
      stays the same film whatever integer type it was handed over in; negative values or values above
      65535 are refused;
    - bool: False black, True white;
    - floats in [0, 1] (0 black, 1 white), read as 16-bit; NaN, infinity or values outside [0, 1] are
      refused.
    Anything else raises DataError, one line naming `source` (the file, or "film" in memory)."""
    return _as_grey(_stored_depth(np.asarray(pixels), source), source)


def _stored_depth(array: np.ndarray, source) -> np.ndarray:
    """The pixels as uint8 or uint16 (see grey_film); any other shape is left to _as_grey."""
    if array.dtype in (np.uint8, np.uint16):
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if array.size == 0:
        raise DataError(f"{source}: an empty image (shape {array.shape})")
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 65535:
            raise DataError(f"{source}: integer pixels must lie in 0-255 (8-bit) or 0-65535 (16-bit); found "
                            f"{low} to {high} ({array.dtype}); scale the film to uint16, or to floats in [0, 1]")
        return array.astype(np.uint8 if high <= 255 else np.uint16)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise DataError(f"{source}: pixels hold NaN or infinity ({array.dtype}); a film's pixels are "
                            "numbers in [0, 1]")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 1:
            raise DataError(f"{source}: floating-point pixels must lie in [0, 1] (0 black, 1 white); found "
                            f"{low:g} to {high:g} ({array.dtype})")
        return np.round(array * 65535.0).astype(np.uint16)
    raise DataError(f"{source}: unsupported pixel type {array.dtype} (expected 8- or 16-bit grey, integers "
                    "or floats in [0, 1])")


def _as_grey(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
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
        cmyk = _cmyk_as_rgb(path)
        return skimage.io.imread(path) if cmyk is None else cmyk
    except DataError:
        raise
    except Image.DecompressionBombError as error:  # refused before decoding: the file may be sound
        limit = str(error).split(", could be")[0]  # Pillow: "Image size (N pixels) exceeds limit of M pixels"
        raise DataError(f"{path}: image too large, not damaged: {limit}; reduce it first "
                        "(e.g. to the working resolution)") from None
    except Exception as error:  # the imaging libraries raise many types; all mean "unreadable"
        raise DataError(f"{path}: cannot read image: damaged, or not a PNG, JPEG or TIFF file") from error


def _cmyk_as_rgb(path: Path) -> np.ndarray | None:
    """The RGB pixels of a CMYK (print) JPEG or TIFF, None for any other file. The readers behind
    scikit-image hand CMYK over as four channels, which would be taken for R, G, B and alpha (a grey film
    then reads black); Pillow converts it, through the file's own colour profile where it has one."""
    from PIL import Image, ImageCms

    try:
        image = Image.open(path)  # the header only: the pixels are decoded below, and only for CMYK
    except Image.DecompressionBombError:
        raise
    except Exception:  # not a file Pillow knows; scikit-image reads or refuses it
        return None
    with image:
        if image.mode != "CMYK":
            return None
        # A CMYK JPEG stores its inks inverted or not; only Adobe's marker (APP14) says which, and Pillow reads
        # every CMYK JPEG as Adobe's. Without the marker the film might read as its own negative: refused.
        if image.format == "JPEG" and "adobe" not in image.info:
            raise DataError(f"{path}: a CMYK JPEG without Adobe's colour marker, so its inks may be inverted; "
                            "save it as grey or RGB")
        profile = image.info.get("icc_profile")
        if not profile:
            return np.asarray(image.convert("RGB"))
        try:
            return np.asarray(ImageCms.profileToProfile(image, ImageCms.ImageCmsProfile(io.BytesIO(profile)),
                                                        ImageCms.createProfile("sRGB"), outputMode="RGB"))
        except ImageCms.PyCMSError as error:
            raise DataError(f"{path}: a CMYK image whose colour profile cannot be used ({error}); "
                            "save it as grey or RGB") from None


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

    try:
        dataset = pydicom.dcmread(path)
    except Exception as error:
        raise DataError(f"{path}: cannot read DICOM: {error}") from error
    if dataset.get("SOPClassUID") in SEGMENTATION_CLASSES:
        raise DataError(f"{path}: is a DICOM Segmentation (SEG), not an image; give the film it segments "
                        "(import --from dicom-seg reads SEGs)")
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
    """Write a PNG (or the format `path`'s suffix names) through a temporary name, so a crash never leaves a
    truncated file. Grey (8- or 16-bit) and 8-bit RGB(A) go to Pillow directly: scikit-image's plugin costs
    more than the encoding on a small film (archive throughput); it converts any other array as before."""
    from PIL import Image

    array = np.asarray(array)
    with atomic_file(path) as temporary:
        grey = array.ndim == 2 and array.dtype in (np.uint8, np.uint16)
        colour = array.ndim == 3 and array.shape[-1] in (3, 4) and array.dtype == np.uint8
        if grey or colour:
            Image.fromarray(array).save(temporary)  # the format by the suffix, as scikit-image chooses it
        else:
            import skimage.io

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


def resolved(path: str | os.PathLike) -> Path:
    """Path.resolve, with a symbolic link loop raised as Python 3.13 raises it (an OSError naming the path, which
    every command reports in one line) rather than as Python < 3.13's RuntimeError."""
    try:
        return Path(path).resolve()
    except RuntimeError as error:
        raise OSError(errno.ELOOP, "symbolic link loop", str(path)) from error


# A spreadsheet runs a cell that starts like a formula (CSV injection); OWASP: prefix such text with a quote.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A CSV cell for a table meant for people (areas.csv, evaluate's and report's tables): text that starts
    with =, +, -, @, a tab or a carriage return (e.g. an image named `=HYPERLINK(...).png`) gets a leading
    single quote, so a spreadsheet shows it as text; numbers (-0.5) and other text stay as they are. Files
    seglib reads back to find files (manifest.csv, split files) keep their ids as they are."""
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_STARTS) else value
