"""DICOM Segmentation (SEG) objects of seglib's masks of a DICOM radiograph (read back: seglib.data.dicom_seg).

A SEG written here (by highdicom) is BINARY, one segment per structure, every segment with its
frame (empty or not), at the source image's Rows x Columns. It references the source image (its
study, series and SOP instance UIDs), so a PACS viewer attaches it to the right film, and carries
the source's Patient and General Study modules (copied as they are: they identify the patient).
Every text seglib writes fits its value representation (dicom_text): DICOM's default character
repertoire, within the VR's length. Each segment has:

    SegmentLabel                                the structure name, e.g. left_hip
    SegmentedPropertyCategoryCodeSequence       SCT 91723000 Anatomical Structure
    SegmentedPropertyTypeCodeSequence           the anatomy (ANATOMY below), e.g. SCT 39607008 Lung
      > SegmentedPropertyTypeModifierCodeSequence   SCT 7771000 Left / SCT 24028007 Right (left_* / right_*)
    RecommendedDisplayCIELabValue               seglib's fixed colour (seglib.reporting.plots.structure_color)
    SegmentAlgorithmType AUTOMATIC and SegmentationAlgorithmIdentificationSequence: seglib's
    version, the run directory's name and its config (local paths left out).

Anatomy codes come from pydicom's DICOM code dictionary (codes.SCT), not typed in by hand. The
hip bone has no concept of its own there; its segments use SCT 118645006 (pydicom: "Pelvis",
fully "Structure of innominate bone and/or sacrum and/or coccyx"), the nearest concept that is
true of a hip bone, with the laterality modifier. Structures not listed get the generic
SCT 91723000 Anatomical Structure; their SegmentLabel still names them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np

from seglib import __version__
from seglib.config import RunConfig
from seglib.data.dicom_seg import read_header
from seglib.data.io import DataError
from seglib.reporting.plots import structure_color
from seglib.symmetry.partners import patient_side

SERIES_NUMBER = 4100  # a series number unlikely to clash with the acquisition's own series
# The anatomy of a structure, by its name without the left_/right_ prefix (pydicom codes.SCT keywords).
ANATOMY = {"hip": "BoneStructureOfPelvis", "lung": "Lung", "clavicle": "Clavicle", "sacrum": "Sacrum",
           "femur": "Femur", "heart": "Heart", "cardiomediastinum": "Mediastinum"}
# Type 1 (must have a value): without them a SEG cannot say which image it belongs to.
REQUIRED_SOURCE_ATTRIBUTES = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
                              "Rows", "Columns")
# Type 2 (present, may be empty = unknown): highdicom copies them; anonymised files often drop them.
PATIENT_AND_STUDY_ATTRIBUTES = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex",
                                "AccessionNumber", "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")
PATH_SETTINGS = ("data", "split_file")  # local paths mean nothing elsewhere and may name people
# The most characters a text of each value representation holds (PS3.5 table 6.2-1).
MAX_CHARS = {"LO": 64, "LT": 10240}


def source_header(path: str | Path):
    """The source image's header, ready for highdicom: type 1 UIDs checked (DataError naming the
    file), absent type 2 patient/study attributes added empty, as DICOM writes 'unknown'."""
    header = read_header(path)
    missing = [name for name in REQUIRED_SOURCE_ATTRIBUTES if not header.get(name)]
    if missing:
        raise DataError(f"{path}: a DICOM SEG must reference its source image, but the file has no "
                        f"{', '.join(missing)}")
    if int(header.get("NumberOfFrames", 1) or 1) != 1:
        raise DataError(f"{path}: {header.NumberOfFrames} frames; seglib segments single-frame radiographs")
    for name in PATIENT_AND_STUDY_ATTRIBUTES:
        if name not in header:
            setattr(header, name, "")
    return header


def dicom_text(text: str, vr: str) -> str:
    """`text` fit for an element of value representation `vr`: printable ASCII (the default repertoire;
    the SEG keeps its source's character set, which may be no more), no backslash where it would
    split the value in two (LO), and cut to the VR's length, the cut marked with '...'."""
    text = re.sub(r"[^ -~]" if vr == "LT" else r"[^ -\[\]-~]", "?", text)
    limit = MAX_CHARS[vr]
    return text if len(text) <= limit else text[:limit - 3] + "..."


def segment_label(structure: str, where: str | Path = "--format dicom-seg") -> str:
    """The SegmentLabel of a structure: its name, which a reader of the SEG gets back, so never cut."""
    if len(structure) > MAX_CHARS["LO"]:
        raise DataError(f"{where}: structure name {structure[:40]!r}... has {len(structure)} characters; a DICOM "
                        f"SEG's SegmentLabel (VR LO) holds {MAX_CHARS['LO']}, so --format dicom-seg cannot name it")
    return dicom_text(structure, "LO")


def content_description(names: list[str]) -> str:
    """What the SEG holds, in a Long String: its structures when they fit, else how many."""
    listed = f"seglib {__version__}: {', '.join(names)}"
    return listed if len(listed) <= MAX_CHARS["LO"] else f"seglib {__version__}: {len(names)} structures"


def algorithm_identification(run_name: str, config: RunConfig, segment_options: dict):
    """Who made the segments: seglib's version, the run's name, its config (without local paths)
    and the options of this segmentation (threshold, TTA, fusion)."""
    import highdicom
    from pydicom.sr.codedict import codes

    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in PATH_SETTINGS} | segment_options
    algorithm = highdicom.AlgorithmIdentificationSequence(
        name=dicom_text(f"seglib {config.architecture} {run_name}", "LO"), family=codes.DCM.ArtificialIntelligence,
        version=__version__, source="seglib",
        parameters={name: json.dumps(value) for name, value in sorted(settings.items())})
    algorithm[0].AlgorithmParameters = dicom_text(algorithm[0].AlgorithmParameters, "LT")
    return algorithm


def segment_description(number: int, structure: str, algorithm):
    import highdicom
    from pydicom.sr.codedict import codes

    side = patient_side(structure)
    anatomy = ANATOMY.get(structure[len(side) + 1:] if side else structure, "AnatomicalStructure")
    description = highdicom.seg.SegmentDescription(
        segment_number=number, segment_label=segment_label(structure),
        segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=getattr(codes.SCT, anatomy), algorithm_type="AUTOMATIC",
        algorithm_identification=algorithm,
        display_color=highdicom.color.CIELabColor.from_string(structure_color(structure)))
    if side:  # laterality modifies the property type, inside its code item (PS3.3 C.8.20.2); highdicom has no argument
        laterality = codes.SCT.Left if side == "left" else codes.SCT.Right
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            highdicom.sr.CodedConcept.from_code(laterality)]
    return description


def write_segmentation(path: str | Path, source: str | Path, masks: dict[str, np.ndarray],
                       algorithms: dict[str, object]) -> Path:
    """Write the SEG of `source` (a DICOM image) with one segment per mask; `algorithms` maps each
    structure to its algorithm_identification. Refuses to overwrite."""
    import highdicom
    from pydicom.uid import generate_uid

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path}: already exists; refusing to overwrite")
    header = source_header(source)
    for structure, mask in masks.items():
        if mask.shape != (header.Rows, header.Columns):
            raise ValueError(f"{structure} mask of {source} has shape {mask.shape}, the image "
                             f"{header.Rows}x{header.Columns}")
    names = list(masks)
    segmentation = highdicom.seg.Segmentation(
        source_images=[header],
        pixel_array=np.stack([masks[name] for name in names], axis=-1)[None].astype(np.uint8),
        segmentation_type="BINARY",
        segment_descriptions=[segment_description(i, name, algorithms[name]) for i, name in enumerate(names, 1)],
        series_instance_uid=generate_uid(), series_number=SERIES_NUMBER, sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer="seglib", manufacturer_model_name="seglib",
        software_versions=__version__, device_serial_number="none", content_label="SEGLIB",
        series_description="seglib segmentation", content_description=content_description(names),
        omit_empty_frames=False)  # an empty segment still has its frame: a reader sees 'nothing found'
    if "ImageOrientationPatient" not in header:  # a film's only orientation: type 2C, so present even if unknown
        segmentation.PatientOrientation = header.get("PatientOrientation", "")
    path.parent.mkdir(parents=True, exist_ok=True)
    segmentation.save_as(path)
    return path
