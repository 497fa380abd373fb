"""DICOM SEG import (issue #19 items 4 and 5, #29 items 3 and 11): DICOM found by content whatever its
name, DICOMDIRs skipped in one line, and every SEG that cannot be read exactly, or that cannot be
paired with one film, refused in one line naming it, never imported as a wrong mask."""

import re
import shutil
import warnings

import numpy as np
import pandas as pd
import pydicom
import pytest
from conftest import untrained_run, write_dicom_film

from seglib.cli import main
from seglib.data.dicom_seg import read_segmentation
from seglib.data.io import DataError, read_image, read_mask
from seglib.data.validation import check_dataset, has_errors

SHAPE = (6, 5)


def masks_of(seed=0):
    left, right = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    left[1:3, 3:5], right[2:5, 0 + seed % 2:2] = True, True
    return {"left_lung": left, "right_lung": right}


def write_seg(path, film, seed=0):
    from collections import defaultdict

    from seglib.config import RunConfig
    from seglib.inference.dicom_seg_writer import algorithm_identification, write_segmentation

    algorithms = defaultdict(lambda: algorithm_identification("test", RunConfig(), {}))
    return write_segmentation(path, film, masks_of(seed), algorithms)


def changed(path, change):
    """The SEG at `path` with `change(dataset)` applied, as a tool with a bug would write it."""
    seg = pydicom.dcmread(path)
    change(seg)
    seg.save_as(path)
    return path


def test_dicom_is_found_by_content_whatever_its_name(tmp_path, capsys):
    source = tmp_path / "export"
    names = [("film1.DCM", "seg1.DCM"), ("film2.dcm", "seg2.dcm"), ("IMG0003", "SEG0003"),
             ("film4.Dicom", "sub/seg4.bin")]
    for seed, (film_name, seg_name) in enumerate(names):
        film = write_dicom_film(source / film_name, SHAPE, seed=seed)
        (source / seg_name).parent.mkdir(exist_ok=True)
        write_seg((source / seg_name).with_suffix(".tmp"), film, seed).rename(source / seg_name)
    (source / "README.txt").write_text("exported from the PACS")
    out = tmp_path / "dataset"
    assert main(["import", "--from", "dicom-seg", "--data", str(source), "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "images").iterdir()) == ["IMG0003.png", "film1.png", "film2.png", "film4.png"]
    for seed, image_id in enumerate(["film1", "film2", "IMG0003", "film4"]):
        np.testing.assert_array_equal(read_mask(out / "masks" / "right_lung" / f"{image_id}.png"),
                                      masks_of(seed)["right_lung"])
    assert f"warning: {source / 'README.txt'}: not a DICOM file (no DICM preamble); skipped" in capsys.readouterr().err


@pytest.fixture
def pair(tmp_path):
    film = write_dicom_film(tmp_path / "source" / "film.dcm", SHAPE)
    return film, write_seg(tmp_path / "source" / "seg.dcm", film)


def _no_frame_groups_for_the_last(seg):
    del seg.PerFrameFunctionalGroupsSequence[-1]


def _fractional_with_zero_maximum(seg):
    seg.SegmentationType, seg.MaximumFractionalValue, seg.SegmentationFractionalType = "FRACTIONAL", 0, "PROBABILITY"


def _frame_of_an_unknown_segment(seg):
    seg.PerFrameFunctionalGroupsSequence[0].SegmentIdentificationSequence[0].ReferencedSegmentNumber = 7


def _segment_number_zero(seg):
    seg.SegmentSequence[0].SegmentNumber = 0
    seg.PerFrameFunctionalGroupsSequence[0].SegmentIdentificationSequence[0].ReferencedSegmentNumber = 0


def _no_frames(seg):
    seg.NumberOfFrames, seg.PixelData, seg.PerFrameFunctionalGroupsSequence = 0, b"", []


def _long_label(seg):
    with warnings.catch_warnings():  # pydicom warns that LO allows 64 characters: the point of the case
        warnings.simplefilter("ignore")
        seg.SegmentSequence[0].SegmentLabel = "x" * 300


MALFORMED = {  # case: (what the tool got wrong, the whole error line after the file name)
    "fewer frame groups than frames": (_no_frame_groups_for_the_last, "2 frames but only 1 per-frame functional "
                                       "groups; the other frames' segments and images are unknown"),
    "fractional with maximum 0": (_fractional_with_zero_maximum, "fractional SEG with MaximumFractionalValue 0; "
                                  "it must be a positive number (the value meaning 'fully inside')"),
    "no SegmentationType": (lambda seg: delattr(seg, "SegmentationType"),
                            "DICOM SEG without SegmentationType; cannot tell what its frames mean"),
    "no per-frame groups": (lambda seg: delattr(seg, "PerFrameFunctionalGroupsSequence"),
                            "DICOM SEG without PerFrameFunctionalGroupsSequence; cannot tell what its frames mean"),
    "unknown segment": (_frame_of_an_unknown_segment,
                        "frame 1 holds segment 7, which no segment of the SEG describes (segments: 1, 2)"),
    "segment number 0": (_segment_number_zero, "segment numbers start at 1; a BINARY SEG has segment number 0"),
    "300-character label": (_long_label, f"segment 1 label is 300 characters long; DICOM allows 64 ({'x' * 40!r}...)"),
    "no frames": (_no_frames, "DICOM SEG without frames (NumberOfFrames 0, 0 bytes of pixel data); it segments nothing"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_seg_that_cannot_be_read_exactly_is_refused_in_one_line(pair, tmp_path, capsys, case):
    change, message = MALFORMED[case]
    film, seg = pair
    changed(seg, change)
    with pytest.raises(DataError, match=re.escape(f"{seg}: {message}")):
        read_segmentation(seg)
    out = tmp_path / "dataset"
    assert main(["import", "--from", "dicom-seg", "--data", str(film.parent), "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {seg}: {message}"]
    assert not out.exists()


def test_a_seg_given_to_segment_as_a_film_is_named(pair, tmp_path, capsys):
    _, seg = pair
    films = tmp_path / "films"
    films.mkdir()
    shutil.copy(seg, films / "seg.dcm")
    run = untrained_run(tmp_path / "run")
    assert main(["segment", "--runs", str(run), "--images", str(films), "--out", str(tmp_path / "out")]) == 2
    named, summary = capsys.readouterr().err.splitlines()
    assert named.startswith(f"error: {films / 'seg.dcm'}: is a DICOM Segmentation (SEG), not an image; give the film "
                            "it segments (import --from dicom-seg reads SEGs)")
    assert summary.startswith("error: 1 of 1 film(s) could not be segmented") and "failed.csv" in summary
    assert "is a DICOM Segmentation (SEG)" in (tmp_path / "out" / "failed.csv").read_text()
    assert not list((tmp_path / "out" / "labels").glob("*.png"))


# --- a PACS or CD export as it comes (issue #29 items 3 and 11) ------------------------------

def import_exit(source, out, capsys):
    """`import --from dicom-seg`: exit code and the lines on stderr."""
    code = main(["import", "--from", "dicom-seg", "--data", str(source), "--out", str(out)])
    return code, capsys.readouterr().err.splitlines()


def test_two_films_with_one_sop_instance_uid_are_refused_naming_both(pair, tmp_path, capsys):
    film, _ = pair
    uid = pydicom.dcmread(film).SOPInstanceUID
    reexport = write_dicom_film(film.parent / "film_reexport.dcm", SHAPE, seed=3, SOPInstanceUID=uid)  # other pixels
    out = tmp_path / "dataset"
    assert import_exit(film.parent, out, capsys) == (2, [
        f"error: {film} and {reexport}: the same SOPInstanceUID {uid} (a copy or a re-export?); a SEG of it "
        "could belong to either, so keep one of them in the source"])
    assert not out.exists()


def write_report(path):
    """A DICOM object without pixels, as a CD carries beside its films: a text report."""
    from pydicom.uid import BasicTextSRStorage

    report = pydicom.dcmread(write_dicom_film(path, SHAPE))
    report.SOPClassUID = report.file_meta.MediaStorageSOPClassUID = BasicTextSRStorage
    for name in ("Rows", "Columns", "PixelData", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
                 "BitsStored", "HighBit", "PixelRepresentation", "PixelSpacing"):
        delattr(report, name)
    report.save_as(path)


def test_a_cd_export_skips_its_dicomdir_and_reports_in_one_line_each(tmp_path, capsys):
    from pydicom.fileset import FileSet

    cd = FileSet()  # as a CD is written: DICOMDIR + PT000000/ST00000N/SE000000/IM000000, every film IM000000
    for seed in range(2):
        film = write_dicom_film(tmp_path / "pacs" / f"film{seed}.dcm", SHAPE, seed=seed)
        cd.add(film)
        cd.add(write_seg(tmp_path / "pacs" / f"seg{seed}.dcm", film, seed))
    cd.write(tmp_path / "cd")
    write_report(tmp_path / "cd" / "REPORT")
    out = tmp_path / "dataset"
    assert import_exit(tmp_path / "cd", out, capsys) == (0, [
        f"warning: {tmp_path / 'cd' / 'DICOMDIR'}: a DICOMDIR (the index of a CD's files), not an image; skipped",
        f"warning: {tmp_path / 'cd' / 'REPORT'}: a DICOM Basic Text SR Storage without pixels, not an image; skipped"])
    on_cd = {pydicom.dcmread(path).SOPInstanceUID: path.relative_to(tmp_path / "cd")
             for path in (tmp_path / "cd").rglob("IM*")}
    for seed in range(2):
        film = tmp_path / "pacs" / f"film{seed}.dcm"
        image_id = "_".join(on_cd[pydicom.dcmread(film).SOPInstanceUID].parts)  # every film is IM000000 on a CD
        np.testing.assert_array_equal(read_image(out / "images" / f"{image_id}.png"), read_image(film))
        np.testing.assert_array_equal(read_mask(out / "masks" / "right_lung" / f"{image_id}.png"),
                                      masks_of(seed)["right_lung"])
    assert len(pd.read_csv(out / "manifest.csv")) == 2 and not has_errors(check_dataset(out))


def test_segs_with_different_segments_are_refused_at_import(tmp_path, capsys):
    from seglib.config import RunConfig
    from seglib.inference.dicom_seg_writer import algorithm_identification, write_segmentation

    source = tmp_path / "export"
    write_seg(source / "seg_a.dcm", write_dicom_film(source / "a.dcm", SHAPE))
    only_left = {"left_lung": masks_of()["left_lung"]}
    algorithm = algorithm_identification("test", RunConfig(), {})
    write_segmentation(source / "seg_b.dcm", write_dicom_film(source / "b.dcm", SHAPE), only_left,
                       {"left_lung": algorithm})
    out = tmp_path / "dataset"
    assert import_exit(source, out, capsys) == (2, [
        f"error: {source / 'seg_b.dcm'}: segments left_lung but {source / 'seg_a.dcm'} segments left_lung, "
        "right_lung (differ: right_lung); every image of a dataset needs the same structures"])
    assert not out.exists()


def test_films_named_by_their_uid_keep_every_number_of_it_in_their_id(tmp_path, capsys):
    source = tmp_path / "export"  # some PACS name files by UID, without extension: the dots are no extension
    for seed, name in enumerate(["1.2.840.99.7.1", "1.2.840.99.7.2"]):
        write_seg(source / f"seg{seed}.dcm", write_dicom_film(source / name, SHAPE, seed=seed), seed)
    out = tmp_path / "dataset"
    assert import_exit(source, out, capsys) == (0, [])
    assert sorted(p.name for p in (out / "images").iterdir()) == ["1.2.840.99.7.1.png", "1.2.840.99.7.2.png"]
    assert not has_errors(check_dataset(out))
