import numpy as np
import pytest
from conftest import write_square_dataset

from seglib.data.layout import load_records
from seglib.data.pipeline import evaluation_dataset, load_example, model_input, training_dataset, working_image


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    root = write_square_dataset(tmp_path_factory.mktemp("squares") / "d", n=8, size=32)
    return load_records(root, ["left_thing", "right_thing"])


def batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def test_training_batches_have_model_shapes_and_normalised_images(squares):
    (x, y), *_ = batches(training_dataset(squares, ("left_thing",), 32, 4, seed=0))
    assert x.shape == (4, 32, 32, 1) and y.shape == (4, 32, 32, 1)
    assert x.dtype == np.float32 and set(np.unique(y)) <= {0.0, 1.0}
    assert np.allclose(x.mean(axis=(1, 2, 3)), 0, atol=1e-4)  # per-image standardisation


def test_same_seed_same_batches_other_seed_other_batches(squares):
    a = batches(training_dataset(squares, ("left_thing",), 32, 4, seed=1))
    b = batches(training_dataset(squares, ("left_thing",), 32, 4, seed=1))
    c = batches(training_dataset(squares, ("left_thing",), 32, 4, seed=2))
    assert all(np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1]) for p, q in zip(a, b))
    assert not np.array_equal(a[0][0], c[0][0])


def test_mirror_flip_swaps_partners_so_the_target_stays_on_its_side(squares):
    examples = batches(training_dataset(squares, ("left_thing",), 32, 8, seed=0, augment=False, mirror_flip=True)
                       .repeat(4))
    images = np.concatenate([x for x, _ in examples])
    targets = np.concatenate([y for _, y in examples])
    flipped = [not np.array_equal(img, images[0]) for img in images]  # all squares images are equal unflipped
    assert any(flipped) and not all(flipped)
    # The patient's left (image right) target is on the image's right, flipped or not ...
    assert targets[..., :, :16, 0].sum() == 0 and targets[..., :, 16:, 0].sum() > 0
    # ... and it always lies on bright bone pixels of its (possibly flipped) image.
    assert (images[targets[..., 0] > 0] > 0).all()


def test_augmentation_moves_image_and_mask_together(squares):
    (x, y), *_ = batches(training_dataset(squares, ("left_thing", "right_thing"), 32, 8, seed=0, mirror_flip=False))
    inside = x[..., 0][y.max(axis=-1) > 0].mean()
    outside = x[..., 0][y.max(axis=-1) == 0].mean()
    assert inside > outside + 1.0  # the square stays under its mask after the random affine
    assert not all(np.array_equal(y[0], y[i]) for i in range(1, len(y)))  # poses differ


def test_mirror_flip_refuses_structures_without_partner(squares):
    with pytest.raises(ValueError, match="mirror_flip needs a declared mirror partner"):
        training_dataset(squares, ("cardiomediastinum",), 32, 4, seed=0)


def test_evaluation_data_is_in_record_order_and_prediction_preprocessing_matches(phantom_dataset):
    from seglib.data.io import read_image

    records = load_records(phantom_dataset, ["left_hip"])[:6]  # films that all differ, as their hip masks do
    (x, y), *_ = batches(evaluation_dataset(records, ("left_hip",), 64, 8))
    assert x.shape[0] == len(records)
    for k, record in enumerate(records):  # the k-th example is the k-th record's image with its own mask
        np.testing.assert_allclose(model_input(working_image(read_image(record.image), 64)), x[k], atol=1e-5)
        np.testing.assert_array_equal(y[k], load_example(record, ("left_hip",), 64)[1])
    assert not np.allclose(x[0], x[1]) and not np.array_equal(y[0], y[1])


def test_side_channel_points_to_the_patients_left_also_on_mirrored_examples(phantom_dataset):
    records = load_records(phantom_dataset, ["left_hip", "right_hip"])[:8]
    examples = batches(training_dataset(records, ("left_hip",), 64, 8, seed=0, augment=False, mirror_flip=True,
                                        side_aware=True).repeat(2))
    images = np.concatenate([x for x, _ in examples])
    targets = np.concatenate([y for _, y in examples])
    assert images.shape[-1] == 2
    for image, target in zip(images, targets):  # the left hip (image right) is on the positive side
        assert image[..., 1][target[..., 0] > 0].mean() > 0.1
