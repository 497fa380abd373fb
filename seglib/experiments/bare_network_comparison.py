"""seglib against the bare network: the same U-Net compiled as a user would without seglib, and
`bench --compare`, which trains both end to end on one dataset and scores them on its test images."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from seglib.config import RunConfig, profile_config
from seglib.data.io import DataError, resolved
from seglib.data.layout import load_records
from seglib.data.pipeline import load_example, normalise
from seglib.data.splits import records_in, split_records
from seglib.evaluation.metrics import segmentation_metrics
from seglib.networks.unet import build_model
from seglib.phantom.dataset import write_profile_phantoms
from seglib.training.fit import structures_to_load, train
from seglib.training.run_dir import RunDir


def bare_network(config: RunConfig, channels: int, n_outputs: int) -> keras.Model:
    """The same network as seglib's (same builder and options), compiled as a user would without
    seglib: Adam at the same rate and binary cross-entropy, no metrics, no clipping."""
    model = build_model(dataclasses.replace(config, structures=config.structures[:n_outputs]), channels=channels)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=keras.losses.BinaryCrossentropy())
    return model


def compare_with_bare(config: RunConfig, scratch: Path) -> dict:
    """seglib's default training (`train`: checks, pipeline, augmentation, validation, checkpoints,
    early stopping) and the bare network of the same architecture fitted on numpy arrays for the
    profile's epochs, one after the other, on the same training images. Both are timed end to end
    (reading the images included) and scored on the same test images: mean Dice at threshold 0.5
    at the model's input size, no TTA."""
    records = load_records(config.data, structures_to_load(config))
    split = split_records(records, config.val_fraction, config.test_fraction, config.seed,
                          root=Path(config.data), split_file=config.split_file)
    test = records_in(records, split, "test")
    if not test:
        raise DataError(f"{config.data}: the split has no test images to score the comparison on")

    started = time.perf_counter()
    run = RunDir(train(config, scratch / "seglib", verbose=0))
    seglib_seconds = time.perf_counter() - started
    seglib_dice = mean_test_dice(run.load_model(), test, config, config.side_aware, standardised=True)

    keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()
    images, masks = _arrays(records_in(records, split, "train"), config, side_aware=False)
    bare = bare_network(config, channels=1, n_outputs=masks.shape[-1])
    bare.fit(images, masks, batch_size=config.batch_size, epochs=config.epochs, shuffle=True, verbose=0)
    bare_seconds = time.perf_counter() - started
    bare_dice = mean_test_dice(bare, test, config, side_aware=False, standardised=False)
    return {"seglib": {"dice": seglib_dice, "seconds": seglib_seconds,
                       "epochs": run.summary()["epochs_run"]},
            "bare": {"dice": bare_dice, "seconds": bare_seconds, "epochs": config.epochs},
            "time_ratio": seglib_seconds / bare_seconds, "n_train": len(images), "n_test": len(test)}


def _arrays(records, config: RunConfig, side_aware: bool) -> tuple[np.ndarray, np.ndarray]:
    examples = [load_example(record, config.structures, config.image_size, side_aware) for record in records]
    return np.stack([image for image, _ in examples]), np.stack([masks for _, masks in examples])


def mean_test_dice(model: keras.Model, records, config: RunConfig, side_aware: bool, standardised: bool) -> float:
    """Mean Dice over images and structures at threshold 0.5, at the model's input size."""
    images, masks = _arrays(records, config, side_aware)
    if standardised:
        images = normalise(images).numpy()
    predicted = model.predict(images, batch_size=config.batch_size, verbose=0) >= 0.5
    return float(np.mean([segmentation_metrics(predicted[i, ..., k], masks[i, ..., k] >= 0.5)["dice"]
                          for i in range(len(images)) for k in range(masks.shape[-1])]))


def run_comparison(profile: str = "demo", data: str | Path | None = None, structure: str = "left_hip") -> str:
    """`bench --compare`: compare_with_bare on a dataset (default: the profile's phantoms,
    generated into a temporary folder) with the profile's default config; returns the printout."""
    with tempfile.TemporaryDirectory(prefix="seglib-compare-") as scratch:
        data = resolved(data) if data else write_profile_phantoms(Path(scratch) / "data", profile)
        # from random weights, as the bare network starts
        config = profile_config(profile, data=str(data), structures=(structure,), init="none")
        return compare_report(config, compare_with_bare(config, Path(scratch)))


def compare_report(config: RunConfig, results: dict) -> str:
    """The comparison as a few printable lines."""
    seglib, bare = results["seglib"], results["bare"]
    return "\n".join([
        f"{config.structures[0]} at {config.image_size} px, {results['n_train']} training and {results['n_test']} "
        f"test images (profile {config.profile}, {config.architecture} with {config.downsampling} down-sampling):",
        f"  seglib default:  test Dice {seglib['dice']:.4f}  {seglib['seconds']:7.1f} s  ({seglib['epochs']} epochs)",
        f"  bare Keras:      test Dice {bare['dice']:.4f}  {bare['seconds']:7.1f} s  ({bare['epochs']} epochs)",
        f"  seglib / bare time: {results['time_ratio']:.2f}x",
    ])
