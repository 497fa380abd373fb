"""tf.data input pipelines: decode once, resize, cache; then seeded shuffle, augmentation,
per-image normalisation, batch and prefetch.

Decoding goes through seglib.data.io so every format (8/16-bit PNG, TIFF, DICOM) and every validation
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
    image = read_image(record.image)
    masks = [record.masks[s].read() for s in structures]
    for structure, mask in zip(structures, masks):
        if mask.shape != image.shape:
            raise ValueError(f"{record.masks[structure].path}: {structure} mask shape {mask.shape} "
                             f"differs from image {record.image} shape {image.shape}")
    image = with_side_channel(working_image(image, image_size), side_aware)
    masks = resize(np.stack(masks, axis=-1).astype(np.float32), image_size, method="area")
    return image, (masks.numpy() >= 0.5).astype(np.float32)


def working_image(image: np.ndarray, image_size: int) -> np.ndarray:
    """A stored grey image (8 or 16 bit) as float32 (S, S, 1) in [0, 1] at the working resolution S.

    Downsampling averages the film's pixels over each working pixel's area (anti-aliased: thin cortical
    rims and rami keep their weight), computed as two matrix products over bands of rows, so a large film
    is never copied as floats: memory follows the working size, not the film's."""
    if image.shape[0] < image_size or image.shape[1] < image_size:  # an upsampled small image
        return resize(to_unit_float(image)[..., None], image_size).numpy()
    rows, columns = _area_weights(image.shape[0], image_size), _area_weights(image.shape[1], image_size)
    band = max(1, 2**22 // image.shape[1])  # ~16 MB of float32 film at a time
    narrowed = np.concatenate([image[start:start + band].astype(np.float32) @ columns.T
                               for start in range(0, image.shape[0], band)])
    return (rows @ narrowed / float(np.iinfo(image.dtype).max))[..., None].astype(np.float32)


def _area_weights(length: int, size: int) -> np.ndarray:
    """(size, length) matrix: output pixel i is the mean of the input over [i, i + 1) * length / size,
    each input pixel weighted by how much of it lies in that interval (area interpolation)."""
    edges = np.arange(size + 1) * (length / size)
    pixels = np.arange(length)
    overlap = (np.minimum(pixels[None, :] + 1, edges[1:, None]) - np.maximum(pixels[None, :], edges[:-1, None]))
    return (np.clip(overlap, 0, None) * (size / length)).astype(np.float32)


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
                     seed: int, augment: bool = True, mirror_flip: bool = True, side_aware: bool = False,
                     patch_size: int = 0, foreground_crops: float = 1 / 3,
                     intensity: str = "standard") -> tf.data.Dataset:
    """Batches of (normalised image, target masks) for fit; one pass over the records per epoch.

    With `mirror_flip`, half of the examples are mirrored and their targets are the flipped masks
    of the partner structures, so the model sees each bone twice: once per side.
    With a `patch_size` below `image_size`, each example is a patch_size crop of the mirrored and
    augmented working-resolution image (`random_crop`); the side channel is cropped with it, so a crop
    keeps its place relative to the midline."""
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
            image = tf.concat([_random_intensity(image[..., :1], seeds[2], **INTENSITY_RANGES[intensity]),
                               image[..., 1:]], axis=-1)
        if patch_size and patch_size < image_size:
            image, target = random_crop(image, target, patch_size, foreground_crops, seeds[3])
        return normalise(image), target

    # Stateless random ops fed by a seeded stream: reproducible, and different in every epoch.
    random_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(8)
    random_seeds = random_seeds.map(lambda values: tf.reshape(values, (4, 2)))
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


def random_crop(image, target, patch_size: int, foreground_share: float, seed):
    """A patch_size x patch_size crop of image and target alike. With probability `foreground_share`
    it is centred (as far as the borders allow) on a random pixel of the target, so it contains the
    structure; otherwise, and when the target is empty, its corner is uniform over the image."""
    size = tf.shape(image)[:2]
    room = size - patch_size  # the largest top-left corner
    u = tf.random.stateless_uniform((4,), seed)
    foreground = tf.where(tf.reduce_any(target >= 0.5, axis=-1))
    count = tf.shape(foreground)[0]
    uniform_corner = tf.cast(u[2:] * tf.cast(room + 1, tf.float32), tf.int32)

    def centred_on_foreground():
        pixel = tf.cast(foreground[tf.minimum(tf.cast(u[1] * tf.cast(count, tf.float32), tf.int32), count - 1)],
                        tf.int32)
        return tf.clip_by_value(pixel - patch_size // 2, 0, room)

    corner = tf.cond((u[0] < foreground_share) & (count > 0), centred_on_foreground, lambda: uniform_corner)
    corner = tf.minimum(corner, room)  # u may reach 1.0 in float32 rounding

    def crop(array):
        patch = array[corner[0]:corner[0] + patch_size, corner[1]:corner[1] + patch_size]
        patch.set_shape((patch_size, patch_size, array.shape[-1]))
        return patch

    return crop(image), crop(target)


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


# The intensity augmentation's ranges (RunConfig.intensity_augmentation). standard is what the real chest films
# were measured best with; wide also blurs or sharpens (a focal spot and detector that blur, or edge enhancement)
# and stretches gamma and noise: for a model meant for films from machines nobody has seen.
INTENSITY_RANGES = {
    "standard": dict(gamma=(0.7, 1.4), max_noise=0.03, sharpness=None),
    "wide": dict(gamma=(0.6, 1.8), max_noise=0.05, sharpness=(-1.0, 1.0)),
}


def _random_intensity(image, seed, gamma, max_noise, sharpness, max_brightness=0.1, contrast=(0.75, 1.25)):
    """Exposure, contrast, gamma, sharpness (unless None) and quantum-noise variation, as between radiographs."""
    u = tf.random.stateless_uniform((5,), seed)
    image = tf.clip_by_value(image, 0.0, 1.0) ** (gamma[0] + u[0] * (gamma[1] - gamma[0]))
    if sharpness is not None:
        image = _blend_with_blurred(image, sharpness[0] + u[4] * (sharpness[1] - sharpness[0]))
    mean = tf.reduce_mean(image)
    image = (image - mean) * (contrast[0] + u[1] * (contrast[1] - contrast[0])) + mean
    image = image + (u[2] * 2.0 - 1.0) * max_brightness
    noise = tf.random.stateless_normal(tf.shape(image), seed + 1) * u[3] * max_noise
    return tf.clip_by_value(image + noise, 0.0, 1.0)


def _blend_with_blurred(image, amount, sigma=1.0):
    """amount in [0, 1] moves the image towards its Gaussian blur (sigma in pixels); a negative amount moves
    it away, which is an unsharp mask (edge enhancement)."""
    taps = tf.range(-2.0, 3.0)
    kernel = tf.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / tf.reduce_sum(kernel)
    padded = tf.pad(image[None], [[0, 0], [2, 2], [2, 2], [0, 0]], mode="SYMMETRIC")
    blurred = tf.nn.conv2d(padded, tf.reshape(kernel, (5, 1, 1, 1)), 1, "VALID")
    blurred = tf.nn.conv2d(blurred, tf.reshape(kernel, (1, 5, 1, 1)), 1, "VALID")[0]
    return image + amount * (blurred - image)


def model_input(working: np.ndarray, side_aware: bool = False) -> np.ndarray:
    """A working-resolution image (S, S, 1) in [0, 1] as the model input: the side channel of its own
    midline when the model was trained side-aware, then standardised."""
    return normalise(with_side_channel(working, side_aware)).numpy()
