"""tf.data input pipelines: decode once, resize, cache; then seeded shuffle, augmentation,
per-image normalisation, batch and prefetch.

Decoding goes through seglib.io so every format (8/16-bit PNG, TIFF, DICOM) and every validation
error is the same as elsewhere; it runs once per image because the resized arrays are cached, so
the per-epoch cost is the augmentation, which is pure TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from seglib.data.io import read_image, to_unit_float
from seglib.data.layout import Record
from seglib.symmetry.midline import estimate_midline, side_channel
from seglib.symmetry.partners import mirror_targets

AUTOTUNE = tf.data.AUTOTUNE


def load_example(record: Record, structures: tuple[str, ...], image_size: int,
                 side_aware: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Image (S, S, C) and masks (S, S, K) in {0, 1}, float32, resized to S x S. Channel 0 is the
    image in [0, 1]; with `side_aware`, channel 1 is the signed position relative to its midline."""
    image = to_unit_float(read_image(record.image))
    masks = [record.masks[s].read() for s in structures]
    for structure, mask in zip(structures, masks):
        if mask.shape != image.shape:
            raise ValueError(f"{record.masks[structure].path}: {structure} mask shape {mask.shape} "
                             f"differs from image {record.image} shape {image.shape}")
    image = with_side_channel(resize(image[..., None], image_size).numpy(), side_aware)
    masks = resize(np.stack(masks, axis=-1).astype(np.float32), image_size, method="area")
    return image, (masks.numpy() >= 0.5).astype(np.float32)


def with_side_channel(image: np.ndarray, side_aware: bool) -> np.ndarray:
    """(S, S, 1) -> (S, S, 2) with the side channel of the image's own estimated midline, so a
    per-bone model knows which side it looks at (positive: the patient's left)."""
    if not side_aware:
        return image
    side = side_channel(image.shape[:2], estimate_midline(image[..., 0]))
    return np.concatenate([image, side[..., None]], axis=-1)


def resize(array, image_size: int, method: str = "area"):
    """Downsampling by area averaging avoids aliasing of thin structures (cortical rims, rami)."""
    return tf.image.resize(array, (image_size, image_size), method=method, antialias=True)


def normalise(image: tf.Tensor) -> tf.Tensor:
    """Per-image standardisation of the grey channel: radiographs differ widely in exposure and
    bit depth. A side channel (already in [-1, 1]) is left as it is."""
    return tf.concat([tf.image.per_image_standardization(image[..., :1]), image[..., 1:]], axis=-1)


def cached_examples(records: list[Record], structures: tuple[str, ...], image_size: int,
                    side_aware: bool = False) -> tf.data.Dataset:
    """(image, masks) pairs, decoded and resized once, then served from memory."""
    ids = tf.data.Dataset.from_tensor_slices(np.arange(len(records)))
    k = len(structures)

    def load(index):
        return load_example(records[int(index)], structures, image_size, side_aware)

    def load_tf(index):
        image, masks = tf.numpy_function(load, [index], (tf.float32, tf.float32), stateful=False)
        image.set_shape((image_size, image_size, 1 + side_aware))
        masks.set_shape((image_size, image_size, k))
        return image, masks

    return ids.map(load_tf, num_parallel_calls=AUTOTUNE, deterministic=True).cache()


def training_dataset(records: list[Record], structures: tuple[str, ...], image_size: int, batch_size: int,
                     seed: int, augment: bool = True, mirror_flip: bool = True,
                     side_aware: bool = False) -> tf.data.Dataset:
    """Batches of (normalised image, target masks) for fit; one pass over the records per epoch.

    With `mirror_flip`, half of the examples are mirrored and their targets are the flipped masks
    of the partner structures, so the model sees each bone twice: once per side."""
    partners = mirror_targets(structures) if mirror_flip else None
    if mirror_flip and partners is None:
        raise ValueError(f"mirror_flip needs a declared mirror partner for every structure in {structures}; "
                         "turn it off (--no-mirror-flip) for unpaired structures")
    loaded = tuple(dict.fromkeys(structures + (partners or ())))  # targets first, then extra partners
    target_index = [loaded.index(s) for s in structures]
    partner_index = [loaded.index(s) for s in partners] if partners else target_index

    def augment_example(example, seeds):
        image, masks = example
        target = tf.gather(masks, target_index, axis=-1)
        if mirror_flip:
            image, target = _mirror(image, target, tf.gather(masks, partner_index, axis=-1), seeds[0])
        if augment:
            image, target = _random_affine(image, target, seeds[1])
            image = tf.concat([_random_intensity(image[..., :1], seeds[2]), image[..., 1:]], axis=-1)
        return normalise(image), target

    # Stateless random ops fed by a seeded stream: reproducible, and different in every epoch.
    random_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(6)
    random_seeds = random_seeds.map(lambda values: tf.reshape(values, (3, 2)))
    dataset = cached_examples(records, loaded, image_size, side_aware).shuffle(
        len(records), seed=seed, reshuffle_each_iteration=True)
    dataset = tf.data.Dataset.zip(dataset, random_seeds)
    dataset = dataset.map(augment_example, num_parallel_calls=AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)


def evaluation_dataset(records: list[Record], structures: tuple[str, ...], image_size: int,
                       batch_size: int, side_aware: bool = False) -> tf.data.Dataset:
    """Batches of (normalised image, masks) in record order, no augmentation."""
    dataset = cached_examples(records, structures, image_size, side_aware)
    return dataset.map(lambda image, masks: (normalise(image), masks)).batch(batch_size).prefetch(AUTOTUNE)


def _mirror(image, target, partner_masks, seed):
    """With probability 1/2: the mirrored image, the flipped partner masks as target, and the side
    channel (if any) negated: the mirrored image's patient-left is the original's patient-right."""
    flip = tf.random.stateless_uniform((), seed) < 0.5
    side_sign = tf.concat([[1.0], -tf.ones(tf.shape(image)[-1:] - 1)], axis=0)
    return tf.cond(
        flip,
        lambda: (tf.reverse(image, axis=[1]) * side_sign, tf.reverse(partner_masks, axis=[1])),
        lambda: (image, target),
    )


def _random_affine(image, masks, seed, max_rotation_deg=10.0, max_scale=0.1, max_shift=0.08):
    """One random rotation, isotropic scale and shift applied to the image and its masks alike."""
    size = tf.cast(tf.shape(image)[0], tf.float32)
    u = tf.random.stateless_uniform((4,), seed, -1.0, 1.0)
    angle = u[0] * max_rotation_deg * math.pi / 180.0
    scale = 1.0 + u[1] * max_scale
    shift = u[2:] * max_shift * size
    transform = _affine_about_centre(angle, scale, shift, size)
    stacked = tf.concat([image, masks], axis=-1)[None]
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=stacked, transforms=transform[None], output_shape=tf.shape(image)[:2],
        interpolation="BILINEAR", fill_mode="CONSTANT", fill_value=0.0)[0]
    channels = tf.shape(image)[-1]
    return warped[..., :channels], tf.cast(warped[..., channels:] >= 0.5, tf.float32)


def _affine_about_centre(angle, scale, shift, size):
    """The output->input pixel map of TensorFlow's projective transform, as its 8 parameters."""
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    centre = (size - 1.0) / 2.0
    tx = centre - cos * (centre + shift[0]) + sin * (centre + shift[1])
    ty = centre - sin * (centre + shift[0]) - cos * (centre + shift[1])
    return tf.stack([cos, -sin, tx, sin, cos, ty, 0.0, 0.0])


def _random_intensity(image, seed, max_brightness=0.1, contrast=(0.75, 1.25), gamma=(0.7, 1.4), max_noise=0.03):
    """Exposure, contrast, gamma and quantum-noise variation, as between radiographs."""
    u = tf.random.stateless_uniform((4,), seed)
    image = tf.clip_by_value(image, 0.0, 1.0) ** (gamma[0] + u[0] * (gamma[1] - gamma[0]))
    mean = tf.reduce_mean(image)
    image = (image - mean) * (contrast[0] + u[1] * (contrast[1] - contrast[0])) + mean
    image = image + (u[2] * 2.0 - 1.0) * max_brightness
    noise = tf.random.stateless_normal(tf.shape(image), seed + 1) * u[3] * max_noise
    return tf.clip_by_value(image + noise, 0.0, 1.0)


def preprocess_for_prediction(image: np.ndarray, image_size: int, side_aware: bool = False) -> np.ndarray:
    """A stored grey image as the model input (S, S, C): scaled to [0, 1], resized, standardised,
    with the side channel when the model was trained side-aware."""
    resized = with_side_channel(resize(to_unit_float(image)[..., None], image_size).numpy(), side_aware)
    return normalise(resized).numpy()
