"""Folder segmentation (seglib.segment): mixed sizes and bit depths in, label maps at original size, overlays,
areas; a shipped model by name or trained runs; what the command line writes."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage.io

from seglib.data.io import read_image, write_png
from seglib.inference.segment import segment, segment_folder
from seglib.reporting.plots import overlay_rgb

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
    return segment(images_dir, out, runs=hip_runs, threshold=0.3, spacing_mm={"small8": 0.5})


def test_label_maps_have_the_original_sizes(segmented):
    labels = json.loads((segmented / "labels.json").read_text())
    assert labels == {"left_hip": 1, "right_hip": 2}
    for image_id, (shape, _) in SHAPES.items():
        label_map = read_image(segmented / "labels" / f"{image_id}.png")
        assert label_map.shape == shape and label_map.dtype == np.uint8
        assert set(np.unique(label_map)) <= {0, 1, 2}


def test_areas_equal_label_map_pixel_counts(segmented):
    areas = pd.read_csv(segmented / "areas.csv", dtype={"id": str})
    assert list(areas.columns) == ["id", "structure", "area_px", "area_mm2", "left_right_area_ratio", "contested_px",
                             "warning"]
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


def test_overlay_files_tint_only_the_labelled_pixels(segmented, images_dir):
    for image_id in SHAPES:
        overlay = skimage.io.imread(segmented / "overlays" / f"{image_id}.png").astype(int)
        labels = read_image(segmented / "labels" / f"{image_id}.png")
        image = read_image(images_dir / f"{image_id}.png").astype(float)
        grey = np.round((image - image.min()) / (image.max() - image.min()) * 255)  # contrast-stretched
        background = labels == 0
        assert background.any() and (~background).any()
        np.testing.assert_array_equal(overlay[background], np.repeat(grey[background][:, None], 3, axis=1))
        tinted = overlay[~background]
        assert (tinted.max(axis=1) > tinted.min(axis=1)).all()  # every labelled pixel has a colour


def test_an_overlay_blends_the_grey_image_with_the_structure_colour_inside_and_outlines_it():
    from matplotlib.colors import to_rgb

    from seglib.reporting.plots import structure_color

    image = np.tile(np.linspace(0, 1000, 9), (9, 1)).astype(np.uint16)  # a grey ramp
    mask = np.zeros((9, 9), bool)
    mask[2:7, 2:7] = True
    rgb = overlay_rgb(image, {"right_hip": mask}).astype(float) / 255
    colour, grey = np.array(to_rgb(structure_color("right_hip"))), (image / 1000.0)[..., None]
    np.testing.assert_allclose(rgb[~mask], np.repeat(grey, 3, axis=-1)[~mask], atol=1 / 255)
    outline = mask.copy()
    outline[3:6, 3:6] = False
    np.testing.assert_allclose(rgb[outline], np.broadcast_to(colour, (outline.sum(), 3)), atol=1 / 255)
    # Inside: the same blend weight w of colour over grey in every channel, neither grey nor the pure colour.
    inside = np.zeros_like(mask)
    inside[3:6, 3:6] = True
    distinct = np.abs(colour - grey[inside]) > 0.2  # channels where grey and colour differ enough to tell
    weight = ((rgb[inside] - grey[inside]) / (colour - grey[inside]))[distinct]
    assert len(weight) > 0
    assert np.allclose(weight, weight[0], atol=0.03) and 0.2 < weight[0] < 0.8


def test_existing_output_is_refused(hip_runs, images_dir, segmented):
    with pytest.raises(FileExistsError, match="not empty"):
        segment(images_dir, segmented, runs=hip_runs)


def test_bad_options_fail_before_any_output(hip_runs, images_dir, tmp_path):
    with pytest.raises(ValueError, match="threshold"):
        segment(images_dir, tmp_path / "a", runs=hip_runs, fuse_options={"threshold": 0.2})
    with pytest.raises(ValueError, match="strategy"):
        segment(images_dir, tmp_path / "b", runs=hip_runs, fuse_options={"strategy": "vote"})
    with pytest.raises(ValueError, match="spacing"):
        segment(images_dir, tmp_path / "c", runs=hip_runs, spacing_mm={"small8": -1.0})
    with pytest.raises(ValueError, match="format"):
        segment(images_dir, tmp_path / "d", runs=hip_runs, formats=("png", "jpeg"))
    with pytest.raises(ValueError, match="^segment: give a shipped model or runs, not both$"):
        segment(images_dir, tmp_path / "e", model="pelvis", runs=hip_runs)
    with pytest.raises(ValueError, match="^unknown pretrained model 'knee'; seglib ships pelvis$"):
        segment(images_dir, tmp_path / "f", model="knee")
    assert not any(tmp_path.iterdir())


def test_the_result_is_the_folder_with_its_tables(segmented):
    assert Path(segmented) == segmented.path and str(segmented) == str(segmented.path)  # prints as the CLI does
    assert segmented.labels() == {"left_hip": 1, "right_hip": 2}
    assert segmented.areas()["id"].tolist() == pd.read_csv(segmented / "areas.csv", dtype=str)["id"].tolist()
    quality = segmented.quality()
    assert len(quality) == len(SHAPES) * 2
    flags = quality["flag"].tolist()
    assert flags == sorted(flags, reverse=True)  # the films to look at come first
    for _, same_flag in quality.groupby("flag", sort=False):
        assert same_flag["predicted_dice"].is_monotonic_increasing  # then the least trusted


def test_segment_folder_still_works_and_names_what_replaces_it(hip_runs, images_dir, segmented, tmp_path):
    with pytest.deprecated_call(match=r"segment\(images, out, runs=runs\)"):
        out = segment_folder(hip_runs, images_dir, tmp_path / "out", threshold=0.3, spacing_mm={"small8": 0.5})
    assert out == tmp_path / "out"
    for name in ("areas.csv", "quality.csv", "labels.json"):
        assert (out / name).read_bytes() == (segmented / name).read_bytes()


def test_the_python_api_writes_what_the_command_line_writes_with_the_shipped_model(degenerate_films, tmp_path):
    """seglib.segment(films, out): the pelvis model with its fusion (the hips drawn over the bones they overlap),
    as `segment --model pelvis` does."""
    import seglib
    from seglib.cli.commands import main

    ours = seglib.segment(degenerate_films, tmp_path / "python").path
    assert main(["segment", "--model", "pelvis", "--images", str(degenerate_films), "--out", str(tmp_path / "cli"),
                 "--quiet"]) == 0
    theirs = tmp_path / "cli"
    assert (ours / "labels.json").read_bytes() == (theirs / "labels.json").read_bytes()
    for image in sorted(degenerate_films.iterdir()):
        assert read_image(ours / "labels" / image.name).tobytes() == read_image(theirs / "labels" / image.name).tobytes()
    for name in ("areas.csv", "quality.csv"):
        assert (ours / name).read_bytes() == (theirs / name).read_bytes()


DEGENERATE = {"blank": (np.full((300, 240), 1200, np.uint16), "blank"),
              "dot": (np.full((1, 1), 200, np.uint8), "too small"),
              "strip": (np.random.default_rng(1).integers(0, 255, (3, 5000), dtype=np.uint8), "too small"),
              "ribbon": (np.random.default_rng(2).integers(0, 255, (40, 400), dtype=np.uint8), "a strip")}


@pytest.fixture(scope="module")
def degenerate_films(tmp_path_factory):
    """Films no model can segment, beside a real phantom film."""
    from seglib.phantom.dataset import write_phantom_dataset

    folder = tmp_path_factory.mktemp("degenerate")
    films = write_phantom_dataset(folder / "phantom", n=1, size=256, seed=993)
    for image_id, (pixels, _) in DEGENERATE.items():
        write_png(folder / "images" / f"{image_id}.png", pixels)
    (folder / "images" / "pelvis.png").write_bytes((films / "images" / "pelvis_0000.png").read_bytes())
    return folder / "images"


def _warnings(stderr: str) -> dict[str, str]:
    lines = [line for line in stderr.splitlines() if line.startswith("warning:")]
    return {Path(line.split(": ")[1]).stem: line for line in lines}


def test_segment_warns_of_films_it_cannot_segment_and_gives_them_no_label_map(degenerate_films, tmp_path, capsys):
    from seglib.cli.commands import main

    out = tmp_path / "out"
    assert main(["segment", "--model", "pelvis", "--images", str(degenerate_films), "--out", str(out), "--quiet"]) == 0
    warnings = _warnings(capsys.readouterr().err)
    assert sorted(warnings) == sorted(DEGENERATE)  # one line each, none for the real film
    areas = pd.read_csv(out / "areas.csv", dtype={"id": str}, keep_default_na=False)
    for image_id, (pixels, reason) in DEGENERATE.items():
        assert str(degenerate_films / f"{image_id}.png") in warnings[image_id] and reason in warnings[image_id]
        label_map = read_image(out / "labels" / f"{image_id}.png")
        assert label_map.shape == pixels.shape and not label_map.any()
        rows = areas[areas["id"] == image_id]
        assert len(rows) == 5 and (rows["area_px"] == 0).all()
        assert rows["warning"].str.contains(reason).all()
    real = areas[areas["id"] == "pelvis"]
    assert (real["area_px"] > 0).all() and (real["warning"] == "").all()
    assert read_image(out / "labels" / "pelvis.png").any()


def test_predict_warns_of_films_it_cannot_segment_and_writes_empty_masks(degenerate_films, tmp_path, capsys):
    from seglib.cli.commands import main
    from seglib.models.shipped import pretrained_run

    out = tmp_path / "out"
    assert main(["predict", "--runs", str(pretrained_run("pelvis").path), "--images", str(degenerate_films),
                 "--out", str(out), "--quiet"]) == 0
    warnings = _warnings(capsys.readouterr().err)
    assert sorted(warnings) == sorted(DEGENERATE)
    for image_id, (pixels, reason) in DEGENERATE.items():
        assert reason in warnings[image_id]
        for structure in ("left_hip", "sacrum", "right_femur"):
            mask = read_image(out / "masks" / structure / f"{image_id}.png")
            assert mask.shape == pixels.shape and not mask.any()
    assert read_image(out / "masks" / "left_hip" / "pelvis.png").any()
