"""The benchmark's results as a markdown report (reports/benchmarks/<profile>.md)."""

from __future__ import annotations

import pandas as pd

from seglib.experiments.bench_timing import PREDICTION_IMAGE_SIZES, WARM_UP_CALLS, inference_key
from seglib.reporting.tables import markdown_table


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
    "saved with their config: the speed does not depend on the weights' values.",
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
        f"One `seglib.training.train` call of {breakdown['epochs']} epochs "
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


def _inference_row(inference: dict, size: int, tta: bool) -> dict:
    measured = inference[inference_key(size, tta)]
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
