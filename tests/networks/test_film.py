"""A network's passes become a film's maps one way, for prediction and for the threshold calibration alike."""

import numpy as np

from seglib.networks.film import calibrated, film_maps, flipped_back


def passes(seed: int = 0, size: int = 16):
    """Raw maps of two structures, the plain pass and the mirrored one, at the working resolution."""
    rng = np.random.default_rng(seed)
    return ({s: rng.random((size, size), np.float32) for s in ("left_hip", "right_hip")},
            {s: rng.random((size, size), np.float32) for s in ("left_hip", "right_hip")})


def test_the_mirrored_pass_gives_each_structure_its_partners_map_flipped_back():
    plain, mirrored = passes()
    flipped = flipped_back(mirrored, {"left_hip": "right_hip", "right_hip": "left_hip"}, plain)
    np.testing.assert_array_equal(flipped["left_hip"], mirrored["right_hip"][:, ::-1])
    np.testing.assert_array_equal(flipped["right_hip"], mirrored["left_hip"][:, ::-1])


def test_a_second_opinion_of_another_working_size_is_resampled_to_the_structures_own():
    plain, mirrored = passes()
    mirrored["right_hip"] = np.ones((32, 32), np.float32)  # its run works at twice the size
    flipped = flipped_back(mirrored, {"left_hip": "right_hip"}, plain)
    assert flipped["left_hip"].shape == plain["left_hip"].shape


def test_with_flip_tta_the_mask_is_where_the_passes_mean_reaches_the_tta_threshold():
    plain, mirrored = passes()
    flipped = flipped_back(mirrored, {"left_hip": "right_hip", "right_hip": "left_hip"}, plain)
    thresholds = {"left_hip": 0.4, "right_hip": 0.65}
    maps = film_maps(plain, flipped, (16, 16), thresholds)
    for structure, threshold in thresholds.items():
        mean = (plain[structure] + flipped[structure]) / 2
        np.testing.assert_array_equal(maps[structure] >= 0.5, mean >= threshold)
        # not the mean of the passes each mapped on its own: the TTA threshold was chosen on the raw mean
        own = (calibrated(plain[structure], threshold) + calibrated(flipped[structure], threshold)) / 2
        assert not np.array_equal(own >= 0.5, maps[structure] >= 0.5)


def test_without_tta_the_plain_pass_alone_is_thresholded_and_an_absent_threshold_is_one_half():
    plain, _ = passes()
    maps = film_maps(plain, None, (16, 16), {"left_hip": 0.6})
    np.testing.assert_array_equal(maps["left_hip"] >= 0.5, plain["left_hip"] >= 0.6)
    np.testing.assert_array_equal(maps["right_hip"], plain["right_hip"])


def test_maps_come_out_at_the_films_size_with_probabilities_kept_in_range():
    plain, _ = passes()
    maps = film_maps(plain, None, (40, 24), {"left_hip": 0.3})
    assert {m.shape for m in maps.values()} == {(40, 24)}
    assert all(m.dtype == np.float32 and m.min() >= 0 and m.max() <= 1 for m in maps.values())


def test_calibrated_probabilities_put_the_chosen_threshold_at_one_half():
    p = np.array([0.0, 0.3, 0.65, 0.8, 1.0], np.float32)
    np.testing.assert_allclose(calibrated(p, 0.65), [0.0, 0.3 * 0.5 / 0.65, 0.5, 0.5 + 0.15 * 0.5 / 0.35, 1.0],
                               rtol=1e-6)
    assert calibrated(p, 0.5) is p  # an uncalibrated run's maps pass unchanged
