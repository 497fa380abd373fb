"""The benchmark on the smoke profile: every measurement is a real number and the report says so."""

import math
import re

import pytest

from conftest import write_square_dataset

from seglib.cli import main
from seglib.config import profile_config
from seglib.experiments.bench import bare_network, run_benchmark
from seglib.training.fit import compile_model


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


def test_training_breakdown_accounts_for_the_whole_run(benchmark):
    results, report = benchmark
    breakdown = results["breakdown"]
    assert sum(breakdown["stages"].values()) == pytest.approx(breakdown["total_seconds"], rel=1e-6)
    assert breakdown["stages"]["train steps"] > 0 and breakdown["stages"]["validation"] > 0
    assert breakdown["steady_steps"] > 0
    assert "## Where a training run's time goes" in report and "| epoch-end callbacks |" in report


@pytest.mark.parametrize("downsampling", ["maxpool", "strided"])
def test_bare_network_is_seglibs_network_without_the_training_extras(downsampling):
    config = profile_config("smoke", structures=("left_hip",), downsampling=downsampling)
    ours, bare = compile_model(config), bare_network(config, channels=2, n_outputs=1)
    assert [type(layer) for layer in bare.layers] == [type(layer) for layer in ours.layers]
    assert bare.count_params() == ours.count_params()
    assert type(bare.loss).__name__ == "BinaryCrossentropy" and not bare.optimizer.clipnorm


def test_bench_compare_prints_both_dice_and_the_time_ratio(tmp_path, capsys):
    data = write_square_dataset(tmp_path / "squares", n=14, size=32)
    files_before = sorted(data.rglob("*"))
    assert main(["bench", "--compare", "--profile", "smoke", "--data", str(data), "--structure", "left_thing"]) == 0
    printed = capsys.readouterr().out
    rows = {name: (float(dice), float(seconds)) for name, dice, seconds
            in re.findall(r"(seglib default|bare Keras): +test Dice ([\d.]+) +([\d.]+) s", printed)}
    assert set(rows) == {"seglib default", "bare Keras"}
    assert all(0 <= dice <= 1 and seconds > 0 for dice, seconds in rows.values())
    ratio = float(re.search(r"seglib / bare time: ([\d.]+)x", printed).group(1))
    assert ratio == pytest.approx(rows["seglib default"][1] / rows["bare Keras"][1], abs=0.02)
    assert sorted(data.rglob("*")) == files_before, "the comparison writes nothing into the dataset"
