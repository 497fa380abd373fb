"""The benchmark on the smoke profile: every measurement is a real number and the report says so."""

import math
import re

import pytest

from seglib.experiments.bench import build_bare_unet, run_benchmark


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "benchmarks.md"
    out.write_text("stale report\n")  # the report is a regenerated artifact: it must be replaced
    return run_benchmark("smoke", out=out), out.read_text()


def measurements(results: dict) -> dict[str, float]:
    """Every timed number, flattened to 'stage.name' keys."""
    flat = {"pipeline_over_training": results["pipeline_over_training"],
            "peak_rss_mib": results["peak_rss_mib"], "total_seconds": results["total_seconds"]}
    for stage in ("pipeline", "training"):
        flat.update({f"{stage}.{name}": value for name, value in results[stage].items()})
    for case, values in results["inference"].items():
        flat.update({f"inference.{case}.{name}": value for name, value in values.items()})
    return flat


def test_every_measurement_is_a_positive_finite_number(benchmark):
    results, _ = benchmark
    numbers = measurements(results)
    assert set(results["inference"]) == {"256px", "256px_tta", "512px", "512px_tta"}
    assert {"pipeline.first_pass_images_per_s", "pipeline.cached_images_per_s", "training.seglib_images_per_s",
            "training.bare_images_per_s", "training.seglib_over_bare_time_per_image"} <= set(numbers)
    bad = {name: value for name, value in numbers.items()
           if not (isinstance(value, float) and math.isfinite(value) and value > 0)}
    assert not bad


def test_latency_percentiles_are_ordered(benchmark):
    results, _ = benchmark
    assert all(case["median_ms"] <= case["p95_ms"] for case in results["inference"].values())


def test_report_has_every_section_and_replaces_the_old_one(benchmark):
    _, report = benchmark
    assert "stale report" not in report
    for section in ("# seglib benchmarks: profile smoke", "## Input pipeline", "## Training", "## Inference",
                    "## Machine", "## Method"):
        assert section in report
    assert "| 512 px | yes |" in report and "peak RSS" in report


def test_report_states_the_pipeline_to_training_ratio(benchmark):
    results, report = benchmark
    ratio = results["pipeline_over_training"]
    expected = results["pipeline"]["cached_images_per_s"] / results["training"]["seglib_images_per_s"]
    assert ratio == pytest.approx(expected)
    stated = re.search(r"The input pipeline is (?:slower than training consumes \()?([\d.]+)×", report)
    assert stated and float(stated.group(1)) == pytest.approx(ratio, abs=0.01 if ratio < 1 else 0.05)


def test_bare_unet_is_plain_keras_of_the_requested_size():
    model = build_bare_unet(32, depth=2, base_filters=4, n_outputs=1)
    assert model.output_shape == (None, 32, 32, 1)
    assert {type(layer).__name__ for layer in model.layers} == {
        "InputLayer", "Conv2D", "MaxPooling2D", "Conv2DTranspose", "Concatenate"}
    assert max(layer.filters for layer in model.layers if hasattr(layer, "filters")) == 16  # 4 * 2**2
