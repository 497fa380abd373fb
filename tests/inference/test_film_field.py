"""A film's unexposed edges (behind the collimator blades, a shutter or padding) show no anatomy, so no
structure is drawn there, whatever the network makes of a bone that runs on beyond the field."""

from dataclasses import replace

import numpy as np
import pytest

from seglib.data.io import read_image, read_mask
from seglib.inference.film_checks import unexposed
from seglib.phantom.dataset import write_phantom_dataset
from seglib.phantom.exposure import Appearance

HIPS = ("left_hip", "right_hip")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _textured(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(20_000, 40_000, shape).astype(np.uint16)


def test_the_flat_bands_at_a_films_edges_are_unexposed_with_their_burnt_in_text():
    film = _textured((200, 160))
    film[:30] = 65535                      # top blade, shown white
    film[:, 140:] = 65535                  # right blade
    film[10:16, 20:74] = 0                 # a line of burnt-in text on the band
    outside = unexposed(film)
    assert outside[:30].all() and outside[:, 140:].all()
    assert not outside[30:, :140].any()


def test_metal_or_a_shield_on_the_films_edge_is_not_taken_for_the_field_edge():
    film = _textured((200, 160))
    film[120:, 60:90] = 65535              # a saturated femoral stem running off the bottom edge
    film[:, :5] = 30_000                   # padding: whole flat columns are outside
    outside = unexposed(film)
    assert not outside[120:, 60:90].any()
    assert outside[:, :5].all() and not outside[:, 5:].any()


def test_a_film_exposed_to_its_edges_has_no_unexposed_part():
    assert unexposed(_textured((128, 128))) is None


@pytest.fixture(scope="module")
def tight_fields(tmp_path_factory):
    """Films whose every field is cut by two to four blades, nothing else clinical about them."""
    look = replace(Appearance(), tight_field=1.0)
    return write_phantom_dataset(tmp_path_factory.mktemp("tight") / "films", n=3, size=256, seed=404, appearance=look)


def test_the_shipped_model_draws_no_bone_beyond_a_tight_field(tight_fields):
    import seglib

    predictor = seglib.pretrained("pelvis")
    for path in sorted((tight_fields / "images").glob("*.png")):
        film = read_image(path)
        outside = unexposed(film)
        assert outside is not None, f"{path.name}: the blades were not found"
        maps = predictor.probabilities(film, tta=True)
        for hip in HIPS:
            mask = maps[hip] >= 0.5
            assert not mask[outside].any(), f"{hip} of {path.name} drawn beyond the field"
            assert _dice(mask, read_mask(tight_fields / "masks" / hip / path.name)) >= 0.9, f"{hip} of {path.name}"
