"""Plotting helpers: fixed colours per structure, overlays that colour exactly the mask."""

import json

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from seglib.data.io import write_png
from seglib.reporting.plots import OVERLAY_ALPHA, overlay, overlay_rgb, structure_color


def test_partners_have_distinct_colours_and_a_side_keeps_its_colour():
    assert structure_color("left_hip") != structure_color("right_hip")
    assert structure_color("left_lung") == structure_color("left_hip")
    assert structure_color("left_kidney") == structure_color("left_hip")  # unknown, but a side
    assert structure_color("right_kidney") == structure_color("right_hip")


def test_unknown_structures_get_a_stable_colour_across_sessions():
    import subprocess
    import sys

    code = "from seglib.reporting.plots import structure_color; print(structure_color('bladder'))"
    other_session = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other_session.stdout.strip() == structure_color("bladder")
    assert structure_color("bladder").startswith("#") and len(structure_color("bladder")) == 7


def rendered(masks, **options) -> np.ndarray:
    figure = Figure(figsize=(2, 2), dpi=50)
    ax = figure.add_axes((0, 0, 1, 1))
    overlay(ax, np.zeros((20, 20)), masks, **options)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].astype(float) / 255


def test_overlay_tints_the_mask_in_its_colour_and_leaves_the_rest_grey():
    mask = np.zeros((20, 20), bool)
    mask[:, 10:] = True  # the right half of the image
    pixels = rendered({"left_hip": mask}, contour=False)
    left, right = pixels[:, :40].reshape(-1, 3), pixels[:, 60:].reshape(-1, 3)
    assert np.allclose(left, 0, atol=0.02)  # black image, no tint
    assert np.allclose(right, OVERLAY_ALPHA * np.array(to_rgb(structure_color("left_hip"))), atol=0.03)


def test_overlay_skips_empty_masks_and_turns_the_axis_off():
    figure = Figure()
    ax = figure.add_subplot()
    overlay(ax, np.zeros((8, 8)), {"left_hip": np.zeros((8, 8)), "right_hip": np.eye(8)}, title="case 1")
    assert len(ax.collections) == 1  # one outline, the right hip's; the empty mask draws nothing
    assert not ax.axison and ax.get_title() == "case 1"


def test_a_figure_shows_the_same_tint_as_the_overlay_files():
    """One overlay: a report's figure and segment's OUT/overlays/<id>.png colour a film alike."""
    image = np.tile(np.linspace(0, 1000, 20), (20, 1)).astype(np.uint16)
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    figure = Figure(figsize=(2, 2), dpi=10)  # one figure pixel per film pixel
    ax = figure.add_axes((0, 0, 1, 1))
    overlay(ax, image, {"sacrum": mask}, contour=False)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    drawn = np.asarray(canvas.buffer_rgba())[..., :3]
    written = overlay_rgb(image, {"sacrum": mask}, outline=False)
    assert np.abs(drawn.astype(int) - written).max() <= 1


def test_show_overlays_shows_segment_overlays_in_their_colours(tmp_path):
    from seglib.reporting.figures import show_overlays

    overlay = np.zeros((16, 16, 3), np.uint8)
    overlay[4:12, 4:12] = (213, 94, 0)  # a right_hip pixel block, vermillion
    write_png(tmp_path / "overlays" / "film.png", overlay)
    (tmp_path / "labels.json").write_text(json.dumps({"left_hip": 1, "right_hip": 2}))
    shown = show_overlays(tmp_path).axes[0].images[0].get_array()
    assert shown.shape == (16, 16, 3) and tuple(shown[8, 8]) == (213, 94, 0)


def test_show_overlays_shows_the_flagged_films_first(tmp_path):
    """Notebook 00 shows the films a person should check before the others (issue #31)."""
    from seglib.reporting.figures import show_overlays

    for image_id in ("a", "b", "c", "=d"):
        write_png(tmp_path / "overlays" / f"{image_id}.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "labels.json").write_text(json.dumps({"left_hip": 1}))
    (tmp_path / "quality.csv").write_text("id,structure,predicted_dice,flag\na,left_hip,0.98,0\n"
                                          "b,left_hip,0.97,0\nc,left_hip,0.62,1\n'=d,left_hip,0.91,1\n")
    titles = [ax.get_title() for ax in show_overlays(tmp_path).axes if ax.get_title()]
    assert titles == ["c  FLAGGED (predicted Dice 0.62)", "=d  FLAGGED (predicted Dice 0.91)", "b", "a"]
