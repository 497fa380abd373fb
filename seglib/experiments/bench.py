"""How fast the three stages a user waits for run on this machine: the tf.data input pipeline,
training, and prediction. `run_benchmark` measures them on phantom data and writes a markdown
report (python -m seglib bench).

Method, in short (the report repeats it):
- The data is generated into a temporary folder with the profile's phantom size, unless a
  dataset folder is given (it needs left_hip and right_hip masks: training uses mirror flips).
- Every stage runs the profile's RunConfig (target left_hip) under the same settings as
  `seglib.training.fit.train`: seeds, op determinism, dtype policy. One device, no distribution strategy.
- Input pipeline: `training_data` as training builds it (augmentation and mirror flip on),
  iterated alone: the first pass decodes, resizes and fills the cache; later passes only augment.
- Training: whole epochs of `model.fit`, the first one (tf.function tracing) left out. The same
  cached pipeline object is used, so no timed epoch decodes. The reference is the same network
  compiled bare (Adam + binary cross-entropy, no metrics, no clipping) and fitted on one augmented
  epoch held as numpy arrays: what a user would otherwise write.
- Where the time goes: one real `train` call of a few epochs, split into stages (TrainingProfiler).
- `--compare` (seglib.experiments.bare_network_comparison): seglib's whole default training against the bare network fitted
  on arrays, end to end, with the test Dice of both.
- Inference: single-image `Predictor.probabilities` calls, pre- and post-processing included, on
  phantom images of 256 and 512 px. The predictor holds a left_hip and a right_hip run (flip TTA
  needs both); those runs are compiled but untrained models saved with their config, since
  the weights' values do not change the speed.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from seglib.config import PHANTOM_SIZES, RunConfig, profile_config
from seglib.data.io import write_text
from seglib.data.layout import load_records
from seglib.data.outputs import check_output_file, first_line
from seglib.experiments.bench_report import markdown_report
from seglib.experiments.bench_timing import (
    PREDICTED_STRUCTURES,
    measure_breakdown,
    measure_inference,
    measure_pipeline,
    measure_training,
)
from seglib.experiments.host import peak_rss_mib, system_info
from seglib.phantom.dataset import write_profile_phantoms
from seglib.progress import progress_bar
from seglib.training.fit import set_determinism, structures_to_load, training_data
from seglib.training.hardware import mixed_precision


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


def run_benchmark(profile: str, out: str | Path, data: str | Path | None = None, force: bool = False) -> dict:
    """Measure the input pipeline, training and inference; write the markdown report to `out` and
    return the numbers. `out` is checked before measuring: an existing file is replaced only with
    `force`, and only when it is a benchmark report (never a user's notes)."""
    check_output_file(out, [data], force, kind="benchmark report written by bench",
                      written_by_seglib=is_benchmark_report)
    started, measured_at = time.perf_counter(), f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    # the profile's network trained from random weights (the numbers in reports/benchmarks.md); a run started
    # from the shipped pelvis model steps at the speed of its working resolution
    config = profile_config(profile, structures=PREDICTED_STRUCTURES[:1], init="none")
    settings = BENCH_SETTINGS[profile]
    with tempfile.TemporaryDirectory(prefix="seglib-bench-") as scratch, \
            progress_bar(4, "bench", unit="stage") as stages:  # the four measured below
        generation_s = None
        if not data:
            generation_started = time.perf_counter()
            config = dataclasses.replace(config, data=str(write_profile_phantoms(Path(scratch) / "data", profile)))
            generation_s = time.perf_counter() - generation_started
        else:
            config = dataclasses.replace(config, data=str(data))
        set_determinism(config.seed, config.deterministic)
        records = load_records(config.data, structures_to_load(config))
        dataset = training_data(config, records, config.batch_size)
        results = {"profile": profile, "measured_at": measured_at,
                   "setup": _setup(config, records, _data_description(profile, data, generation_s))}
        results["pipeline"] = measure_pipeline(dataset, len(records), settings.cached_passes)
        stages.update()
        results["training"] = measure_training(config, dataset, len(records), settings.training_epochs)
        stages.update()
        results["breakdown"] = measure_breakdown(config, Path(scratch) / "run", 1 + settings.training_epochs)
        stages.update()
        results["inference"] = measure_inference(config, Path(scratch) / "runs", settings.prediction_calls)
        stages.update()
    results["pipeline_over_training"] = (results["pipeline"]["cached_images_per_s"]
                                         / results["training"]["seglib_images_per_s"])
    results["peak_rss_mib"] = peak_rss_mib()
    results["system"] = system_info()
    results["total_seconds"] = time.perf_counter() - started
    write_text(out, markdown_report(results), overwrite=force)
    return results


def is_benchmark_report(path: str | Path) -> bool:
    """Whether `path` is a report run_benchmark wrote (recognised by its title, see bench_report)."""
    return first_line(Path(path)).startswith("# seglib benchmarks: profile ")


def default_report_path(profile: str) -> Path:
    """One generated report per profile, beside the hand-written reports/benchmarks.md it never replaces."""
    return Path("reports/benchmarks") / f"{profile}.md"


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
