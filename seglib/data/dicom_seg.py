"""DICOM files seglib reads beside images: headers (pixel spacing) and Segmentation (SEG) objects.

read_segmentation turns a SEG, written by seglib (seglib.inference.dicom_seg_export) or by a viewer, into
masks per referenced image; `import --format dicom-seg` builds a dataset from them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from seglib.data.io import DataError

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
SEGMENTATION_CLASSES = (SEGMENTATION_STORAGE, "1.2.840.10008.5.1.4.1.1.66.7")  # + Label Map Segmentation


def is_dicom(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".dcm"


def read_header(path: str | Path):
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as error:  # pydicom raises several types for a broken file
        raise DataError(f"{path}: cannot read DICOM header: {error}") from error


def read_segmentation(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """A SEG file -> {referenced SOP instance UID: {structure: bool mask}}.

    Read with pydicom (highdicom's reader insists on Slice Thickness, which DICOM requires only
    with a frame of reference, so a radiograph's SEG has none). BINARY, FRACTIONAL (a pixel
    belongs at half the maximum value or more) and LABELMAP SEGs are read. Structure names are
    the segment labels made safe (letters, digits, _ and -; other runs of characters become _).
    Every referenced image gets every segment, empty where the SEG has no frame for it."""
    import pydicom

    path = Path(path)
    try:
        seg = pydicom.dcmread(path)
        frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    except Exception as error:
        raise DataError(f"{path}: cannot read DICOM SEG: {error}") from error
    if seg.get("SOPClassUID") not in SEGMENTATION_CLASSES:
        raise DataError(f"{path}: not a DICOM Segmentation (SOP class {seg.get('SOPClassUID')})")
    names = _segment_names(seg, path)
    referenced = [item.ReferencedSOPInstanceUID for series in seg.get("ReferencedSeriesSequence", [])
                  for item in series.ReferencedInstanceSequence]
    result = {uid: {name: np.zeros(frames.shape[1:], bool) for name in names.values()} for uid in referenced}
    for index, (frame, group) in enumerate(zip(frames, seg.PerFrameFunctionalGroupsSequence)):
        masks = result.setdefault(_frame_source(group, referenced, path, index),
                                  {name: np.zeros(frames.shape[1:], bool) for name in names.values()})
        for name, mask in _frame_masks(seg, frame, group, names).items():
            masks[name] |= mask
    return result


def _segment_names(seg, path: Path) -> dict[int, str]:
    names = {}
    for item in seg.SegmentSequence:
        if int(item.SegmentNumber) == 0:  # a label map SEG may describe its background; it is no structure
            continue
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", str(item.get("SegmentLabel", ""))).strip("_")
        if not name or name in names.values():
            raise DataError(f"{path}: segment {item.SegmentNumber} label {item.get('SegmentLabel')!r} "
                            f"is empty or repeats another segment's name")
        names[int(item.SegmentNumber)] = name
    return names


def _frame_source(group, referenced: list[str], path: Path, index: int) -> str:
    """The SOP instance UID of the image a frame segments: its own derivation reference, else the
    SEG's only referenced image."""
    for derivation in group.get("DerivationImageSequence", []):
        for source in derivation.get("SourceImageSequence", []):
            return source.ReferencedSOPInstanceUID
    if len(referenced) == 1:
        return referenced[0]
    raise DataError(f"{path}: frame {index + 1} does not say which of the {len(referenced)} referenced "
                    f"images it segments")


def _frame_masks(seg, frame: np.ndarray, group, names: dict[int, str]) -> dict[str, np.ndarray]:
    if seg.SegmentationType == "LABELMAP":  # pixel values are segment numbers
        return {name: frame == number for number, name in names.items()}
    # per frame, or shared by all frames (a SEG of one segment)
    identification = group.get("SegmentIdentificationSequence") or \
        seg.SharedFunctionalGroupsSequence[0].SegmentIdentificationSequence
    number = int(identification[0].ReferencedSegmentNumber)
    if seg.SegmentationType == "FRACTIONAL":
        return {names[number]: frame.astype(np.int64) * 2 >= int(seg.MaximumFractionalValue)}
    return {names[number]: frame > 0}


def pixel_spacing(header, path: Path) -> tuple[float, float] | None:
    """(row, column) mm from PixelSpacing, else ImagerPixelSpacing (the detector plane, not corrected
    for magnification); None when the header has neither."""
    spacing = header.get("PixelSpacing") or header.get("ImagerPixelSpacing")
    if spacing is None:
        return None
    try:
        row_mm, col_mm = (float(value) for value in spacing)
    except (TypeError, ValueError) as error:
        raise DataError(f"{path}: pixel spacing {spacing!r} is not two numbers") from error
    if row_mm <= 0 or col_mm <= 0:
        raise DataError(f"{path}: pixel spacing {spacing!r} must be positive")
    return row_mm, col_mm
