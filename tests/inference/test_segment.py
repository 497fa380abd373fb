"""Folder segmentation: mixed sizes and bit depths in, label maps at original size, overlays, areas."""

import json

import numpy as np
import pandas as pd
import pytest
import skimage.io

from seglib.data.io import read_image, write_png
from seglib.inference.segment import overlay_rgb, segment_folder

SHAPES = {"small8": ((40, 50), np.uint8), "square16": ((64, 64), np.uint16), "wide8": ((33, 70), np.uint8)}


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for image_id, (shape, dtype) in SHAPES.items():
        write_png(folder / f"{image_id}.png", rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True))
    return folder


@pytest.fixture(scope="module")
def segmented(hip_runs, images_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("segmented") / "out"
    # A low threshold, so the untrained models claim pixels and the areas are not all zero.
    return segment_folder(hip_runs, images_dir, out, threshold=0.3, spacing_mm={"small8": 0.5})


def test_label_maps_have_the_original_sizes(segmented):
    labels = json.loads((segmented / "labels.json").read_text())
    assert labels == {"left_hip": 1, "right_hip": 2}
    for image_id, (shape, _) in SHAPES.items():
        label_map = read_image(segmented / "labels" / f"{image_id}.png")
        assert label_map.shape == shape and label_map.dtype == np.uint8
        assert set(np.unique(label_map)) <= {0, 1, 2}


def test_areas_equal_label_map_pixel_counts(segmented):
    areas = pd.read_csv(segmented / "areas.csv", dtype={"id": str})
    assert list(areas.columns) == ["id", "structure", "area_px", "area_mm2", "left_right_area_ratio", "contested_px"]
    assert len(areas) == len(SHAPES) * 2
    assert areas["area_px"].sum() > 0
    labels = json.loads((segmented / "labels.json").read_text())
    for row in areas.itertuples():
        label_map = read_image(segmented / "labels" / f"{row.id}.png")
        assert row.area_px == int((label_map == labels[row.structure]).sum())
    small = areas[areas["id"] == "small8"]
    np.testing.assert_allclose(small["area_mm2"], small["area_px"] * 0.25)
    assert areas.loc[areas["id"] != "small8", "area_mm2"].isna().all()  # no spacing known: left empty


def test_overlays_are_written_in_colour_at_original_size(segmented):
    for image_id, (shape, _) in SHAPES.items():
        overlay = skimage.io.imread(segmented / "overlays" / f"{image_id}.png")
        assert overlay.shape == shape + (3,) and overlay.dtype == np.uint8
    coloured = overlay_rgb(np.zeros((4, 4), np.uint16), {"left_hip": np.eye(4, dtype=bool)})
    assert coloured.shape == (4, 4, 3) and coloured[0, 0, 2] > coloured[0, 0, 0]


def test_existing_output_is_refused(hip_runs, images_dir, segmented):
    with pytest.raises(FileExistsError, match="not empty"):
        segment_folder(hip_runs, images_dir, segmented)


def test_bad_options_fail_before_any_output(hip_runs, images_dir, tmp_path):
    with pytest.raises(ValueError, match="threshold"):
        segment_folder(hip_runs, images_dir, tmp_path / "a", fuse_options={"threshold": 0.2})
    with pytest.raises(ValueError, match="strategy"):
        segment_folder(hip_runs, images_dir, tmp_path / "b", fuse_options={"strategy": "vote"})
    with pytest.raises(ValueError, match="spacing"):
        segment_folder(hip_runs, images_dir, tmp_path / "c", spacing_mm={"small8": -1.0})
    with pytest.raises(ValueError, match="format"):
        segment_folder(hip_runs, images_dir, tmp_path / "d", formats=("png", "jpeg"))
    assert not any(tmp_path.iterdir())
