import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from seglib.data.adapters import (
    FORMATS,
    import_dataset,
    import_dicom,
    import_labels,
    import_sides,
    import_uwmgi,
    parse_uwmgi_slice_name,
    rle_decode,
)
from seglib.data.io import DataError, read_image, read_mask, write_png
from seglib.data.validation import check_dataset, has_errors


def rle_encode(mask: np.ndarray) -> str:
    """A 2D mask -> the competition's run-length string (the inverse of rle_decode; "" when empty).
    Only the tests write run-length strings (to build UW-Madison datasets), so it lives here."""
    flat = np.concatenate([[False], np.asarray(mask, dtype=bool).ravel(), [False]])
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1  # 1-based start of each run, then 1 past its end
    edges[1::2] -= edges[0::2]
    return " ".join(str(number) for number in edges)


def tree_digest(root):
    """A fingerprint of every file under root, to prove an import left its source untouched."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def imported_cleanly(out):
    return not has_errors(check_dataset(out))


# --- run-length encoding ------------------------------------------------------------------

def test_rle_follows_the_competition_row_major_order_on_a_hand_made_mask():
    mask = np.zeros((4, 5), bool)  # 4 rows, 5 columns; pixel k (1-based) is row (k-1)//5, column (k-1)%5
    mask[0, 1:4] = True  # pixels 2, 3, 4
    mask[1, 3:5] = True  # pixels 9, 10
    assert rle_encode(mask) == "2 3 9 2"
    np.testing.assert_array_equal(rle_decode("2 3 9 2", (4, 5)), mask)


def test_rle_runs_wrap_across_rows():
    mask = rle_decode("5 3", (3, 4))  # pixels 5..7: the first three of the second row
    assert mask[1, :3].all() and mask.sum() == 3


def test_rle_round_trips_on_random_masks():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (7, 3), (16, 16), (13, 29)]:
        for density in (0.0, 0.3, 0.9, 1.0):
            mask = rng.random(shape) < density
            encoded = rle_encode(mask)
            np.testing.assert_array_equal(rle_decode(encoded, shape), mask)
            assert rle_encode(rle_decode(encoded, shape)) == encoded


def test_an_empty_mask_encodes_to_an_empty_string():
    assert rle_encode(np.zeros((5, 6), bool)) == ""
    assert not rle_decode("", (5, 6)).any()


MALFORMED = "run-length encoding must be pairs of positive integers"
MISFITTING = "run-length encoding does not fit an image of 4x5 pixels"


@pytest.mark.parametrize("rle, message", [("1", MALFORMED), ("a 2", MALFORMED), ("0 2", MISFITTING),
                                          ("3 0", MISFITTING), ("1 30", MISFITTING), ("5 2 4 2", MISFITTING),
                                          ("5 2 1 2", MISFITTING)])
def test_malformed_or_misfitting_rle_is_rejected(rle, message):
    with pytest.raises(ValueError, match=message):
        rle_decode(rle, (4, 5))


# --- uwmgi ------------------------------------------------------------------------------

def test_uwmgi_slice_names_give_size_and_spacing():
    assert parse_uwmgi_slice_name("slice_0006_266_266_1.50_1.50.png") == {
        "slice": 6, "width": 266, "height": 266, "pixel_width_mm": 1.5, "pixel_height_mm": 1.5}
    parsed = parse_uwmgi_slice_name("slice_0112_24_16_1.63_1.25.png")
    assert (parsed["width"], parsed["height"]) == (24, 16)
    assert (parsed["pixel_width_mm"], parsed["pixel_height_mm"]) == (1.63, 1.25)
    with pytest.raises(DataError, match="slice_12.png"):
        parse_uwmgi_slice_name("slice_12.png")


def write_uwmgi(root):
    """Two cases: case7 day0 with two square 16x16 slices, case9 day3 with a 24x16 slice of 1.63x1.25 mm pixels."""
    slices = {"case7_day0_slice_0001": (16, 16, "1.50_1.50"), "case7_day0_slice_0002": (16, 16, "1.50_1.50"),
              "case9_day3_slice_0040": (16, 24, "1.63_1.25")}
    rng = np.random.default_rng(1)
    rows, truth = [], {}
    for image_id, (height, width, spacing) in slices.items():
        case, day, _, number = image_id.split("_")
        image = rng.integers(0, 65536, (height, width), dtype=np.uint16)
        scans = root / "train" / case / f"{case}_{day}" / "scans"
        write_png(scans / f"slice_{number}_{width}_{height}_{spacing}.png", image)
        stomach = np.zeros((height, width), bool)
        stomach[2:6, width - 7:width - 2] = True  # not symmetric under a transpose, so a column-major reader fails
        truth[image_id] = (image, stomach)
        rows += [(image_id, "large_bowel", ""), (image_id, "small_bowel", ""),
                 (image_id, "stomach", rle_encode(stomach))]
    pd.DataFrame(rows, columns=["id", "class", "segmentation"]).to_csv(root / "train.csv", index=False)
    return truth


def test_uwmgi_import_decodes_masks_keeps_16_bit_and_groups_by_case(tmp_path):
    source = tmp_path / "uwmgi"
    truth = write_uwmgi(source)
    before = tree_digest(source)
    out = import_uwmgi(source, tmp_path / "out")
    assert tree_digest(source) == before
    for image_id, (image, stomach) in truth.items():
        written = read_image(out / "images" / f"{image_id}.png")
        assert written.dtype == np.uint16
        np.testing.assert_array_equal(written, image)
        np.testing.assert_array_equal(read_mask(out / "masks" / "stomach" / f"{image_id}.png"), stomach)
        assert not read_mask(out / "masks" / "small_bowel" / f"{image_id}.png").any()
    manifest = pd.read_csv(out / "manifest.csv", dtype={"id": str, "patient_id": str}).set_index("id")
    assert manifest.loc["case7_day0_slice_0002", "patient_id"] == "case7"
    assert manifest.loc["case9_day3_slice_0040", "patient_id"] == "case9"
    anisotropic = manifest.loc["case9_day3_slice_0040"]
    assert (anisotropic["height"], anisotropic["width"]) == (16, 24)
    assert anisotropic["pixel_spacing_row_mm"] == 1.25 and anisotropic["pixel_spacing_col_mm"] == 1.63
    assert anisotropic["pixel_spacing_mm"] == pytest.approx(1.44)
    assert manifest.loc["case7_day0_slice_0001", "pixel_spacing_mm"] == 1.5
    assert imported_cleanly(out)


def test_uwmgi_square_pixels_give_a_single_spacing_column(tmp_path):
    source = tmp_path / "uwmgi"
    write_uwmgi(source)
    table = pd.read_csv(source / "train.csv", keep_default_na=False)
    table[table["id"].str.startswith("case7")].to_csv(source / "train.csv", index=False)
    next((source / "train" / "case9").rglob("*.png")).unlink()
    manifest = pd.read_csv(import_uwmgi(source, tmp_path / "out") / "manifest.csv")
    assert "pixel_spacing_mm" in manifest and "pixel_spacing_row_mm" not in manifest


def test_uwmgi_bad_rle_names_the_csv_and_leaves_no_output(tmp_path):
    source = tmp_path / "uwmgi"
    write_uwmgi(source)
    table = pd.read_csv(source / "train.csv", keep_default_na=False)
    table.loc[2, "segmentation"] = "250 20"  # past the end of a 16x16 slice
    table.to_csv(source / "train.csv", index=False)
    with pytest.raises(DataError, match=r"train\.csv: case7_day0_slice_0001 stomach: .*does not fit"):
        import_uwmgi(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_uwmgi_missing_slice_and_wrong_size_are_errors(tmp_path):
    source = tmp_path / "uwmgi"
    write_uwmgi(source)
    slice_file = next((source / "train" / "case9").rglob("*.png"))
    slice_file.rename(slice_file.with_name("slice_0040_24_17_1.63_1.25.png"))  # name says 17 rows, file has 16
    with pytest.raises(DataError, match=r"slice_0040_24_17_1\.63_1\.25\.png: image is 24x16 but its name says 24x17"):
        import_uwmgi(source, tmp_path / "out1")
    next((source / "train" / "case9").rglob("*.png")).unlink()
    with pytest.raises(DataError, match="no slice image for id case9_day3_slice_0040"):
        import_uwmgi(source, tmp_path / "out2")
    write_png(slice_file.with_name("slice_0040.png"), np.zeros((16, 24), np.uint16))
    with pytest.raises(DataError, match=r"slice_0040\.png: not a UW-Madison slice name"):
        import_uwmgi(source, tmp_path / "out3")


# --- labels -------------------------------------------------------------------------------

def write_labels_source(root):
    labels = np.zeros((8, 12), np.uint8)
    labels[2:6, 7:11], labels[2:6, 1:5] = 134, 255  # patient's left hip on the image's right
    for image_id in ("p1", "p2"):
        write_png(root / "images" / f"{image_id}.png", np.full((8, 12), 90, np.uint8))
        write_png(root / "labels" / f"{image_id}.png", labels)
    (root / "labels.json").write_text(json.dumps({"left_hip": 134, "right_hip": 255}))
    pd.DataFrame({"id": ["p1", "p2"], "patient_id": ["A", "A"], "pixel_spacing_mm": [0.7, 0.7]}).to_csv(
        root / "manifest.csv", index=False)
    return labels


def test_labels_import_gives_one_binary_mask_per_structure(tmp_path):
    labels = write_labels_source(tmp_path / "src")
    before = tree_digest(tmp_path / "src")
    out = import_dataset("labels", tmp_path / "src", tmp_path / "out")
    assert tree_digest(tmp_path / "src") == before
    left = read_image(out / "masks" / "left_hip" / "p2.png")
    assert set(np.unique(left)) == {0, 255}
    np.testing.assert_array_equal(left > 0, labels == 134)
    np.testing.assert_array_equal(read_mask(out / "masks" / "right_hip" / "p2.png"), labels == 255)
    manifest = pd.read_csv(out / "manifest.csv")
    assert list(manifest["id"]) == ["p1", "p2"] and list(manifest["patient_id"]) == ["A", "A"]  # carried over
    assert list(manifest["pixel_spacing_mm"]) == [0.7, 0.7] and list(manifest["width"]) == [12, 12]
    assert imported_cleanly(out)


def test_an_undeclared_label_value_names_the_file_and_values(tmp_path):
    labels = write_labels_source(tmp_path / "src")
    labels[0, 0] = 7
    (tmp_path / "src" / "labels" / "p2.png").unlink()
    write_png(tmp_path / "src" / "labels" / "p2.png", labels)
    with pytest.raises(DataError, match=r"labels/p2\.png: label values \[7\] are not declared in labels\.json"):
        import_labels(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_labels_without_labels_json_or_image_are_errors(tmp_path):
    write_labels_source(tmp_path / "src")
    write_png(tmp_path / "src" / "labels" / "p3.png", np.zeros((8, 12), np.uint8))
    with pytest.raises(DataError, match=r"p3\.png: label file without an image \(no image named p3\.\*\)"):
        import_labels(tmp_path / "src", tmp_path / "out")
    (tmp_path / "src" / "labels.json").unlink()
    with pytest.raises(DataError, match=r"labels\.json: not found"):
        import_labels(tmp_path / "src", tmp_path / "out")


def test_an_existing_output_is_never_overwritten(tmp_path):
    write_labels_source(tmp_path / "src")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        import_labels(tmp_path / "src", tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_a_source_manifest_row_without_image_is_an_error(tmp_path):
    write_labels_source(tmp_path / "src")
    pd.DataFrame({"id": ["p1", "p2", "p9"]}).to_csv(tmp_path / "src" / "manifest.csv", index=False)
    with pytest.raises(DataError, match=r"manifest\.csv: ids without an image: \['p9'\]"):
        import_labels(tmp_path / "src", tmp_path / "out")


# --- sides (Montgomery) ------------------------------------------------------------------------

def write_sides_source(root, montgomery=True, swapped=False):
    """Masks named by the patient's side: leftMask holds the lung on the image's right (unless swapped)."""
    image_dir, mask_dir = ("CXR_png", root / "ManualMask") if montgomery else ("images", root)
    on_image_right, on_image_left = np.zeros((16, 20), bool), np.zeros((16, 20), bool)
    on_image_right[3:13, 12:18] = True
    on_image_left[3:13, 2:8] = True
    left, right = (on_image_left, on_image_right) if swapped else (on_image_right, on_image_left)
    for image_id in ("MCUCXR_0001_0", "MCUCXR_0002_1"):
        write_png(root / image_dir / f"{image_id}.png", np.full((16, 20), 120, np.uint8))
        write_png(mask_dir / "leftMask" / f"{image_id}.png", left.astype(np.uint8) * 255)
        write_png(mask_dir / "rightMask" / f"{image_id}.png", right.astype(np.uint8) * 255)
    return on_image_right


def test_sides_import_maps_montgomery_folders_to_patient_sides(tmp_path):
    on_image_right = write_sides_source(tmp_path / "src")
    out = import_sides(tmp_path / "src", tmp_path / "out")
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["left_lung", "right_lung"]
    np.testing.assert_array_equal(read_mask(out / "masks" / "left_lung" / "MCUCXR_0001_0.png"), on_image_right)
    assert imported_cleanly(out)


def test_sides_with_plain_folders_and_another_structure(tmp_path):
    write_sides_source(tmp_path / "src", montgomery=False)
    out = import_dataset("sides", tmp_path / "src", tmp_path / "out", structure="clavicle")
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["left_clavicle", "right_clavicle"]


def test_swapped_sides_fail_the_laterality_check_and_suggest_the_other_convention(tmp_path):
    on_image_right = write_sides_source(tmp_path / "src", swapped=True)
    with pytest.raises(DataError, match=r"leftMask/MCUCXR_0001_0\.png: imported as left_lung .*"
                                        r"image's left half.*side_convention='image'"):
        import_sides(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    out = import_sides(tmp_path / "src", tmp_path / "out", side_convention="image")
    np.testing.assert_array_equal(read_mask(out / "masks" / "left_lung" / "MCUCXR_0001_0.png"), on_image_right)


def test_the_image_convention_on_patient_named_folders_is_caught(tmp_path):
    write_sides_source(tmp_path / "src")
    with pytest.raises(DataError, match=r"leftMask/MCUCXR_0001_0\.png: imported as right_lung .*"
                                        r"image's right half.*side_convention='patient'"):
        import_sides(tmp_path / "src", tmp_path / "out", side_convention="image")


def test_sides_need_exactly_one_image_folder_and_a_plain_structure_name(tmp_path):
    write_sides_source(tmp_path / "src")
    (tmp_path / "src" / "images").mkdir()
    with pytest.raises(DataError, match="more than one of images, CXR_png"):
        import_sides(tmp_path / "src", tmp_path / "out")
    with pytest.raises(ValueError, match="structure name '../lung' is not allowed"):
        import_sides(tmp_path / "src", tmp_path / "out", structure="../lung")


# --- dicom --------------------------------------------------------------------------------

def write_dicom(path, stored, photometric="MONOCHROME1", spacing=(0.2, 0.1), patient_id="P7"):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    header = Dataset()
    header.file_meta = meta
    header.SOPClassUID, header.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    header.PatientID = patient_id
    header.Modality = "DX"
    header.Rows, header.Columns = stored.shape
    header.SamplesPerPixel, header.PhotometricInterpretation = 1, photometric
    header.BitsAllocated, header.BitsStored, header.HighBit, header.PixelRepresentation = 16, 12, 11, 0
    header.RescaleSlope, header.RescaleIntercept = "2", "-100"
    if spacing is not None:
        header.PixelSpacing = list(spacing)
    header.PixelData = stored.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    header.save_as(path, enforce_file_format=True)


def test_dicom_import_inverts_monochrome1_keeps_orientation_and_reads_spacing(tmp_path):
    stored = np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 30  # rises to the bottom right
    write_dicom(tmp_path / "src" / "images" / "x1.dcm", stored)
    mask = np.zeros((12, 10), bool)
    mask[1:4, 6:9] = True
    write_png(tmp_path / "src" / "masks" / "left_hip" / "x1.png", mask.astype(np.uint8) * 255)
    out = import_dicom(tmp_path / "src", tmp_path / "out")
    image = read_image(out / "images" / "x1.png")
    assert image.dtype == np.uint16 and image.shape == (12, 10)
    # MONOCHROME1: the highest stored value is the darkest, so intensities run the other way, row-major as stored.
    assert image[0, 0] == 65535 and image[-1, -1] == 0
    assert (np.diff(image.ravel().astype(int)) < 0).all()
    np.testing.assert_array_equal(read_mask(out / "masks" / "left_hip" / "x1.png"), mask)
    row = pd.read_csv(out / "manifest.csv", dtype={"patient_id": str}).iloc[0]
    assert row["patient_id"] == "P7"
    assert (row["pixel_spacing_row_mm"], row["pixel_spacing_col_mm"]) == (0.2, 0.1)
    assert row["pixel_spacing_mm"] == pytest.approx(0.15)
    assert imported_cleanly(out)


def test_dicom_monochrome2_keeps_intensity_order_and_missing_spacing_stays_blank(tmp_path):
    stored = np.arange(8 * 8, dtype=np.uint16).reshape(8, 8)
    write_dicom(tmp_path / "src" / "images" / "y.dcm", stored, photometric="MONOCHROME2", spacing=None, patient_id="")
    out = import_dicom(tmp_path / "src", tmp_path / "out")
    image = read_image(out / "images" / "y.png")
    assert image[0, 0] == 0 and image[-1, -1] == 65535
    manifest = pd.read_csv(out / "manifest.csv")
    assert manifest.loc[0, "patient_id"] == "y" and "pixel_spacing_mm" not in manifest


def test_dicom_format_rejects_other_files(tmp_path):
    write_png(tmp_path / "src" / "images" / "z.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match=r"z\.png: the dicom format expects \.dcm files"):
        import_dicom(tmp_path / "src", tmp_path / "out")


def test_every_format_is_registered_and_unknown_ones_are_refused(tmp_path):
    assert set(FORMATS) == {"labels", "uwmgi", "sides", "dicom", "dicom-seg"}
    with pytest.raises(ValueError, match="unknown format 'nifti'"):
        import_dataset("nifti", tmp_path, tmp_path / "out")

