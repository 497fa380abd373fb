"""The pelvis phantom rendered from real anatomy: reproducible, sided, geometrically true masks,
plausible shapes, a clear error for a broken model file, and the standard dataset layout."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from seglib.data.io import DataError
from seglib.phantom import shape_model
from seglib.phantom.dataset import (
    LABEL_VALUES,
    phantom_rng,
    write_atlas_renderings,
    write_phantom_dataset,
)
from seglib.phantom.exposure import Appearance
from seglib.phantom.render import STRUCTURES, Pose, make_pelvis, separate_hips
from seglib.symmetry.partners import partner_of

SIZE = 96
ATLAS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "pelvis_atlas"
NO_COLLIMATION = Appearance(collimation=0.0, marker=0.0)


@pytest.fixture(scope="module")
def samples():
    return [make_pelvis(phantom_rng(7, i), SIZE) for i in range(5)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_phantom_dataset(tmp_path_factory.mktemp("phantom") / "pelvis", n=4, size=64, seed=5)


@pytest.fixture(scope="module")
def atlas():
    if not (ATLAS / "left").is_dir():
        pytest.skip(f"pelvis atlas not found at {ATLAS.resolve()} (only in the team's workspace)")
    return shape_model.load_atlas(ATLAS)


def read_png(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


def inter_acetabular_mm(pelvis: shape_model.Pelvis) -> float:
    return float(np.linalg.norm(pelvis.cups["left_hip"][0] - pelvis.cups["right_hip"][0]))


# --- make_pelvis ---------------------------------------------------------------------------------


def test_same_seed_gives_identical_image_and_masks():
    first, second = (make_pelvis(phantom_rng(3, 0), 64) for _ in range(2))
    assert np.array_equal(first.image, second.image)
    for name in STRUCTURES:
        assert np.array_equal(first.masks[name], second.masks[name]), name
    assert (first.midline_x, first.pose) == (second.midline_x, second.pose)


def test_different_seeds_give_different_anatomy_and_pose():
    first, second = (make_pelvis(phantom_rng(seed, 0), 64) for seed in (3, 4))
    assert not np.array_equal(first.image, second.image)
    assert not np.array_equal(first.masks["left_hip"], second.masks["left_hip"])
    assert first.pose != second.pose


def test_image_and_masks_have_the_promised_shapes_and_types(samples):
    for sample in samples:
        assert sample.image.shape == (SIZE, SIZE) and sample.image.dtype == np.uint16
        assert sample.image.max() > 40000 and sample.image.min() < 20000, "the film uses the 16-bit range"
        assert set(sample.masks) == set(STRUCTURES)
        for name, mask in sample.masks.items():
            assert mask.shape == (SIZE, SIZE) and mask.dtype == np.bool_, name
            assert mask.any(), f"{name} is empty"


def test_size_below_minimum_is_refused():
    with pytest.raises(ValueError, match="size"):
        make_pelvis(phantom_rng(0, 0), 16)


def test_patient_left_is_on_the_image_right(samples):
    for sample in samples:
        for side, on_image_right in (("left", True), ("right", False)):
            for bone in ("hip", "femur"):
                centroid_x = np.argwhere(sample.masks[f"{side}_{bone}"])[:, 1].mean()
                assert (centroid_x > sample.midline_x) == on_image_right, f"{side}_{bone}"


def test_femoral_heads_overlap_the_acetabula_in_projection(samples):
    for sample in samples:
        for side in ("left", "right"):
            assert np.any(sample.masks[f"{side}_femur"] & sample.masks[f"{side}_hip"]), side


def test_bone_is_brighter_than_the_soft_tissue_around_it(samples):
    for sample in samples:
        hips = sample.masks["left_hip"] | sample.masks["right_hip"]
        any_bone = np.any([sample.masks[name] for name in STRUCTURES], axis=0)
        around = ndimage.binary_dilation(hips, iterations=3) & ~ndimage.binary_dilation(any_bone)
        assert sample.image[hips].mean() > sample.image[around].mean() + 2000


def test_obturator_foramen_is_a_hole_in_each_hip_mask(samples):
    for sample in samples:
        for name in ("left_hip", "right_hip"):
            mask = sample.masks[name]
            assert (ndimage.binary_fill_holes(mask) & ~mask).sum() > 4, f"{name} has no hole"


def test_masks_are_the_projection_of_the_bone_surface():
    """The mask area equals the area of the mesh's projected triangles, rasterised independently
    (pinhole formula written out here, PIL polygons on a 4x finer grid)."""
    model = shape_model.load_shape_model()
    pelvis = model.shape([1.0, -0.5])
    pose = Pose(tilt=6, rotation=-5, obliquity=3, hip_height=190, source_distance=1100, field_of_view=420,
                centre_offset=(5.0, 30.0))
    size, fine = 128, 512
    sample = make_pelvis(phantom_rng(0, 0), size, NO_COLLIMATION, pelvis=pelvis, pose=pose)
    spacing = pose.field_of_view / fine
    for name in ("left_hip", "sacrum"):
        points = pelvis.vertices[name] @ pose.rotation_matrix().T - np.array([0, pose.hip_height, 0])
        stretch = pose.source_distance / (points[:, 1] + pose.source_distance)  # source at y = -distance
        cols = (points[:, 0] - pose.centre_offset[0]) * stretch / spacing + (fine - 1) / 2
        rows = -(points[:, 2] - pose.centre_offset[1]) * stretch / spacing + (fine - 1) / 2
        canvas = Image.new("1", (fine, fine))
        draw = ImageDraw.Draw(canvas)
        for triangle in pelvis.triangles[name]:
            draw.polygon(list(zip(cols[triangle], rows[triangle])), fill=1)
        expected = np.asarray(canvas).sum() / (fine / size) ** 2
        assert sample.masks[name].sum() == pytest.approx(expected, rel=0.03), name


def test_midline_follows_the_pose():
    straight = make_pelvis(phantom_rng(0, 0), 64, pose=Pose(centre_offset=(0.0, 0.0)))
    assert straight.midline_x == pytest.approx(31.5, abs=1e-6) and straight.midline_tilt_deg == pytest.approx(0)
    # the patient's left side raised: the pelvic axis leans towards the patient's right (image left)
    oblique = make_pelvis(phantom_rng(0, 0), 64, pose=Pose(obliquity=5.0, centre_offset=(0.0, 0.0)))
    assert oblique.midline_tilt_deg == pytest.approx(-5.0, abs=0.5)


def test_partner_and_label_tables_are_consistent():
    # every bone the phantom draws comes with its mirror partner (symmetry.partner_of), so mirrored
    # training pairs and flip TTA work on phantom data
    assert all(partner_of(name) in STRUCTURES for name in STRUCTURES)
    assert LABEL_VALUES == {"left_hip": 134, "right_hip": 255}


def test_hip_masks_never_share_a_pixel(samples):
    for sample in samples:
        assert not np.any(sample.masks["left_hip"] & sample.masks["right_hip"])


def test_a_pixel_both_hips_project_onto_goes_to_the_longer_path():
    both = np.ones((1, 2), bool)
    paths = {"left_hip": np.array([[5.0, 1.0]]), "right_hip": np.array([[1.0, 5.0]])}
    separated = separate_hips({"left_hip": both, "right_hip": both}, paths)
    assert separated["left_hip"].tolist() == [[True, False]] and separated["right_hip"].tolist() == [[False, True]]


# --- The shape model -----------------------------------------------------------------------------


def test_sampled_pelves_are_plausible_and_deterministic():
    model = shape_model.load_shape_model()
    distances = [inter_acetabular_mm(model.sample(phantom_rng(1, i))) for i in range(30)]
    assert 130 < min(distances) and max(distances) < 210, distances  # adult hip-centre distances
    assert np.ptp(distances) > 10, "shapes vary"
    first, second = (model.sample(phantom_rng(2, 0)) for _ in range(2))
    assert all(np.array_equal(first.vertices[b], second.vertices[b]) for b in shape_model.BONES)


def test_samples_stay_within_the_atlas_population(atlas):
    model = shape_model.load_shape_model()
    subjects = [inter_acetabular_mm(model.pelvis(model.align(v))) for v in atlas.vertices]
    low, high = min(subjects), max(subjects)
    sampled = [inter_acetabular_mm(model.sample(phantom_rng(3, i))) for i in range(50)]
    assert low - 0.1 * (high - low) <= min(sampled) and max(sampled) <= high + 0.1 * (high - low), (low, high)


def test_shipped_model_is_small_attributed_and_rebuilt_by_the_atlas_command(atlas, tmp_path):
    shipped = shape_model.DEFAULT_MODEL
    assert shipped.stat().st_size < 4e6
    notice = (shipped.parent / "ATTRIBUTION.md").read_text()
    assert "CC BY 4.0" in notice and "not for clinical use" in notice and "10.1088/1361-6560/ab1456" in notice
    from seglib.cli import main

    assert main(["atlas", "--surfaces", str(ATLAS), "--out", str(tmp_path / "model.npz")]) == 0
    rebuilt, model = shape_model.load_shape_model(tmp_path / "model.npz"), shape_model.load_shape_model()
    assert np.allclose(rebuilt.mean, model.mean, atol=1e-3) and rebuilt.subjects == model.subjects
    assert main(["atlas", "--surfaces", str(ATLAS), "--out", str(tmp_path / "25.npz"), "--exclude", "3", "4", "5",
                 "6", "8"]) == 0
    assert len(shape_model.load_shape_model(tmp_path / "25.npz").subjects) == 25


def test_missing_or_corrupt_model_file_gives_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="nowhere.npz.*not found"):
        shape_model.load_shape_model(tmp_path / "nowhere.npz")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip archive")
    with pytest.raises(DataError, match="broken.npz"):
        shape_model.load_shape_model(broken)
    with pytest.raises(DataError, match="broken.npz"):
        write_phantom_dataset(tmp_path / "out", n=1, size=32, model_path=broken)
    assert not (tmp_path / "out").exists()


def test_a_malformed_vtk_file_is_named(tmp_path):
    path = tmp_path / "LeftHip1_cpd.vtk"
    path.write_text("# vtk DataFile Version 4.0\nvtk output\nASCII\nDATASET POLYDATA\nPOINTS 3 float\n0 0 0 1 0 0\n"
                    "POLYGONS 1 4\n3 0 1 2\n")
    with pytest.raises(DataError, match="LeftHip1_cpd.vtk"):
        shape_model.read_vtk_polydata(path)


# --- write_phantom_dataset -----------------------------------------------------------------------


def test_dataset_has_the_standard_layout(dataset):
    ids = [f"pelvis_{i:04d}" for i in range(4)]
    assert sorted(p.stem for p in (dataset / "images").glob("*.png")) == ids
    for name in STRUCTURES:
        assert sorted(p.stem for p in (dataset / "masks" / name).glob("*.png")) == ids
    assert sorted(p.stem for p in (dataset / "labels").glob("*.png")) == ids
    assert json.loads((dataset / "labels.json").read_text()) == LABEL_VALUES


def test_manifest_gives_spacing_midline_and_true_pose(dataset):
    with open(dataset / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == ("id", "patient_id", "pixel_spacing_mm", "midline_x", "midline_tilt_deg", "tilt_deg",
                              "rotation_deg", "obliquity_deg", "source_detector_mm", "magnification",
                              "conditions")  # data/README.md
    assert [row["id"] for row in rows] == [f"pelvis_{i:04d}" for i in range(4)]
    for row in rows:
        assert row["conditions"] == "", "the default look is a clean film"
        assert 400 / 64 <= float(row["pixel_spacing_mm"]) <= 470 / 64
        assert 0 < float(row["midline_x"]) < 64
        assert abs(float(row["tilt_deg"])) <= 10 and abs(float(row["rotation_deg"])) <= 8
        assert abs(float(row["obliquity_deg"])) <= 6 and 1.1 < float(row["magnification"]) < 1.35


def test_written_pngs_match_the_in_memory_phantom(dataset):
    sample = make_pelvis(phantom_rng(5, 2), 64)
    assert np.array_equal(read_png(dataset / "images" / "pelvis_0002.png"), sample.image)
    for name in STRUCTURES:
        stored = read_png(dataset / "masks" / name / "pelvis_0002.png")
        assert set(np.unique(stored)) <= {0, 255}
        assert np.array_equal(stored == 255, sample.masks[name]), name


def test_label_maps_agree_with_the_hip_masks(dataset):
    for path in (dataset / "labels").glob("*.png"):
        labels = read_png(path)
        assert set(np.unique(labels)) <= {0, *LABEL_VALUES.values()}
        for name, value in LABEL_VALUES.items():
            assert np.array_equal(labels == value, read_png(dataset / "masks" / name / path.name) == 255), name


def test_refuses_to_overwrite_a_non_empty_directory(tmp_path):
    target = tmp_path / "existing"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="existing"):
        write_phantom_dataset(target, n=1, size=32)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_a_failure_leaves_no_partial_dataset(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("renderer failed")

    monkeypatch.setattr("seglib.phantom.dataset.make_pelvis", broken)
    with pytest.raises(RuntimeError, match="renderer failed"):
        write_phantom_dataset(tmp_path / "out", n=2, size=32)
    assert list(tmp_path.iterdir()) == []


def test_parallel_rendering_gives_the_same_files_as_one_process(tmp_path):
    one = write_phantom_dataset(tmp_path / "one", n=8, size=32, seed=1, workers=1)
    two = write_phantom_dataset(tmp_path / "two", n=8, size=32, seed=1, workers=2)
    for folder in ("images", "masks/left_hip", "labels"):
        for path in (one / folder).glob("*.png"):
            assert path.read_bytes() == (two / folder / path.name).read_bytes(), path
    assert (one / "manifest.csv").read_text() == (two / "manifest.csv").read_text()


def test_real_atlas_pelves_are_rendered_in_the_same_layout(atlas, tmp_path):
    out = write_atlas_renderings(tmp_path / "real", ATLAS, ids=["65"], poses=2, size=48, seed=0)
    with open(out / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["id"], r["patient_id"]) for r in rows] == [("atlas65_0", "atlas65"), ("atlas65_1", "atlas65")]
    for name in STRUCTURES:
        assert all(read_png(out / "masks" / name / f"{r['id']}.png").any() for r in rows), name
