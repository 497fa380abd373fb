"""How fast the three stages a user waits for run on this machine: the tf.data input pipeline,
training, and prediction. `run_benchmark` measures them on phantom data and writes a markdown
report (python -m seglib bench).

Method, in short (the report repeats it):
- The data is generated into a temporary folder with the profile's phantom size, unless a
  dataset folder is given (it needs left_hip and right_hip masks: training uses mirror flips).
- Every stage runs the profile's RunConfig (target left_hip) under the same settings as
  `seglib.training.fit.train`: seeds, op determinism, dtype policy. One device, no distribution strategy.
- Input pipeline: `training_dataset` as training builds it (augmentation and mirror flip on),
  iterated alone: the first pass decodes, resizes and fills the cache; later passes only augment.
- Training: whole epochs of `model.fit`, the first one (tf.function tracing) left out. The same
  cached pipeline object is used, so no timed epoch decodes. The reference is the same network
  compiled bare (Adam + binary cross-entropy, no metrics, no clipping) and fitted on one augmented
  epoch held as numpy arrays: what a user would otherwise write.
- Where the time goes: one real `train` call of a few epochs, split into stages (TrainingProfiler).
- `--compare` (compare_with_bare): seglib's whole default training against the bare network fitted
  on arrays, end to end, with the test Dice of both.
- Inference: single-image `Predictor.probabilities` calls, pre- and post-processing included, on
  phantom images of 256 and 512 px. The predictor holds a left_hip and a right_hip run (flip TTA
  needs both); those runs are compiled but untrained models saved with their config.json, since
  the weights' values do not change the speed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from seglib.config import PHANTOM_SIZES, RunConfig, profile_config
from seglib.data.io import DataError, write_text
from seglib.data.layout import load_records
from seglib.data.pipeline import load_example, normalise, training_dataset
from seglib.data.splits import records_in, split_records
from seglib.evaluation.metrics import segmentation_metrics
from seglib.inference.predictor import Predictor
from seglib.networks.unet import build_model
from seglib.phantom.dataset import phantom_rng, write_phantom_dataset
from seglib.phantom.render import make_pelvis
from seglib.reporting.tables import markdown_table
from seglib.training.fit import compile_model, load_run_model, set_determinism, structures_to_load, train
from seglib.training.hardware import mixed_precision

PREDICTION_IMAGE_SIZES = (256, 512)
# The first calls of a model build its functions and warm caches: they are not typical latency.
WARM_UP_CALLS = 2
# The prediction runs: a mirror pair, so flip TTA can be measured.
PREDICTED_STRUCTURES = ("left_hip", "right_hip")


@dataclass(frozen=True)
class BenchSettings:
    """How much of each stage is timed; more repetitions on the larger profiles steady the numbers."""

    cached_passes: int
    training_epochs: int
    prediction_calls: int


BENCH_SETTINGS = {
    "smoke": BenchSettings(cached_passes=2, training_epochs=2, prediction_calls=8),
    "demo": BenchSettings(cached_passes=3, training_epochs=3, prediction_calls=40),
    "full": BenchSettings(cached_passes=2, training_epochs=2, prediction_calls=40),
}


def run_benchmark(profile: str, out: str | Path, data: str | Path | None = None) -> dict:
    """Measure the input pipeline, training and inference; write the markdown report to `out`
    (replacing it: it is a regenerated artifact) and return the numbers."""
    started, measured_at = time.perf_counter(), f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    config = profile_config(profile, structures=PREDICTED_STRUCTURES[:1])
    settings = BENCH_SETTINGS[profile]
    with tempfile.TemporaryDirectory(prefix="seglib-bench-") as scratch:
        generation_s = None
        if not data:
            generation_started = time.perf_counter()
            config = dataclasses.replace(config, data=str(_phantom_dataset(profile, Path(scratch) / "data")))
            generation_s = time.perf_counter() - generation_started
        else:
            config = dataclasses.replace(config, data=str(data))
        set_determinism(config.seed, config.deterministic)
        records = load_records(config.data, structures_to_load(config))
        dataset = training_dataset(records, config.structures, config.image_size, config.batch_size, config.seed,
                                   augment=config.augment, mirror_flip=config.mirror_flip,
                                   side_aware=config.side_aware)
        results = {"profile": profile, "measured_at": measured_at,
                   "setup": _setup(config, records, _data_description(profile, data, generation_s))}
        results["pipeline"] = measure_pipeline(dataset, len(records), settings.cached_passes)
        results["training"] = measure_training(config, dataset, len(records), settings.training_epochs)
        results["breakdown"] = measure_breakdown(config, Path(scratch) / "run", 1 + settings.training_epochs)
        results["inference"] = measure_inference(config, Path(scratch) / "runs", settings.prediction_calls)
    results["pipeline_over_training"] = (results["pipeline"]["cached_images_per_s"]
                                         / results["training"]["seglib_images_per_s"])
    results["peak_rss_mib"] = peak_rss_mib()
    results["system"] = system_info()
    results["total_seconds"] = time.perf_counter() - started
    write_text(out, markdown_report(results), overwrite=True)
    return results


def default_report_path(profile: str) -> Path:
    """One generated report per profile, beside the hand-written reports/benchmarks.md it never replaces."""
    return Path("reports/benchmarks") / f"{profile}.md"


def _phantom_dataset(profile: str, folder: Path) -> Path:
    n, size = PHANTOM_SIZES[profile]
    return write_phantom_dataset(folder, n=n, size=size, seed=0)


def _data_description(profile: str, data: str | Path | None, generation_s: float | None = None) -> str:
    if data:
        return str(data)
    n, size = PHANTOM_SIZES[profile]
    return f"{n} phantom images of {size} px, generated for the run in {generation_s:.0f} s"


def _setup(config: RunConfig, records, data_description: str) -> dict:
    # The context only reports the dtype policy training would use; it restores the global one.
    with mixed_precision(config.mixed_precision) as policy:
        return {
            "data": data_description, "images": len(records), "model_input_px": config.image_size,
            "depth": config.depth, "base_filters": config.base_filters, "batch_size": config.batch_size,
            "downsampling": config.downsampling,
            "loss": config.loss, "augment": config.augment, "mirror_flip": config.mirror_flip,
            "op_determinism": config.deterministic, "dtype_policy": policy,
        }


# --- Input pipeline -----------------------------------------------------------------------------


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


# --- Training -----------------------------------------------------------------------------------


class EpochTimer(keras.callbacks.Callback):
    """Wall time of every epoch, so the tracing epoch can be left out."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


class TrainingProfiler(keras.callbacks.Callback):
    """Where `model.fit` spends its wall time, by stage. Put it first in the callback list: the time
    from its on_epoch_end to the next epoch (or the end) is then the other callbacks' work (history
    log, checkpoint, learning rate, early stopping, backup). The first epoch, which traces the
    functions, is kept apart.

    Keras fetches each batch inside the compiled train function, so waiting for input counts as
    step time; `measure_pipeline` shows whether the pipeline keeps up."""

    STAGES = ("first epoch (decode and cache, tracing)", "train steps", "Python between steps", "validation",
              "epoch-end callbacks")

    def __init__(self):
        super().__init__()
        self.seconds = dict.fromkeys(self.STAGES, 0.0)
        self.epoch, self.steps, self._mark = 0, 0, None

    def _close(self, stage: str) -> None:
        """Charge the time since the previous event to `stage` (to the first epoch while in it)."""
        now = time.perf_counter()
        if self._mark is not None:
            self.seconds[self.STAGES[0] if self.epoch == 0 else stage] += now - self._mark
        self._mark = now

    def on_epoch_begin(self, epoch, logs=None):
        self._close("epoch-end callbacks")
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self._close("Python between steps")

    def on_train_batch_end(self, batch, logs=None):
        self._close("train steps")
        self.steps += self.epoch > 0

    def on_test_begin(self, logs=None):
        self._close("Python between steps")

    def on_test_end(self, logs=None):
        self._close("validation")

    def on_epoch_end(self, epoch, logs=None):
        self._close("Python between steps")

    def on_train_end(self, logs=None):
        self._close("epoch-end callbacks")


def measure_breakdown(config: RunConfig, run_dir: Path, epochs: int) -> dict:
    """Wall time of a real `seglib.training.train` call, split into stages by `TrainingProfiler`;
    'outside fit' is the rest: dataset checks, split, decoding the cache's first pass happens in
    the first epoch, model build, summary."""
    profiler = TrainingProfiler()
    started = time.perf_counter()
    train(dataclasses.replace(config, epochs=epochs), run_dir, verbose=0, callbacks=(profiler,))
    total = time.perf_counter() - started
    return {"stages": {"outside fit (checks, split, model build, summary)": total - sum(profiler.seconds.values()),
                       **profiler.seconds},
            "total_seconds": total, "steady_steps": profiler.steps}


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


def bare_network(config: RunConfig, channels: int, n_outputs: int) -> keras.Model:
    """The same network as seglib's (same builder and options), compiled as a user would without
    seglib: Adam at the same rate and binary cross-entropy, no metrics, no clipping."""
    model = build_model(dataclasses.replace(config, structures=config.structures[:n_outputs]), channels=channels)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=keras.losses.BinaryCrossentropy())
    return model


# --- seglib against the bare network, end to end ------------------------------------------------


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
    run = train(config, scratch / "seglib", verbose=0)
    seglib_seconds = time.perf_counter() - started
    seglib_dice = test_dice(load_run_model(run), test, config, config.side_aware, standardised=True)

    keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()
    images, masks = _arrays(records_in(records, split, "train"), config, side_aware=False)
    bare = bare_network(config, channels=1, n_outputs=masks.shape[-1])
    bare.fit(images, masks, batch_size=config.batch_size, epochs=config.epochs, shuffle=True, verbose=0)
    bare_seconds = time.perf_counter() - started
    bare_dice = test_dice(bare, test, config, side_aware=False, standardised=False)
    return {"seglib": {"dice": seglib_dice, "seconds": seglib_seconds,
                       "epochs": json.loads((run / "summary.json").read_text())["epochs_run"]},
            "bare": {"dice": bare_dice, "seconds": bare_seconds, "epochs": config.epochs},
            "time_ratio": seglib_seconds / bare_seconds, "n_train": len(images), "n_test": len(test)}


def _arrays(records, config: RunConfig, side_aware: bool) -> tuple[np.ndarray, np.ndarray]:
    examples = [load_example(record, config.structures, config.image_size, side_aware) for record in records]
    return np.stack([image for image, _ in examples]), np.stack([masks for _, masks in examples])


def test_dice(model: keras.Model, records, config: RunConfig, side_aware: bool, standardised: bool) -> float:
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
        data = Path(data).resolve() if data else _phantom_dataset(profile, Path(scratch) / "data")
        config = profile_config(profile, data=str(data), structures=(structure,))
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


# --- Inference ----------------------------------------------------------------------------------


def measure_inference(config: RunConfig, runs_folder: Path, calls: int) -> dict:
    """Images/s and latency of single-image predictions, per input size, without and with flip TTA."""
    predictor = Predictor([untrained_run(config, structure, runs_folder / structure)
                           for structure in PREDICTED_STRUCTURES])
    results = {}
    for size in PREDICTION_IMAGE_SIZES:
        image = make_pelvis(phantom_rng(config.seed, 0), size).image
        for tta in (False, True):
            results[_inference_key(size, tta)] = _prediction_latency(predictor, image, tta, calls)
    return results


def _inference_key(size: int, tta: bool) -> str:
    return f"{size}px_tta" if tta else f"{size}px"


def untrained_run(config: RunConfig, structure: str, run_dir: Path) -> Path:
    """A run directory the Predictor loads (config.json + model.keras) without training for it."""
    run_config = dataclasses.replace(config, structures=(structure,))
    write_text(run_dir / "config.json", run_config.to_json())
    with mixed_precision(run_config.mixed_precision):
        model = compile_model(run_config)
    # A trained run's file holds the optimizer's state; without it loading warns of a mismatch.
    model.optimizer.build(model.trainable_variables)
    model.save(run_dir / "model.keras")
    return run_dir


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


# --- Machine ------------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    """The process's peak resident memory so far (everything it did before the benchmark too)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def system_info() -> dict:
    threading = tf.config.threading
    return {
        "devices": ", ".join(device.name for device in tf.config.list_physical_devices()),
        "cpu_model": cpu_model(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version(),
        # 0 means TensorFlow's default: one thread per usable core.
        "intra_op_threads": threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": threading.get_inter_op_parallelism_threads(),
        "thread_environment": " ".join(f"{name}={os.environ[name]}" for name in _THREAD_VARIABLES
                                       if name in os.environ) or "none set",
    }


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS")


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux
        return platform.processor() or "unknown"
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else "unknown"


# --- Report -------------------------------------------------------------------------------------


def markdown_report(results: dict) -> str:
    return "\n".join([
        *_header(results), "",
        *_pipeline_section(results), "",
        *_training_section(results), "",
        *_breakdown_section(results), "",
        *_inference_section(results), "",
        *_machine_section(results), "",
        "## Method", "", *(f"- {line}" for line in _METHOD), "",
    ])


_METHOD = (
    "Input pipeline: `training_dataset` with augmentation and mirror flip, iterated alone. The first "
    "pass decodes, resizes and fills the in-memory cache; the cached rate is the mean of the later passes.",
    "Training: `model.fit` epochs on that same (already cached) pipeline; the first epoch traces the "
    "train step and is left out. The bare network is the same network (same builder and options) "
    "compiled with Adam + binary cross-entropy, no metrics and no clipping, and is fitted on one augmented "
    "epoch held in numpy arrays, in the same batches.",
    "Where the time goes: one `seglib.training.train` call on the same data, timed by a callback placed first: "
    "train steps (input waits included: Keras fetches batches inside the step), the Python loop between "
    "steps, validation, and the other callbacks at each epoch end (history log, best-model checkpoint, "
    "learning rate, early stopping, resume backup).",
    "Both models train under the training run's settings: seeded, op determinism as in the profile.",
    "Inference: single-image `Predictor.probabilities` calls (pre-processing, model, resize back to the "
    f"image's size) after {WARM_UP_CALLS} warm-up calls. The predictor holds a left_hip and a right_hip run, "
    "so each call segments both; flip TTA doubles the model calls. The runs are compiled, untrained models "
    "saved with their config.json: the speed does not depend on the weights' values.",
    "Peak RSS is the whole process's peak, including whatever it did before the benchmark.",
)


def _header(results: dict) -> list[str]:
    setup = results["setup"]
    return [
        f"# seglib benchmarks: profile {results['profile']}", "",
        f"Measured {results['measured_at']} in {results['total_seconds']:.0f} s on "
        f"{results['system']['cpu_model']} ({results['system']['usable_cpus']} usable CPUs). "
        f"Data: {setup['data']}. Model input {setup['model_input_px']} px, U-Net depth "
        f"{setup['depth']} with {setup['base_filters']} base filters, batch {setup['batch_size']}, "
        f"loss {setup['loss']}, dtype policy {setup['dtype_policy']}.",
    ]


def _pipeline_section(results: dict) -> list[str]:
    pipeline, ratio = results["pipeline"], results["pipeline_over_training"]
    verdict = (f"The input pipeline is {ratio:.1f}× faster than training consumes."
               if ratio >= 1 else f"The input pipeline is slower than training consumes ({ratio:.2f}×): "
                                  "training waits for data.")
    return [
        "## Input pipeline", "",
        markdown_table(pd.DataFrame({
            "pass": ["first (decode, resize, cache, augment)", "cached steady state (augment only)"],
            "images/s": [f"{pipeline['first_pass_images_per_s']:.1f}", f"{pipeline['cached_images_per_s']:.1f}"],
        }), align="lr"), "",
        f"{verdict} Alone, the cached pipeline serves {pipeline['cached_images_per_s']:.1f} images/s; "
        f"training takes {results['training']['seglib_images_per_s']:.1f} images/s. During training "
        "both share the CPU, so the margin is what keeps the model from waiting for data.",
    ]


def _training_section(results: dict) -> list[str]:
    training = results["training"]
    return [
        "## Training", "",
        markdown_table(pd.DataFrame([
            _speed_row(f"seglib {results['setup']['downsampling']} U-Net ({results['setup']['loss']}, Dice metric, "
                       "gradient clipping, tf.data augmentation)", training["seglib_images_per_s"]),
            _speed_row("the same network bare (Adam, binary cross-entropy, numpy arrays)", training["bare_images_per_s"]),
        ]), align="lrr"), "",
        f"seglib / bare time per image: {training['seglib_over_bare_time_per_image']:.2f}×. Above 1× the "
        "difference is what seglib's extras cost (the loss, the metric, clipping, on-the-fly augmentation); "
        "at or below 1× they are free at this model size.",
    ]


def _breakdown_section(results: dict) -> list[str]:
    breakdown = results["breakdown"]
    total = breakdown["total_seconds"]
    rows = [{"stage": stage, "seconds": f"{seconds:.2f}", "share": f"{100 * seconds / total:.0f} %"}
            for stage, seconds in breakdown["stages"].items()]
    rows.append({"stage": "**total**", "seconds": f"{total:.2f}", "share": "100 %"})
    return [
        "## Where a training run's time goes", "",
        f"One `seglib.training.train` call of {1 + BENCH_SETTINGS[results['profile']].training_epochs} epochs "
        f"({breakdown['steady_steps']} steps after the first epoch), checkpoints, backups and validation included:", "",
        markdown_table(pd.DataFrame(rows), align="lrr"),
    ]


def _inference_section(results: dict) -> list[str]:
    rows = [_inference_row(results["inference"], size, tta) for size in PREDICTION_IMAGE_SIZES for tta in (False, True)]
    return [
        "## Inference", "",
        f"Single-image calls, left_hip + right_hip models, model input {results['setup']['model_input_px']} px.", "",
        markdown_table(pd.DataFrame(rows), align="llrrr"),
    ]


def _inference_row(inference: dict, size: int, tta: bool) -> str:
    measured = inference[_inference_key(size, tta)]
    return {"input image": f"{size} px", "flip TTA": "yes" if tta else "no",
            "images/s": f"{measured['images_per_s']:.1f}", "median ms": f"{measured['median_ms']:.1f}",
            "p95 ms": f"{measured['p95_ms']:.1f}"}


def _speed_row(model: str, images_per_s: float) -> dict:
    return {"model": model, "images/s": f"{images_per_s:.1f}", "ms per image": f"{1000 / images_per_s:.1f}"}


def _machine_section(results: dict) -> list[str]:
    system = results["system"]
    rows = {
        "devices": system["devices"], "CPU": system["cpu_model"], "usable CPUs": system["usable_cpus"],
        "TensorFlow / Keras / Python": f"{system['tensorflow']} / {system['keras']} / {system['python']}",
        "intra-op / inter-op threads (0 = one per core)":
            f"{system['intra_op_threads']} / {system['inter_op_threads']}",
        "thread environment variables": system["thread_environment"],
        "op determinism": results["setup"]["op_determinism"],
        "peak RSS": f"{results['peak_rss_mib']:.0f} MiB",
    }
    return ["## Machine", "", markdown_table(pd.DataFrame({"": list(rows), "value": list(rows.values())}))]
