"""Distances in mm from the manifest's row/column pixel spacing, end to end through evaluate_folder."""

import numpy as np
import pytest

from seglib.data.io import write_png
from seglib.evaluation.folder import evaluate_folder

SIZE = 16


def rectangle(rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    mask[rows, cols] = True
    return mask


# Rectangles two pixels thin, so every pixel is on the surface and only the shifted-out edge moves:
# "tall" (8x2) is shifted down by one row, "wide" (2x8) right by one column. Of 16 + 16 surface
# pixels, 2 + 2 lie one step from the other surface and the rest on it: ASSD = 4 steps / 32.
TRUTH = {"tall": rectangle(slice(4, 12), slice(4, 6)), "wide": rectangle(slice(4, 6), slice(4, 12))}
PREDICTION = {"tall": rectangle(slice(5, 13), slice(4, 6)), "wide": rectangle(slice(4, 6), slice(5, 13))}


def write_pair(tmp_path, manifest: str):
    data, pred = tmp_path / "data", tmp_path / "pred"
    for image_id, truth in TRUTH.items():
        write_png(data / "images" / f"{image_id}.png", np.full((SIZE, SIZE), 90, np.uint8))
        write_png(data / "masks" / "organ" / f"{image_id}.png", truth.astype(np.uint8) * 255)
        write_png(pred / "masks" / "organ" / f"{image_id}.png", PREDICTION[image_id].astype(np.uint8) * 255)
    (data / "manifest.csv").write_text(manifest)
    return pred, data


def test_mm_distances_use_the_row_and_column_spacing(tmp_path):
    pred, data = write_pair(tmp_path, "id,pixel_spacing_mm,pixel_spacing_row_mm,pixel_spacing_col_mm\n"
                                      "tall,1.25,2.0,0.5\nwide,1.25,2.0,0.5\n")
    table = evaluate_folder(pred, data).set_index("id")
    # A row step is 2.0 mm, a column step 0.5 mm; the mean (1.25) must not be used.
    assert table.loc["tall", "hd_mm"] == pytest.approx(2.0)
    assert table.loc["tall", "assd_mm"] == pytest.approx(4 * 2.0 / 32)
    assert table.loc["wide", "hd_mm"] == pytest.approx(0.5)
    assert table.loc["wide", "assd_mm"] == pytest.approx(4 * 0.5 / 32)
    for image_id in TRUTH:  # the pixel columns do not depend on the spacing
        assert table.loc[image_id, "hd"] == pytest.approx(1.0)
        assert table.loc[image_id, "assd"] == pytest.approx(4 / 32)


def test_a_single_spacing_column_serves_both_directions(tmp_path):
    pred, data = write_pair(tmp_path, "id,pixel_spacing_mm\ntall,0.7\nwide,0.7\n")
    table = evaluate_folder(pred, data).set_index("id")
    assert list(table["hd_mm"]) == pytest.approx([0.7, 0.7])
    assert list(table["assd_mm"]) == pytest.approx([4 * 0.7 / 32] * 2)


def test_without_spacing_there_are_no_mm_columns(tmp_path):
    pred, data = write_pair(tmp_path, "id,patient_id\ntall,A\nwide,B\n")
    assert not any(column.endswith("_mm") for column in evaluate_folder(pred, data).columns)


def test_uwmgi_score_is_an_option_normalised_by_the_image_diagonal(tmp_path):
    pred, data = write_pair(tmp_path, "id\ntall\nwide\n")
    assert "uwmgi_score" not in evaluate_folder(pred, data).columns
    row = evaluate_folder(pred, data, uwmgi=True).set_index("id").loc["tall"]
    # Dice of two 16-pixel rectangles overlapping in 14 pixels; Hausdorff 1 px in a 16x16 image
    assert row["uwmgi_score"] == pytest.approx(0.4 * (2 * 14 / 32) + 0.6 * (1 - 1 / np.hypot(SIZE, SIZE)))
