"""The benchmark's timed measurements: the tf.data input pipeline, training epochs (seglib's model
against the same network compiled bare), where a real training run's time goes, and single-image
prediction latency (the method is in seglib.experiments.bench)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seglib.config import RunConfig
from seglib.experiments.bare_network_comparison import bare_network
from seglib.inference.predictor import Predictor
from seglib.phantom.dataset import phantom_rng
from seglib.phantom.render import make_pelvis
from seglib.training.callbacks import EpochTimer, TrainingProfiler
from seglib.training.fit import compile_model, train, write_untrained_run
from seglib.training.hardware import mixed_precision

PREDICTION_IMAGE_SIZES = (256, 512)
# The first calls of a model build its functions and warm caches: they are not typical latency.
WARM_UP_CALLS = 2
# The prediction runs: a mirror pair, so flip TTA can be measured.
PREDICTED_STRUCTURES = ("left_hip", "right_hip")


# --- Input pipeline ------------------------------------------------------------------------------


def measure_pipeline(dataset: tf.data.Dataset, n_images: int, cached_passes: int) -> dict:
    """Images/s of the first pass (decode + resize + augment) and of later passes (augment only)."""
    first = _timed_pass(dataset)
    cached = sum(_timed_pass(dataset) for _ in range(cached_passes))
    return {"first_pass_images_per_s": n_images / first, "cached_images_per_s": n_images * cached_passes / cached}


def _timed_pass(dataset: tf.data.Dataset) -> float:
    started = time.perf_counter()
    for _ in dataset:
        pass
    return time.perf_counter() - started


# --- Training ------------------------------------------------------------------------------------


def measure_breakdown(config: RunConfig, run_dir: Path, epochs: int) -> dict:
    """Wall time of a real `seglib.training.train` call, split into stages by `TrainingProfiler`;
    'outside fit' is the rest: dataset checks, split, decoding the cache's first pass happens in
    the first epoch, model build, choosing the threshold on the validation films, summary."""
    profiler = TrainingProfiler()
    started = time.perf_counter()
    train(dataclasses.replace(config, epochs=epochs), run_dir, verbose=0, callbacks=(profiler,))
    total = time.perf_counter() - started
    outside = "outside fit (checks, split, model build, calibration, summary)"
    return {"stages": {outside: total - sum(profiler.seconds.values()),
                       **profiler.seconds},
            "total_seconds": total, "steady_steps": profiler.steps, "epochs": epochs}


def measure_training(config: RunConfig, dataset: tf.data.Dataset, n_images: int, epochs: int) -> dict:
    """Training images/s of our compiled model on the pipeline and of the bare U-Net on arrays."""
    with mixed_precision(config.mixed_precision):
        ours = compile_model(config)
    seglib_seconds = _timed_fit(ours, dataset, epochs)
    images, masks = _one_epoch_as_arrays(dataset)
    bare = bare_network(config, channels=images.shape[-1], n_outputs=masks.shape[-1])
    bare_seconds = _timed_fit(bare, images, epochs, y=masks, batch_size=config.batch_size)
    return {
        "seglib_images_per_s": n_images * epochs / seglib_seconds,
        "bare_images_per_s": len(images) * epochs / bare_seconds,
        "seglib_over_bare_time_per_image": (seglib_seconds / n_images) / (bare_seconds / len(images)),
    }


def _timed_fit(model: keras.Model, x, epochs: int, **fit_options) -> float:
    """Seconds of `epochs` epochs, after one more epoch that traces the train step."""
    timer = EpochTimer()
    model.fit(x, epochs=1 + epochs, shuffle=False, verbose=0, callbacks=[timer], **fit_options)
    return sum(timer.seconds[1:])


def _one_epoch_as_arrays(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """One augmented epoch in memory: fitted in order, it gives the bare model our batches."""
    batches = list(dataset.as_numpy_iterator())
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


# --- Inference -----------------------------------------------------------------------------------


def measure_inference(config: RunConfig, runs_folder: Path, calls: int) -> dict:
    """Images/s and latency of single-image predictions, per input size, without and with flip TTA."""
    predictor = Predictor([write_untrained_run(dataclasses.replace(config, structures=(structure,)),
                                               runs_folder / structure) for structure in PREDICTED_STRUCTURES])
    results = {}
    for size in PREDICTION_IMAGE_SIZES:
        image = make_pelvis(phantom_rng(config.seed, 0), size).image
        for tta in (False, True):
            results[inference_key(size, tta)] = _prediction_latency(predictor, image, tta, calls)
    return results


def inference_key(size: int, tta: bool) -> str:
    return f"{size}px_tta" if tta else f"{size}px"


def _prediction_latency(predictor: Predictor, image: np.ndarray, tta: bool, calls: int) -> dict:
    for _ in range(WARM_UP_CALLS):
        predictor.probabilities(image, tta=tta)
    seconds = np.array([_timed_prediction(predictor, image, tta) for _ in range(calls)])
    return {"images_per_s": float(calls / seconds.sum()), "median_ms": 1000 * float(np.median(seconds)),
            "p95_ms": 1000 * float(np.percentile(seconds, 95))}


def _timed_prediction(predictor: Predictor, image: np.ndarray, tta: bool) -> float:
    started = time.perf_counter()
    predictor.probabilities(image, tta=tta)
    return time.perf_counter() - started
