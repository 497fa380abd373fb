import math

import keras
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.spatial.distance import cdist

from seglib.evaluation.metrics import segmentation_metrics, uwmgi_score
from seglib.training.metrics import DiceScore


def square(top, left, size=4, shape=(12, 12)):
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def single_pixel(row, col, shape=(12, 12)):
    mask = np.zeros(shape, dtype=bool)
    mask[row, col] = True
    return mask


# --- hand-computed values -------------------------------------------------------------------


def test_overlap_of_squares_shifted_by_one_column():
    # 4x4 squares, one column apart: 12 of 16 pixels shared, union 20.
    m = segmentation_metrics(square(2, 3), square(2, 2))
    assert m["dice"] == pytest.approx(24 / 32)
    assert m["iou"] == pytest.approx(12 / 20)
    assert m["precision"] == pytest.approx(12 / 16)
    assert m["recall"] == pytest.approx(12 / 16)


def test_precision_and_recall_are_not_symmetric():
    # Prediction is a 2x4 half of the 4x4 truth: everything predicted is right, half is found.
    truth = square(2, 2)
    pred = truth.copy()
    pred[4:, :] = False
    m = segmentation_metrics(pred, truth)
    assert m["precision"] == 1.0
    assert m["recall"] == 0.5


def test_distances_of_adjacent_squares():
    # Truth at columns 2-5, prediction at columns 6-9, same rows. Each surface has 12 pixels with
    # distances to the other surface 1,1,1,1, 2,2, 3,3, 4,4,4,4 (by symmetry both ways).
    m = segmentation_metrics(square(2, 6), square(2, 2))
    assert m["dice"] == 0.0
    assert m["hd"] == pytest.approx(4.0)
    assert m["hd95"] == pytest.approx(4.0)
    assert m["assd"] == pytest.approx(30 / 12)
    assert m["surface_dice"] == pytest.approx(8 / 24)  # tolerance 1: the four 1s each way
    assert segmentation_metrics(square(2, 6), square(2, 2), tolerance=2)["surface_dice"] == 0.5


def test_identical_masks_are_perfect():
    m = segmentation_metrics(square(3, 3), square(3, 3))
    assert m == {
        "dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0,
        "hd95": 0.0, "hd": 0.0, "assd": 0.0, "surface_dice": 1.0,
    }


def test_anisotropic_spacing_scales_rows_and_columns_separately():
    # Offset of 3 rows and 4 columns; rows are 2.0 mm apart, columns 0.5 mm.
    m = segmentation_metrics(single_pixel(1, 1), single_pixel(4, 5), spacing=(2.0, 0.5))
    expected = math.hypot(3 * 2.0, 4 * 0.5)
    assert m["hd"] == pytest.approx(expected)
    assert m["hd95"] == pytest.approx(expected)
    assert m["assd"] == pytest.approx(expected)


def test_anisotropic_spacing_on_horizontally_shifted_squares():
    # A pure column shift: every distance is in columns, so it scales by the column spacing.
    m = segmentation_metrics(square(2, 6), square(2, 2), spacing=(2.0, 0.5), tolerance=0.5)
    assert m["hd"] == pytest.approx(4 * 0.5)
    assert m["assd"] == pytest.approx(30 / 12 * 0.5)
    assert m["surface_dice"] == pytest.approx(8 / 24)


def test_mask_touching_the_image_edge_has_a_surface_there():
    truth = np.zeros((6, 6), dtype=bool)
    truth[:, :3] = True  # fills the left half, edge to edge
    pred = np.zeros((6, 6), dtype=bool)
    pred[:, :2] = True
    # pred's boundary at column 0 lies on truth's boundary at column 0 (image edge).
    assert segmentation_metrics(pred, truth)["hd"] == pytest.approx(1.0)


def test_values_are_plain_floats_for_tables():
    m = segmentation_metrics(square(2, 3), square(2, 2))
    assert all(type(value) is float for value in m.values())


# --- agreement with a brute-force computation -----------------------------------------------


def random_blobs(rng, shape=(40, 40)):
    return gaussian_filter(rng.standard_normal(shape), sigma=3) > 0.05


def boundary_coordinates(mask, spacing):
    """Foreground pixels with a 4-neighbour in the background or outside the image."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = (
        padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    )
    return np.argwhere(mask & ~interior) * np.asarray(spacing)


def brute_force_distances(pred, truth, spacing):
    pred_points = boundary_coordinates(pred, spacing)
    truth_points = boundary_coordinates(truth, spacing)
    pairwise = cdist(pred_points, truth_points)
    return pairwise.min(axis=1), pairwise.min(axis=0)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.7, 1.3)])
@pytest.mark.parametrize("seed", range(4))
def test_distances_match_brute_force_on_random_masks(seed, spacing):
    rng = np.random.default_rng(seed)
    pred, truth = random_blobs(rng), random_blobs(rng)
    pred_to_truth, truth_to_pred = brute_force_distances(pred, truth, spacing)
    pooled = np.concatenate([pred_to_truth, truth_to_pred])

    m = segmentation_metrics(pred, truth, spacing=spacing, tolerance=2.0)

    assert m["hd"] == pytest.approx(pooled.max())
    assert m["hd95"] == pytest.approx(np.percentile(pooled, 95))  # medpy: pooled percentile
    assert m["assd"] == pytest.approx((pred_to_truth.mean() + truth_to_pred.mean()) / 2)
    assert m["surface_dice"] == pytest.approx(np.mean(pooled <= 2.0))


def test_dice_matches_its_definition_on_random_masks():
    rng = np.random.default_rng(7)
    pred, truth = random_blobs(rng), random_blobs(rng)
    m = segmentation_metrics(pred, truth)
    assert m["dice"] == pytest.approx(2 * (pred & truth).sum() / (pred.sum() + truth.sum()))
    assert m["iou"] == pytest.approx((pred & truth).sum() / (pred | truth).sum())


# --- empty masks, validation --------------------------------------------------------------


def test_both_empty_is_perfect_agreement():
    empty = np.zeros((8, 8), dtype=bool)
    m = segmentation_metrics(empty, empty)
    assert m == {
        "dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0,
        "hd95": 0.0, "hd": 0.0, "assd": 0.0, "surface_dice": 1.0,
    }


def test_missed_structure_scores_zero_with_undefined_precision_and_distances():
    m = segmentation_metrics(np.zeros((12, 12)), square(2, 2))
    assert (m["dice"], m["iou"], m["recall"], m["surface_dice"]) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(m["precision"])
    assert all(math.isnan(m[key]) for key in ("hd95", "hd", "assd"))


def test_hallucinated_structure_scores_zero_with_undefined_recall_and_distances():
    m = segmentation_metrics(square(2, 2), np.zeros((12, 12)))
    assert (m["dice"], m["iou"], m["precision"], m["surface_dice"]) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(m["recall"])
    assert all(math.isnan(m[key]) for key in ("hd95", "hd", "assd"))


def test_non_boolean_masks_are_binarised():
    as_255 = square(2, 3).astype(np.uint8) * 255
    assert segmentation_metrics(as_255, square(2, 2))["dice"] == pytest.approx(0.75)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(12, 12\).*\(10, 12\)"):
        segmentation_metrics(np.zeros((12, 12)), np.zeros((10, 12)))


@pytest.mark.parametrize("spacing", [(1.0,), (1.0, 0.0), (1.0, -2.0), (1.0, float("nan"))])
def test_bad_spacing_is_rejected(spacing):
    with pytest.raises(ValueError, match="spacing"):
        segmentation_metrics(square(2, 2), square(2, 2), spacing=spacing)


def test_non_2d_masks_are_rejected():
    with pytest.raises(ValueError, match="2D"):
        segmentation_metrics(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)))


# --- UW-Madison score -----------------------------------------------------------------------


def test_uwmgi_score_weights_dice_and_normalised_hausdorff():
    assert uwmgi_score(dice=1.0, hd=0.0, diagonal=100.0) == pytest.approx(1.0)
    assert uwmgi_score(dice=0.5, hd=25.0, diagonal=100.0) == pytest.approx(0.4 * 0.5 + 0.6 * 0.75)


def test_uwmgi_score_counts_a_missing_distance_as_the_worst():
    assert uwmgi_score(dice=0.0, hd=float("nan"), diagonal=100.0) == 0.0
    assert uwmgi_score(dice=0.0, hd=500.0, diagonal=100.0) == 0.0


# --- Keras DiceScore ------------------------------------------------------------------------


def numpy_global_dice(y_true, y_pred, threshold=0.5):
    pred, true = y_pred >= threshold, y_true >= 0.5
    axes = tuple(range(y_true.ndim - 1))
    intersection = (pred & true).sum(axis=axes)
    return np.mean(2 * intersection / (pred.sum(axis=axes) + true.sum(axis=axes)))


def random_batch(rng, channels=2):
    y_true = (rng.random((3, 8, 8, channels)) > 0.5).astype("float32")
    y_pred = rng.random((3, 8, 8, channels)).astype("float32")
    return y_true, y_pred


def test_dice_score_equals_numpy_dice_per_channel_mean():
    y_true, y_pred = random_batch(np.random.default_rng(0))
    metric = DiceScore()
    metric.update_state(y_true, y_pred)
    assert float(metric.result()) == pytest.approx(numpy_global_dice(y_true, y_pred), rel=1e-5)


def test_dice_score_accumulates_over_batches_and_resets():
    rng = np.random.default_rng(1)
    (true_a, pred_a), (true_b, pred_b) = random_batch(rng), random_batch(rng)
    metric = DiceScore()
    metric.update_state(true_a, pred_a)
    metric.update_state(true_b, pred_b)
    epoch_dice = numpy_global_dice(np.concatenate([true_a, true_b]), np.concatenate([pred_a, pred_b]))
    assert float(metric.result()) == pytest.approx(epoch_dice, rel=1e-5)

    metric.reset_state()
    metric.update_state(true_b, pred_b)
    assert float(metric.result()) == pytest.approx(numpy_global_dice(true_b, pred_b), rel=1e-5)


def test_dice_score_treats_rank_3_input_as_one_channel():
    y_true, y_pred = random_batch(np.random.default_rng(2), channels=1)
    metric = DiceScore()
    metric.update_state(y_true[..., 0], y_pred[..., 0])
    assert float(metric.result()) == pytest.approx(numpy_global_dice(y_true, y_pred), rel=1e-5)


def test_dice_score_config_round_trips():
    metric = DiceScore(name="hip_dice", threshold=0.3)
    clone = DiceScore.from_config(metric.get_config())
    assert clone.get_config() == metric.get_config()
    assert (clone.name, clone.threshold) == ("hip_dice", 0.3)


def test_model_with_dice_score_saves_and_loads_without_custom_objects(tmp_path):
    x = np.random.default_rng(3).random((4, 8, 8, 1)).astype("float32")
    y = (x > 0.5).astype("float32")
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(1, 1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=[DiceScore()])
    history = model.fit(x, y, epochs=1, verbose=0)
    assert "dice" in history.history

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode on, no custom_objects

    assert "dice" in loaded.evaluate(x, y, verbose=0, return_dict=True)
