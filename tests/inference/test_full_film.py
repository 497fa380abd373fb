"""Full-film inference: the working-resolution image through the fully convolutional network (or sliding
windows), flip TTA at the working resolution, probabilities resampled to the film's own size, and memory
that does not grow with copies of the film."""

import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from seglib.config import profile_config
from seglib.inference.predictor import Predictor
from seglib.networks import tiling
from seglib.networks.tiling import sliding_window, whole_image
from seglib.training.fit import write_untrained_run


def film(shape=(90, 70), seed=0):
    return np.random.default_rng(seed).integers(0, 65535, shape).astype(np.uint16)


def pointwise_model(channels=2):
    """A per-pixel model (1x1 convolution): its output at a pixel cannot depend on the tile around it."""
    inputs = keras.Input((None, None, channels))
    return keras.Model(inputs, keras.layers.Conv2D(3, 1, activation="sigmoid")(inputs))


def test_sliding_windows_equal_the_whole_image_for_a_model_without_context():
    keras.utils.set_random_seed(0)
    model, inputs = pointwise_model(), np.random.default_rng(1).normal(size=(48, 40, 2)).astype(np.float32)
    np.testing.assert_allclose(sliding_window(model, inputs, window=16), whole_image(model, inputs), atol=1e-5)


def test_one_window_as_large_as_the_image_is_the_whole_image_pass():
    keras.utils.set_random_seed(0)
    model, inputs = pointwise_model(), np.random.default_rng(1).normal(size=(32, 32, 2)).astype(np.float32)
    np.testing.assert_allclose(sliding_window(model, inputs, window=32), whole_image(model, inputs), rtol=1e-6)


@pytest.fixture(scope="module")
def patch_runs(tmp_path_factory):
    """left_hip and right_hip runs configured for patch training (64 px working size, 32 px patches)."""
    root = tmp_path_factory.mktemp("patch_runs")
    return [write_untrained_run(profile_config("smoke", data="unused", structures=(structure,), image_size=64,
                                               patch_size=32, depth=2, base_filters=4, mirror_flip=False, seed=seed),
                                root / structure)
            for seed, structure in enumerate(("left_hip", "right_hip"))]


def test_a_patch_trained_model_segments_the_whole_film_at_its_own_size(patch_runs):
    maps = Predictor(patch_runs).probabilities(film((150, 120)))
    assert {s: m.shape for s, m in maps.items()} == {"left_hip": (150, 120), "right_hip": (150, 120)}


def test_beyond_the_whole_image_limit_sliding_windows_give_the_same_segmentation(patch_runs, monkeypatch):
    image = film((128, 128), seed=2)
    whole = Predictor(patch_runs).probabilities(image)
    monkeypatch.setattr(tiling, "WHOLE_IMAGE_LIMIT", 32)  # 64 px now counts as too large: 32 px windows
    windowed = Predictor(patch_runs).probabilities(image)
    for structure in whole:  # the tiles' borders see zero padding: close, not identical
        assert np.abs(windowed[structure] - whole[structure]).mean() < 0.05


def test_flip_tta_at_the_working_resolution_equals_tta_at_the_films_size(hip_runs):
    """Averaging before resampling to the film is the same as after (bilinear resampling is linear and
    commutes with the flip), so flip TTA did not change by moving to the working resolution."""
    predictor, image = Predictor(hip_runs), film((75, 61))
    direct, mirrored = predictor.probabilities(image), predictor.probabilities(np.ascontiguousarray(image[:, ::-1]))
    by_hand = {"left_hip": (direct["left_hip"] + mirrored["right_hip"][:, ::-1]) / 2,
               "right_hip": (direct["right_hip"] + mirrored["left_hip"][:, ::-1]) / 2}
    for structure, probability in predictor.probabilities(image, tta=True).items():
        np.testing.assert_allclose(probability, by_hand[structure], atol=1e-5)


MEMORY_PROBE = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    import numpy as np
    from skimage.transform import resize
    from seglib.data.io import write_png
    from seglib.inference.segment import segment
    from seglib.phantom.render import make_pelvis
    out = Path(sys.argv[1])
    def peak_kb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rendered = make_pelvis(np.random.default_rng(3), size=512).image  # a pelvis film, so the bones are found
    film = np.round(resize(rendered.astype(np.float32), (3000, 2500), order=1) * 65535).astype(np.uint16)
    write_png(out / "small" / "a.png", film[::10, ::10])
    segment(out / "small", out / "segmented_small", model="pelvis", tta=True)  # all loaded, traced
    write_png(out / "large" / "a.png", film)
    del film, rendered
    before = peak_kb()
    segment(out / "large", out / "segmented_large", model="pelvis", tta=True)
    print((peak_kb() - before) * 1024 / (3000 * 2500))
""")


@pytest.mark.slow
def test_a_3000_by_2500_film_segments_in_bounded_memory(tmp_path):
    """`segment --model pelvis --tta` of a 16-bit 3000 x 2500 film: the film is reduced to the working resolution
    before anything else; what remains at the film's size is the film, one float32 map per structure (five),
    the masks, label map and overlay, and fusion works one structure at a time. Measured 34 bytes per film
    pixel on the former one-film-at-a-time path, 49 on the streaming path that replaced it (its reader and writer
    threads; README: under 60); a stack of all maps in fusion and the maps kept while the overlay was drawn took
    111, an earlier pipeline with TTA and every intermediate at the film's size 88 with two small runs."""
    probe = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tmp_path)],
                           capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert probe.returncode == 0, probe.stderr[-2000:]
    bytes_per_pixel = float(probe.stdout.split()[-1])
    assert bytes_per_pixel < 60, f"segment took {bytes_per_pixel:.0f} bytes per film pixel"
