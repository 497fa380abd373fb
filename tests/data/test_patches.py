"""Patch training (nnU-Net style): crops of the working-resolution image, a share of them forced onto the
structure, deterministic under a seed, mirror flip and side channel kept per crop."""

import numpy as np
import pytest

from seglib.config import profile_config
from seglib.data.layout import load_records
from seglib.data.pipeline import _area_weights, training_dataset, working_image


@pytest.fixture(scope="module")
def hips(phantom_dataset):
    return load_records(phantom_dataset, ["left_hip", "right_hip"])


def crops(records, seed=0, foreground=1 / 3, epochs=1, **options):
    dataset = training_dataset(records, ("left_hip",), 64, 8, seed=seed, patch_size=16,
                               foreground_crops=foreground, **options).repeat(epochs)
    pairs = [(x.numpy(), y.numpy()) for x, y in dataset]
    return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])


def test_crops_have_the_patch_size_and_are_deterministic_under_a_seed(hips):
    first, again, other = crops(hips, seed=3), crops(hips, seed=3), crops(hips, seed=4)
    assert first[0].shape == (16, 16, 16, 1) and first[1].shape == (16, 16, 16, 1)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_forced_crops_contain_the_structure_at_the_asked_rate(hips):
    def share_with_structure(foreground):
        _, targets = crops(hips, foreground=foreground, epochs=6, augment=False)
        return (targets.reshape(len(targets), -1).max(axis=1) > 0).mean()

    assert share_with_structure(1.0) == 1.0  # every phantom has a left hip: every forced crop holds some
    uniform = share_with_structure(0.0)  # a 16 px crop of 64 px phantoms misses the hip often
    assert uniform < 0.75
    # A third forced: at least the forced third plus the uniform share of the rest (96 crops: allow sampling noise).
    assert share_with_structure(1 / 3) > 1 / 3 + (2 / 3) * uniform - 0.12


def test_each_crop_keeps_its_side_channel_on_the_patients_side_also_mirrored(hips):
    images, targets = crops(hips, foreground=1.0, epochs=2, side_aware=True, augment=False)
    assert images.shape[-1] == 2
    for image, target in zip(images, targets):  # the left hip lies on the patient's left: positive side values
        assert image[..., 1][target[..., 0] > 0].mean() > 0.05


def test_patch_size_must_fit_the_image_and_the_network():
    with pytest.raises(ValueError, match="patch size 96 must be 0 .* at most the image size 64"):
        profile_config("smoke", image_size=64, patch_size=96).validate()
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 8"):
        profile_config("smoke", image_size=64, patch_size=20).validate()
    assert profile_config("smoke", image_size=64, patch_size=32).validate().patch_training
    assert not profile_config("smoke", image_size=64).validate().patch_training  # 0: the whole image


def test_working_image_is_the_area_average_of_the_film():
    film = np.arange(12 * 8, dtype=np.uint16).reshape(12, 8) * 600
    small = working_image(film, 4)[..., 0]
    # 12 x 8 -> 4 x 4: each working pixel is the mean of a 3 x 2 block, worked out by hand for the corner.
    assert small[0, 0] == pytest.approx(np.mean([0, 1, 8, 9, 16, 17]) * 600 / 65535, rel=1e-6)
    # A non-integer factor splits film pixels between working pixels by the share of their area.
    np.testing.assert_allclose(_area_weights(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]], rtol=1e-6)
