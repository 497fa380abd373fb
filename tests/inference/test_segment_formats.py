"""segment --format nifti dicom-seg: results a PACS viewer, 3D Slicer or ITK-SNAP opens on the right
film, and DICOM SEG back into a dataset (import --format dicom-seg)."""

import json
import shutil

import numpy as np
import pandas as pd
import pydicom
import pytest
from conftest import DX_FOR_PRESENTATION, write_dicom_film
from matplotlib.colors import to_rgb
from pydicom.uid import generate_uid

from seglib.data.adapters import import_dataset
from seglib.data.dicom_seg import read_segmentation
from seglib.data.io import SEGMENTATION_STORAGE, DataError, read_image, read_mask, write_png
from seglib.data.validation import check_dataset
from seglib.inference.dicom_seg_writer import write_segmentation
from seglib.inference.measurements import area_rows
from seglib.inference.segment import segment_folder
from seglib.reporting.plots import structure_color

# id -> (rows, columns), photometric interpretation, spacing attribute, (row mm, column mm)
DICOM_INPUTS = {"film1": ((40, 56), "MONOCHROME1", "PixelSpacing", (0.2, 0.1)),
                "film2": ((48, 48), "MONOCHROME2", "ImagerPixelSpacing", (0.15, 0.15))}


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("films")
    for seed, (image_id, (shape, photometric, attribute, spacing)) in enumerate(DICOM_INPUTS.items()):
        write_dicom_film(folder / f"{image_id}.dcm", shape, photometric, attribute, spacing, seed=seed)
    write_png(folder / "photo.png", np.random.default_rng(9).integers(0, 255, (32, 36), dtype=np.uint8))
    return folder


@pytest.fixture(scope="module")
def segmented(hip_runs, images_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("segmented") / "out"
    # A low threshold, so the untrained models claim pixels and the masks are not all empty.
    segment_folder(hip_runs, images_dir, out, threshold=0.3, formats=("png", "nifti", "dicom-seg"))
    return out


def png_masks(segmented, image_id):
    labels = json.loads((segmented / "labels.json").read_text())
    label_map = read_image(segmented / "labels" / f"{image_id}.png")
    return {structure: label_map == value for structure, value in labels.items()}


def test_dicom_seg_references_its_film_and_holds_the_png_masks(segmented, images_dir):
    total = 0
    for image_id, (shape, *_) in DICOM_INPUTS.items():
        film = pydicom.dcmread(images_dir / f"{image_id}.dcm")
        seg = pydicom.dcmread(segmented / "dicom-seg" / f"{image_id}.dcm")
        assert seg.SOPClassUID == SEGMENTATION_STORAGE and seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
        assert seg.StudyInstanceUID == film.StudyInstanceUID and seg.SeriesInstanceUID != film.SeriesInstanceUID
        referenced = seg.ReferencedSeriesSequence[0]
        assert referenced.SeriesInstanceUID == film.SeriesInstanceUID
        assert referenced.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == film.SOPInstanceUID
        assert referenced.ReferencedInstanceSequence[0].ReferencedSOPClassUID == DX_FOR_PRESENTATION
        for name in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyDate",
                     "PatientOrientation"):
            assert seg[name].value == film[name].value, name
        assert (seg.Rows, seg.Columns) == shape and seg.NumberOfFrames == 2  # empty segments keep their frame
        masks = read_segmentation(segmented / "dicom-seg" / f"{image_id}.dcm")
        assert list(masks) == [film.SOPInstanceUID]
        expected = png_masks(segmented, image_id)
        assert list(masks[film.SOPInstanceUID]) == list(expected) == ["left_hip", "right_hip"]
        for structure, mask in masks[film.SOPInstanceUID].items():
            np.testing.assert_array_equal(mask, expected[structure])
            total += int(mask.sum())
    assert total > 0  # the comparison was not between empty masks only


def test_segments_are_labelled_coded_lateral_coloured_and_attributed(segmented, hip_runs):
    seg = pydicom.dcmread(segmented / "dicom-seg" / "film1.dcm")
    for segment, (label, laterality) in zip(seg.SegmentSequence, [("left_hip", ("7771000", "Left")),
                                                                  ("right_hip", ("24028007", "Right"))]):
        assert segment.SegmentLabel == label and segment.SegmentAlgorithmType == "AUTOMATIC"
        category, anatomy = segment.SegmentedPropertyCategoryCodeSequence[0], segment.SegmentedPropertyTypeCodeSequence[0]
        assert (category.CodeValue, category.CodingSchemeDesignator) == ("91723000", "SCT")
        assert (anatomy.CodeValue, anatomy.CodingSchemeDesignator) == ("118645006", "SCT")
        modifier = anatomy.SegmentedPropertyTypeModifierCodeSequence[0]
        assert (modifier.CodeValue, modifier.CodingSchemeDesignator, modifier.CodeMeaning) == (*laterality[:1], "SCT",
                                                                                             laterality[1])
        # CIE Lab, scaled to 0..65535 as DICOM stores it; back to RGB it is seglib's colour
        from highdicom.color import CIELabColor

        rgb = CIELabColor.from_dicom_value(segment.RecommendedDisplayCIELabValue).to_rgb()
        np.testing.assert_allclose(rgb, np.array(to_rgb(structure_color(label))) * 255, atol=1.5)
        algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
        run = hip_runs[0] if label == "left_hip" else hip_runs[1]
        assert algorithm.AlgorithmName == f"seglib unet {run.name}" and algorithm.AlgorithmVersion == "0.1.0"
        assert algorithm.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"
        assert f'structures=["{label}"]' in algorithm.AlgorithmParameters and "threshold=0.3" in algorithm.AlgorithmParameters
        assert "data=" not in algorithm.AlgorithmParameters  # a local path stays on the machine


def test_png_input_gets_one_line_and_its_other_formats(hip_runs, images_dir, tmp_path, capsys):
    from seglib.cli import main

    out = tmp_path / "out"
    assert main(["segment", "--runs", *map(str, hip_runs), "--images", str(images_dir), "--out", str(out),
                 "--format", "nifti", "dicom-seg"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{images_dir / 'photo.png'}: no DICOM SEG written")
    assert sorted(p.name for p in (out / "dicom-seg").iterdir()) == ["film1.dcm", "film2.dcm"]
    assert sorted(p.name for p in (out / "nifti").iterdir()) == ["film1.nii.gz", "film2.nii.gz", "labels.ctbl",
                                                                 "labels.txt", "photo.nii.gz"]
    assert not (out / "labels").exists()  # png was not asked for


def test_dicom_seg_without_any_dicom_input_is_refused_before_work(hip_runs, tmp_path):
    write_png(tmp_path / "pngs" / "a.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="dicom-seg needs DICOM"):
        segment_folder(hip_runs, tmp_path / "pngs", tmp_path / "out", formats=("dicom-seg",))
    assert not (tmp_path / "out").exists()


def test_a_film_without_its_identity_is_named_before_work(hip_runs, tmp_path):
    write_dicom_film(tmp_path / "films" / "anon.dcm", (8, 8))
    film = pydicom.dcmread(tmp_path / "films" / "anon.dcm")
    del film.StudyInstanceUID
    film.save_as(tmp_path / "films" / "anon.dcm")
    with pytest.raises(DataError, match=r"anon\.dcm: a DICOM SEG must reference .* no StudyInstanceUID"):
        segment_folder(hip_runs, tmp_path / "films", tmp_path / "out", formats=("png", "dicom-seg"))
    assert not (tmp_path / "out").exists()


def test_nifti_label_maps_keep_values_orientation_and_spacing(segmented):
    import nibabel

    labels = json.loads((segmented / "labels.json").read_text())
    for image_id, spacing in [("film1", (0.2, 0.1)), ("film2", (0.15, 0.15)), ("photo", None)]:
        nifti = nibabel.load(segmented / "nifti" / f"{image_id}.nii.gz")
        label_map = read_image(segmented / "labels" / f"{image_id}.png")
        # voxel (i, j) = column i, row j: the array is the transposed PNG, the values are labels.json's
        np.testing.assert_array_equal(np.asarray(nifti.dataobj).T, label_map)
        row_mm, col_mm = spacing or (1.0, 1.0)
        np.testing.assert_allclose(nifti.header.get_zooms(), (col_mm, row_mm))
        np.testing.assert_allclose(nifti.affine, np.diag([-col_mm, -row_mm, 1, 1]))  # RAS of ITK's LPS identity
        assert nifti.header.get_xyzt_units()[0] == ("mm" if spacing else "unknown")
    ctbl = (segmented / "nifti" / "labels.ctbl").read_text().splitlines()
    assert ctbl[-2:] == [f"{labels['left_hip']} left_hip 0 114 178 255", f"{labels['right_hip']} right_hip 213 94 0 255"]
    itksnap = [line.split() for line in (segmented / "nifti" / "labels.txt").read_text().splitlines()
               if not line.startswith("#")]
    assert itksnap[1] == [str(labels["left_hip"]), "0", "114", "178", "1.00", "1", "1", '"left_hip"']


def test_areas_table_has_mm2_from_the_dicom_header_and_per_image_columns(segmented):
    areas = pd.read_csv(segmented / "areas.csv", dtype={"id": str}).set_index(["id", "structure"])
    assert list(areas.columns) == ["area_px", "area_mm2", "left_right_area_ratio", "contested_px",
                                   "warning"]
    for image_id, (*_, spacing) in DICOM_INPUTS.items():
        rows = areas.loc[image_id]
        np.testing.assert_allclose(rows["area_mm2"], rows["area_px"] * spacing[0] * spacing[1])
        assert rows["contested_px"].nunique() == 1
    assert areas.loc["photo", "area_mm2"].isna().all()  # a PNG does not record its spacing


def test_area_rows_measure_mm2_left_right_ratio_and_contested_pixels():
    masks = {"left_hip": np.zeros((10, 10), bool), "right_hip": np.zeros((10, 10), bool), "sacrum": np.eye(10, dtype=bool)}
    masks["left_hip"][:3, :4] = True  # 12 px
    masks["right_hip"][5:, :8] = True  # 40 px
    contested = np.zeros((10, 10), bool)
    contested[0, :3] = True
    rows = {row["structure"]: row for row in area_rows("x", masks, contested, (0.5, 0.2))}
    assert rows["left_hip"]["area_mm2"] == pytest.approx(1.2) and rows["right_hip"]["area_px"] == 40
    assert rows["left_hip"]["left_right_area_ratio"] == rows["right_hip"]["left_right_area_ratio"] == 0.3
    assert rows["sacrum"]["left_right_area_ratio"] == ""  # midline: no partner to compare with
    assert {row["contested_px"] for row in rows.values()} == {3}
    masks["right_hip"][:] = False
    assert area_rows("x", masks, contested, None)[0]["left_right_area_ratio"] == ""  # no division by an empty right
    assert area_rows("x", masks, contested, None)[0]["area_mm2"] == ""


def test_dicom_seg_import_round_trips_into_the_dataset_layout(segmented, images_dir, tmp_path):
    source = tmp_path / "pacs_export"
    shutil.copytree(segmented / "dicom-seg", source / "seg")
    (source / "films").mkdir()
    for image_id in DICOM_INPUTS:
        shutil.copy(images_dir / f"{image_id}.dcm", source / "films")
    dataset = import_dataset("dicom-seg", source, tmp_path / "dataset")
    for image_id in DICOM_INPUTS:
        np.testing.assert_array_equal(read_image(dataset / "images" / f"{image_id}.png"),
                                      read_image(images_dir / f"{image_id}.dcm"))
        for structure, mask in png_masks(segmented, image_id).items():
            np.testing.assert_array_equal(read_mask(dataset / "masks" / structure / f"{image_id}.png"), mask)
    manifest = pd.read_csv(dataset / "manifest.csv").set_index("id")
    assert manifest.loc["film1", "patient_id"] == "P7" and manifest.loc["film1", "seg_file"] == "seg/film1.dcm"
    assert (manifest.loc["film1", "pixel_spacing_row_mm"], manifest.loc["film1", "pixel_spacing_col_mm"]) == (0.2, 0.1)
    assert [p for p in check_dataset(dataset) if p.level == "error"] == []  # ready for `train`


def test_dicom_seg_import_refuses_a_seg_without_its_film_and_a_film_without_a_seg(tmp_path):
    film = write_dicom_film(tmp_path / "films" / "a.dcm", (6, 5))
    mask = np.zeros((6, 5), bool)
    mask[1:3, 2:4] = True
    seg = write_segmentation(tmp_path / "segs" / "a_seg.dcm", film, {"left_lung": mask}, _manual_algorithms())
    only_seg = tmp_path / "only_seg"
    shutil.copytree(tmp_path / "segs", only_seg)
    with pytest.raises(DataError, match=r"a_seg\.dcm: segments image .* not among the DICOM files"):
        import_dataset("dicom-seg", only_seg, tmp_path / "out1")
    write_dicom_film(tmp_path / "films" / "b.dcm", (6, 5))
    both = tmp_path / "both"
    shutil.copytree(tmp_path / "films", both / "films")
    shutil.copy(seg, both)
    with pytest.raises(DataError, match=r"b\.dcm: image not segmented by any SEG"):
        import_dataset("dicom-seg", both, tmp_path / "out2")
    assert not (tmp_path / "out1").exists() and not (tmp_path / "out2").exists()


def test_lung_segment_is_coded_lung_with_laterality(tmp_path):
    film = write_dicom_film(tmp_path / "a.dcm", (6, 5))
    masks = {"right_lung": np.eye(6, 5, dtype=bool), "sacrum": np.zeros((6, 5), bool)}
    seg = pydicom.dcmread(write_segmentation(tmp_path / "seg.dcm", film, masks, _manual_algorithms()))
    lung, sacrum = seg.SegmentSequence
    assert lung.SegmentedPropertyTypeCodeSequence[0].CodeValue == "39607008"
    assert lung.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "24028007"
    assert sacrum.SegmentedPropertyTypeCodeSequence[0].CodeValue == "54735007"
    assert "SegmentedPropertyTypeModifierCodeSequence" not in sacrum.SegmentedPropertyTypeCodeSequence[0]  # midline


def _manual_algorithms():
    from collections import defaultdict

    from seglib.config import RunConfig
    from seglib.inference.dicom_seg_writer import algorithm_identification

    return defaultdict(lambda: algorithm_identification("test", RunConfig(), {}))


@pytest.mark.parametrize("segmentation_type", ["FRACTIONAL", "LABELMAP"])
def test_fractional_and_labelmap_segs_from_other_tools_are_read(tmp_path, segmentation_type):
    import highdicom

    from seglib.inference.dicom_seg_writer import segment_description

    film = write_dicom_film(tmp_path / "a.dcm", (6, 5))
    left, right = np.zeros((6, 5), bool), np.zeros((6, 5), bool)
    left[1:3, 3:5], right[2:5, 0:2] = True, True
    if segmentation_type == "FRACTIONAL":  # probabilities: a pixel belongs at 0.5 and above
        pixels = np.stack([left * 0.8 + 0.3 * ~left, right * 0.5], axis=-1)[None].astype(np.float32)
    else:
        pixels = (left * 1 + right * 2).astype(np.uint8)
    algorithm = _manual_algorithms()["any"]
    seg = highdicom.seg.Segmentation(
        [pydicom.dcmread(film)], pixels, segmentation_type,
        [segment_description(1, "Left lung", algorithm), segment_description(2, "right lung", algorithm)],
        generate_uid(), 1, generate_uid(), 1, "other", "other", "1", "1",
        fractional_type="PROBABILITY" if segmentation_type == "FRACTIONAL" else None)
    seg.save_as(tmp_path / "seg.dcm")
    masks = read_segmentation(tmp_path / "seg.dcm")[pydicom.dcmread(film).SOPInstanceUID]
    assert list(masks) == ["Left_lung", "right_lung"]  # labels made safe for folder names
    np.testing.assert_array_equal(masks["Left_lung"], left)
    np.testing.assert_array_equal(masks["right_lung"], right)


def test_written_seg_passes_the_dicom3tools_validator(segmented):
    import subprocess

    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    for image_id in DICOM_INPUTS:
        report = subprocess.run(["dciodvfy", str(segmented / "dicom-seg" / f"{image_id}.dcm")],
                                capture_output=True, text=True, check=False).stderr
        assert report.strip() == "Segmentation", report  # the IOD it checked against, and no error or warning


# --- every text written fits its value representation (issue #29 item 2) -------------------

TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}


def misfits(seg) -> list[str]:
    """Every text element of `seg`, sequences included, that breaks its value representation (length,
    characters of the default repertoire) or holds several values where DICOM allows one."""
    from pydicom import config
    from pydicom.datadict import dictionary_VM
    from pydicom.valuerep import validate_value

    found = []
    for element in seg.iterall():
        if element.VR not in TEXT_VRS or element.value in (None, ""):
            continue
        if element.VM > 1 and dictionary_VM(element.tag) == "1":
            found.append(f"{element.keyword}: {element.VM} values where DICOM allows one")
        for value in element.value if element.VM > 1 else [element.value]:
            try:
                validate_value(element.VR, str(value), config.RAISE)
            except ValueError as error:
                found.append(f"{element.keyword}: {error}")
            if not str(value).isascii():
                found.append(f"{element.keyword}: {str(value)!r} is not in the default character repertoire")
    return found


def dciodvfy_report(path) -> str:
    import subprocess

    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    return subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False).stderr.strip()


@pytest.fixture(scope="module")
def pelvis_seg(tmp_path_factory):
    """`segment --model pelvis --format dicom-seg` of a DICOM film: the shipped model's five structures."""
    from seglib.cli import main

    root = tmp_path_factory.mktemp("pelvis")
    write_dicom_film(root / "films" / "hips.dcm", (72, 64))
    assert main(["segment", "--model", "pelvis", "--images", str(root / "films"), "--out", str(root / "out"),
                 "--format", "dicom-seg"]) == 0
    return root / "out" / "dicom-seg" / "hips.dcm"


def test_the_shipped_pelvis_model_writes_a_seg_of_its_five_structures(pelvis_seg):
    seg = pydicom.dcmread(pelvis_seg)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["left_hip", "right_hip", "sacrum", "left_femur",
                                                             "right_femur"]
    assert int(seg.NumberOfFrames) == 5 and misfits(seg) == []
    assert seg.ContentDescription == "seglib 0.1.0: 5 structures"  # the five names would not fit a Long String


def test_the_shipped_pelvis_models_seg_passes_the_dicom3tools_validator(pelvis_seg):
    report = dciodvfy_report(pelvis_seg)
    assert report == "Segmentation", report


def test_any_run_name_fits_the_algorithm_name(tmp_path):
    from seglib.config import RunConfig
    from seglib.inference.dicom_seg_writer import algorithm_identification

    film = write_dicom_film(tmp_path / "a.dcm", (6, 5))
    run_name = "Müller\\hips " + "x" * 80  # non-ASCII, a backslash (DICOM's value separator) and too long
    structure = "s" * 64  # the longest name a SegmentLabel holds
    algorithm = algorithm_identification(run_name, RunConfig(structures=(structure,)), {"threshold": 0.5})
    seg = pydicom.dcmread(write_segmentation(tmp_path / "seg.dcm", film, {structure: np.eye(6, 5, dtype=bool)},
                                             {structure: algorithm}))
    assert misfits(seg) == []
    assert seg.SegmentSequence[0].SegmentLabel == structure  # read back as the same structure
    assert seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName.startswith(
        "seglib unet M?ller?hips xxx")
    report = dciodvfy_report(tmp_path / "seg.dcm")
    assert report == "Segmentation", report


def test_a_structure_name_no_segment_label_holds_is_refused_before_work(tmp_path, capsys):
    from conftest import untrained_run

    from seglib.cli import main

    structure = "s" * 65
    run = untrained_run(tmp_path / "run", (structure,))
    write_dicom_film(tmp_path / "films" / "a.dcm", (8, 8))
    assert main(["segment", "--runs", str(run), "--images", str(tmp_path / "films"), "--out", str(tmp_path / "out"),
                 "--format", "dicom-seg"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {run / 'config.json'}: structure name {structure[:40]!r}... has 65 characters; a DICOM SEG's "
        "SegmentLabel (VR LO) holds 64, so --format dicom-seg cannot name it"]
    assert not (tmp_path / "out").exists()
