"""The viewer formats `segment --format` writes beside the PNGs, one file per image:

    OUT/nifti/<id>.nii.gz + labels.txt + labels.ctbl   3D Slicer, ITK-SNAP (seglib.inference.nifti)
    OUT/dicom-seg/<id>.dcm                               PACS viewers, OHIF, Slicer (seglib.inference.dicom_seg_writer)

A DICOM SEG must reference a DICOM source image, so for a PNG or TIFF input `dicom-seg` writes
nothing and says so in one line on stderr, while the image's other formats are written. When no
input at all is DICOM, `dicom-seg` is refused before any work (the user surely meant other files).
"""

from __future__ import annotations

import sys
from pathlib import Path

from seglib.config import SEGMENT_FORMATS
from seglib.data.dicom_seg import is_dicom, pixel_spacing, read_header
from seglib.data.io import DataError
from seglib.inference.dicom_seg_writer import (
    algorithm_identification,
    segment_label,
    source_header,
    write_segmentation,
)
from seglib.inference.nifti import write_colour_tables, write_label_map
from seglib.training.run_dir import RunDir


class NiftiExport:
    def write(self, folder: Path, image_id: str, path: Path, fused, spacing_mm) -> None:
        write_label_map(folder / "nifti" / f"{image_id}.nii.gz", fused.label_map, spacing_mm)

    def finish(self, folder: Path, labels: dict[str, int]) -> None:
        write_colour_tables(folder / "nifti", labels)


class DicomSegExport:
    def __init__(self, run_dirs, images: dict[str, Path], segment_options: dict):
        dicom = [path for path in images.values() if is_dicom(path)]
        if not dicom:
            raise DataError(f"{next(iter(images.values())).parent}: --format dicom-seg needs DICOM (.dcm) images, "
                            f"since a DICOM SEG references its source image; none of the {len(images)} images is one")
        for path in dicom:
            source_header(path)  # a file that cannot be referenced fails now, not after an hour of inference
        self.algorithms = {}  # structure -> the identification of the run that segments it
        for run_dir in map(RunDir, run_dirs):
            config = run_dir.config()
            for structure in config.structures:
                segment_label(structure, run_dir.config_path)  # a name no SEG can hold fails now, not after the work
            algorithm = algorithm_identification(run_dir.path.name, config, segment_options)
            self.algorithms.update(dict.fromkeys(config.structures, algorithm))

    def write(self, folder: Path, image_id: str, path: Path, fused, spacing_mm) -> None:
        if not is_dicom(path):
            print(f"{path}: no DICOM SEG written: a DICOM SEG references its source image's patient, study, "
                  f"series and instance UIDs, which only a DICOM image has; this image's other outputs are written",
                  file=sys.stderr)
            return
        write_segmentation(folder / "dicom-seg" / f"{image_id}.dcm", path, fused.masks, self.algorithms)

    def finish(self, folder: Path, labels: dict[str, int]) -> None:
        pass


def open_exports(formats, run_dirs, images: dict[str, Path], segment_options: dict) -> list:
    """The exporters of `formats` other than png, each checked against the inputs before any work."""
    unknown = sorted(set(formats) - set(SEGMENT_FORMATS))
    if unknown or not formats:
        raise ValueError(f"unknown output format(s) {unknown}; choose from {', '.join(SEGMENT_FORMATS)}")
    exports = [NiftiExport()] if "nifti" in formats else []
    if "dicom-seg" in formats:
        exports.append(DicomSegExport(run_dirs, images, segment_options))
    return exports


def image_spacing(path: Path) -> tuple[float, float] | None:
    """(row, column) mm of an input image: from a DICOM header; other formats do not record it."""
    return pixel_spacing(read_header(path), path) if is_dicom(path) else None
