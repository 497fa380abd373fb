"""A trained network applied to one film: its passes at the working resolution become one probability map per
structure at the film's own size. Prediction (seglib.inference.predictor, and the archive's batches through it)
and the threshold calibration after training (seglib.training.calibration) both go this way, so a threshold is
chosen on the very maps it is later applied to.

    model input     --network_maps-->  structure -> map                                   (the plain pass)
    mirrored input  --network_maps-->  --flipped_back-->  structure -> its PARTNER's map, flipped back
    film_maps: the plain map, or with flip TTA the mean of the two passes; mapped so that the structure's
               threshold becomes 0.5 (calibrated); resampled (bilinear) to the film's size

With flip TTA the threshold applies to the mean of the network's own passes, which is what a TTA threshold is
chosen on. The left hip of the mirrored film is the right hip of the film, mirrored: hence the partner swap.
The model input (seglib.data.pipeline.working_image, model_input) and the mirror partners
(seglib.symmetry.partners) are the callers' to give: networks import config only.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from seglib.networks.tiling import apply_model


def network_maps(model, config, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """structure -> (S, S) probability map of one pass of `model` over a model input (S, S, C), for a run
    with this RunConfig (one pass or sliding windows: seglib.networks.tiling)."""
    return structure_maps(apply_model(model, inputs, config), config.structures)


def structure_maps(output: np.ndarray, structures) -> dict[str, np.ndarray]:
    """A network's (S, S, K) output as structure -> (S, S) map, channel k being structures[k]."""
    return {structure: output[..., k] for k, structure in enumerate(structures)}


def flipped_back(mirrored: dict[str, np.ndarray], partners: dict[str, str], plain: dict[str, np.ndarray]
                 ) -> dict[str, np.ndarray]:
    """structure -> the map of its mirror partner (`partners`) on the mirrored film, flipped back: a second
    opinion on the structure, at the resolution of its own plain map (runs may work at different sizes)."""
    return {s: resized(mirrored[p][:, ::-1], plain[s].shape) for s, p in partners.items()}


def film_maps(plain: dict[str, np.ndarray], flipped: dict[str, np.ndarray] | None, shape,
              thresholds: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """structure -> float32 map with the film's `shape`: the plain pass, or the mean of the plain and the
    flipped pass (flip TTA; flipped None: the plain pass alone), mapped so that the structure's threshold
    (`thresholds`, 0.5 where absent) becomes 0.5, then resampled. The threshold is applied at the working
    resolution, which keeps memory to the working size; resampling moves the outline by a fraction of a working
    pixel at most."""
    thresholds = thresholds or {}
    return {s: resized(calibrated(p if flipped is None else (p + flipped[s]) / 2, thresholds.get(s, 0.5)), shape)
            for s, p in plain.items()}


def calibrated(probability: np.ndarray, threshold: float) -> np.ndarray:
    """Probabilities mapped piecewise linearly so that `threshold` becomes 0.5, 0 and 1 stay."""
    if threshold == 0.5:
        return probability
    low = probability * np.float32(0.5 / threshold)
    high = np.float32(0.5) + (probability - np.float32(threshold)) * np.float32(0.5 / (1 - threshold))
    return np.where(probability < threshold, low, high).astype(np.float32)


def resized(probability: np.ndarray, shape) -> np.ndarray:
    """A probability map resampled (bilinear) to `shape`'s first two sides; itself when it already has them."""
    if probability.shape[:2] == tuple(shape[:2]):
        return probability
    return tf.image.resize(probability[..., None], shape[:2], method="bilinear").numpy()[..., 0]
