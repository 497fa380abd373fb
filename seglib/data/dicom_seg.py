"""DICOM files seglib reads beside images: headers (pixel spacing) and Segmentation (SEG) objects.

read_segmentation turns a SEG, written by seglib (seglib.inference.dicom_seg_writer) or by a viewer, into
masks per referenced image; `import --from dicom-seg` builds a dataset from them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from seglib.data.io import SEGMENTATION_CLASSES, DataError  # io refuses SEGs as films: the classes live there

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # a DICOMDIR: the index of a CD's files, no image


def is_dicom(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".dcm"


def read_header(path: str | Path):
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as error:  # pydicom raises several types for a broken file
        raise DataError(f"{path}: cannot read DICOM header: {error}") from error


# The longest segment label DICOM allows (SegmentLabel is a Long String, LO).
MAX_LABEL = 64


def read_segmentation(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """A SEG file -> {referenced SOP instance UID: {structure: bool mask}}.

    Read with pydicom (highdicom's reader insists on Slice Thickness, which DICOM requires only
    with a frame of reference, so a radiograph's SEG has none). BINARY, FRACTIONAL (a pixel
    belongs at half the maximum value or more) and LABELMAP SEGs are read. Structure names are
    the segment labels made safe (letters, digits, _ and -; other runs of characters become _).
    Every referenced image gets every segment, empty where the SEG has no frame for it.
    A SEG that cannot be read exactly (a missing attribute, fewer frame descriptions than frames,
    a frame naming a segment the SEG does not describe) is refused with its name: guessing would
    give a wrong mask."""
    import pydicom

    path = Path(path)
    try:
        seg = pydicom.dcmread(path)
    except Exception as error:
        raise DataError(f"{path}: cannot read DICOM SEG: {error}") from error
    if seg.get("SOPClassUID") not in SEGMENTATION_CLASSES:
        raise DataError(f"{path}: not a DICOM Segmentation (SOP class {seg.get('SOPClassUID')})")
    _require_frames(seg, path)
    try:
        frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    except Exception as error:
        raise DataError(f"{path}: cannot read DICOM SEG: {error}") from error
    _require_readable(seg, len(frames), path)
    names = _segment_names(seg, path)
    referenced = [item.ReferencedSOPInstanceUID for series in seg.get("ReferencedSeriesSequence", [])
                  for item in series.ReferencedInstanceSequence]
    result = {uid: {name: np.zeros(frames.shape[1:], bool) for name in names.values()} for uid in referenced}
    for index, (frame, group) in enumerate(zip(frames, seg.PerFrameFunctionalGroupsSequence)):
        masks = result.setdefault(_frame_source(group, referenced, path, index),
                                  {name: np.zeros(frames.shape[1:], bool) for name in names.values()})
        for name, mask in _frame_masks(seg, frame, group, names, path, index).items():
            masks[name] |= mask
    return result


def _require_frames(seg, path: Path) -> None:
    """At least one frame, as DICOM requires: a SEG without one says nothing about any image."""
    value = seg.get("NumberOfFrames")
    try:
        count = int(value)
    except (TypeError, ValueError):
        stated = "without NumberOfFrames" if value is None else f"with NumberOfFrames {value!r}"
        raise DataError(f"{path}: DICOM SEG {stated}; cannot tell how many frames it holds") from None
    pixel_bytes = len(seg.get("PixelData") or b"")
    if count < 1 or pixel_bytes == 0:
        raise DataError(f"{path}: DICOM SEG without frames (NumberOfFrames {count}, {pixel_bytes} bytes of pixel "
                        "data); it segments nothing")


def _require_readable(seg, n_frames: int, path: Path) -> None:
    """The attributes reading the frames needs, with values that give one answer."""
    for attribute in ("SegmentationType", "SegmentSequence", "PerFrameFunctionalGroupsSequence"):
        if attribute not in seg:
            raise DataError(f"{path}: DICOM SEG without {attribute}; cannot tell what its frames mean")
    if seg.SegmentationType not in ("BINARY", "FRACTIONAL", "LABELMAP"):
        raise DataError(f"{path}: SegmentationType {seg.SegmentationType!r} is not BINARY, FRACTIONAL or LABELMAP")
    described = len(seg.PerFrameFunctionalGroupsSequence)
    if described < n_frames:
        raise DataError(f"{path}: {n_frames} frames but only {described} per-frame functional groups; "
                        "the other frames' segments and images are unknown")
    if seg.SegmentationType == "FRACTIONAL" and not int(seg.get("MaximumFractionalValue") or 0) > 0:
        raise DataError(f"{path}: fractional SEG with MaximumFractionalValue {seg.get('MaximumFractionalValue')!r}; "
                        "it must be a positive number (the value meaning 'fully inside')")


def _segment_names(seg, path: Path) -> dict[int, str]:
    names = {}
    for item in seg.SegmentSequence:
        number = int(item.get("SegmentNumber") or 0)
        if number == 0:
            if seg.SegmentationType == "LABELMAP":  # a label map SEG may describe its background; it is no structure
                continue
            raise DataError(f"{path}: segment numbers start at 1; a {seg.SegmentationType} SEG has segment number "
                            f"{item.get('SegmentNumber')!r}")
        label = str(item.get("SegmentLabel", ""))
        if len(label) > MAX_LABEL:
            raise DataError(f"{path}: segment {number} label is {len(label)} characters long; DICOM allows "
                            f"{MAX_LABEL} ({label[:40]!r}...)")
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", label).strip("_")
        if not name or name in names.values():
            raise DataError(f"{path}: segment {number} label {item.get('SegmentLabel')!r} "
                            f"is empty or repeats another segment's name")
        names[number] = name
    if not names:
        raise DataError(f"{path}: DICOM SEG without segments")
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


def _frame_masks(seg, frame: np.ndarray, group, names: dict[int, str], path: Path, index: int
                 ) -> dict[str, np.ndarray]:
    if seg.SegmentationType == "LABELMAP":  # pixel values are segment numbers
        return {name: frame == number for number, name in names.items()}
    # per frame, or shared by all frames (a SEG of one segment)
    shared = seg.get("SharedFunctionalGroupsSequence") or [{}]
    identification = group.get("SegmentIdentificationSequence") or shared[0].get("SegmentIdentificationSequence")
    if not identification:
        raise DataError(f"{path}: frame {index + 1} does not say which segment it holds")
    number = int(identification[0].get("ReferencedSegmentNumber") or 0)
    if number not in names:
        raise DataError(f"{path}: frame {index + 1} holds segment {number}, which no segment of the SEG describes "
                        f"(segments: {', '.join(map(str, names))})")
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
