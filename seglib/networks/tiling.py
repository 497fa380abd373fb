"""How a trained network is applied to a working-resolution image: one pass over the whole image, or, for a
patch-trained (fully convolutional) network on an image too large for one pass, overlapping sliding windows
weighted towards their centres (nnU-Net). Inference and the threshold calibration after training both use it,
so the threshold is chosen on the same probabilities that inference produces."""

from __future__ import annotations

import numpy as np


def apply_model(model, inputs: np.ndarray, config) -> np.ndarray:
    """(S, S, C) model input -> (S, S, K) probabilities, for a run with this RunConfig."""
    window = window_size(config)
    return sliding_window(model, inputs, window) if window else whole_image(model, inputs)


def window_size(config) -> int | None:
    """The side of the sliding windows for a run, None for one pass over the whole working image:
    a patch-trained network sees the whole image while it fits in memory (WHOLE_IMAGE_LIMIT), beyond
    that windows of its training patch size."""
    if config.patch_training and config.image_size > WHOLE_IMAGE_LIMIT:
        return config.crop_size
    return None


# The largest working image one forward pass takes (side in pixels); the full profile's 512 px fits easily.
WHOLE_IMAGE_LIMIT = 1024


def whole_image(model, inputs: np.ndarray) -> np.ndarray:
    """(S, S, C) model input -> (S, S, K) probabilities in one pass."""
    # predict_on_batch runs the compiled graph: ~3.5x faster per image than an eager call.
    return np.asarray(model.predict_on_batch(inputs[None])[0], np.float32)


def sliding_window(model, inputs: np.ndarray, window: int, overlap: float = 0.5, batch_size: int = 4
                   ) -> np.ndarray:
    """(H, W, C) model input -> (H, W, K) probabilities from window x window tiles that overlap by `overlap`
    (nnU-Net). Each tile's output is weighted by a Gaussian (sigma = window / 8) before the tiles are
    averaged: a convolution near a tile's border sees zero padding instead of the image, so the centre
    of a tile is the better estimate."""
    height, width = inputs.shape[:2]
    corners = [(y, x) for y in _tile_starts(height, window, overlap) for x in _tile_starts(width, window, overlap)]
    weight = _gaussian_weight(window)
    total, weights = None, np.zeros((height, width, 1), np.float32)
    for first in range(0, len(corners), batch_size):
        batch = corners[first:first + batch_size]
        tiles = model.predict_on_batch(np.stack([inputs[y:y + window, x:x + window] for y, x in batch]))
        for (y, x), tile in zip(batch, np.asarray(tiles, np.float32)):
            total = np.zeros((height, width, tile.shape[-1]), np.float32) if total is None else total
            total[y:y + window, x:x + window] += tile * weight
            weights[y:y + window, x:x + window] += weight
    return total / weights


def _tile_starts(length: int, window: int, overlap: float) -> list[int]:
    """Tile offsets along one axis: a step of window * (1 - overlap), the last tile flush with the end."""
    if window >= length:
        return [0]
    step = max(1, int(window * (1 - overlap)))
    return sorted({*range(0, length - window, step), length - window})


def _gaussian_weight(window: int) -> np.ndarray:
    centre, sigma = (window - 1) / 2, window / 8
    profile = np.exp(-((np.arange(window) - centre) ** 2) / (2 * sigma**2))
    weight = np.outer(profile, profile)
    return np.maximum(weight / weight.max(), 1e-3)[..., None].astype(np.float32)  # no zero weight at the corners


