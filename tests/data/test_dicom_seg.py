"""DICOM SEG import (issue #19 items 4 and 5): DICOM found by content whatever its name, and every
SEG that cannot be read exactly refused in one line naming it, never imported as a wrong mask."""

import re
import shutil
import warnings

import numpy as np
import pydicom
import pytest
from conftest import untrained_run, write_dicom_film

from seglib.cli import main
from seglib.data.dicom_seg import read_segmentation
from seglib.data.io import DataError, read_mask

SHAPE = (6, 5)


def masks_of(seed=0):
    left, right = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    left[1:3, 3:5], right[2:5, 0 + seed % 2:2] = True, True
    return {"left_lung": left, "right_lung": right}


def write_seg(path, film, seed=0):
    from collections import defaultdict

    from seglib.config import RunConfig
    from seglib.inference.dicom_seg_export import algorithm_identification, write_segmentation

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
    assert main(["import", "--format", "dicom-seg", str(source), "--out", str(out)]) == 0
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
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_seg_that_cannot_be_read_exactly_is_refused_in_one_line(pair, tmp_path, capsys, case):
    change, message = MALFORMED[case]
    film, seg = pair
    changed(seg, change)
    with pytest.raises(DataError, match=re.escape(f"{seg}: {message}")):
        read_segmentation(seg)
    out = tmp_path / "dataset"
    assert main(["import", "--format", "dicom-seg", str(film.parent), "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {seg}: {message}"]
    assert not out.exists()


def test_a_seg_given_to_segment_as_a_film_is_named(pair, tmp_path, capsys):
    _, seg = pair
    films = tmp_path / "films"
    films.mkdir()
    shutil.copy(seg, films / "seg.dcm")
    run = untrained_run(tmp_path / "run")
    assert main(["segment", "--runs", str(run), "--images", str(films), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {films / 'seg.dcm'}: is a DICOM Segmentation (SEG), not an image; give the film it segments "
        "(import --format dicom-seg reads SEGs)"]
    assert not (tmp_path / "out").exists()
