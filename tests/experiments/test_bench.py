"""The benchmark on the smoke profile: every measurement is a real number and the report says so."""

import math
import re

import pytest
from conftest import write_square_dataset

from seglib.cli import main
from seglib.config import profile_config
from seglib.data.outputs import UnsafeOutput
from seglib.experiments import bench, bench_report, bench_timing
from seglib.experiments.bare_network_comparison import bare_network
from seglib.experiments.bench import run_benchmark
from seglib.training.fit import compile_model


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "benchmarks.md"
    out.write_text("# seglib benchmarks: profile smoke\n\nstale report\n")  # an earlier report: force replaces it
    return run_benchmark("smoke", out=out, force=True), out.read_text()


@pytest.mark.parametrize("force", [False, True])
def test_a_file_that_is_not_a_benchmark_report_is_refused_before_measuring(tmp_path, monkeypatch, force):
    monkeypatch.setattr(bench, "write_profile_phantoms", lambda *a, **k: pytest.fail("measured before the check"))
    notes = tmp_path / "notes.md"
    notes.write_text("# my notes\n")
    with pytest.raises(UnsafeOutput) as refusal:
        run_benchmark("smoke", out=notes, force=force)
    assert str(refusal.value).startswith(f"{notes}: ") and "\n" not in str(refusal.value)
    assert notes.read_text() == "# my notes\n"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.md"]


def measurements(results: dict) -> dict[str, float]:
    """Every timed number, flattened to 'stage.name' keys."""
    flat = {"pipeline_over_training": results["pipeline_over_training"],
            "peak_rss_mib": results["peak_rss_mib"], "total_seconds": results["total_seconds"]}
    for stage in ("pipeline", "training"):
        flat.update({f"{stage}.{name}": value for name, value in results[stage].items()})
    for case, values in results["inference"].items():
        flat.update({f"inference.{case}.{name}": value for name, value in values.items()})
    return flat


@pytest.mark.slow
def test_every_measurement_is_a_positive_finite_number(benchmark):
    results, _ = benchmark
    numbers = measurements(results)
    assert set(results["inference"]) == {"256px", "256px_tta", "512px", "512px_tta"}
    assert {"pipeline.first_pass_images_per_s", "pipeline.cached_images_per_s", "training.seglib_images_per_s",
            "training.bare_images_per_s", "training.seglib_over_bare_time_per_image"} <= set(numbers)
    bad = {name: value for name, value in numbers.items()
           if not (isinstance(value, float) and math.isfinite(value) and value > 0)}
    assert not bad


class ScheduledPredictor:
    """Stands in for a Predictor: each call takes the next duration of `schedule` on a fake clock."""

    def __init__(self, schedule, clock):
        self.schedule, self.clock = iter(schedule), clock

    def probabilities(self, image, tta=False):
        self.clock[0] += next(self.schedule)


def test_latency_is_the_median_and_95th_percentile_of_the_timed_calls(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(bench_timing.time, "perf_counter", lambda: clock[0])
    # The warm-up calls are slow (graph tracing) and must not count; one timed call of 20 is an outlier.
    schedule = [5.0] * bench_timing.WARM_UP_CALLS + [0.010] * 19 + [0.500]
    latency = bench_timing._prediction_latency(ScheduledPredictor(schedule, clock), image=None, tta=False, calls=20)
    assert latency["median_ms"] == pytest.approx(10.0)
    assert latency["p95_ms"] == pytest.approx(10.0 + 0.05 * 490.0)  # numpy's linear interpolation
    assert latency["images_per_s"] == pytest.approx(20 / (19 * 0.010 + 0.500))


@pytest.mark.slow
def test_report_has_every_section_and_replaces_the_old_one(benchmark):
    _, report = benchmark
    assert "stale report" not in report
    for section in ("# seglib benchmarks: profile smoke", "## Input pipeline", "## Training", "## Inference",
                    "## Machine", "## Method"):
        assert section in report
    assert "| 512 px | yes |" in report and "peak RSS" in report


@pytest.mark.slow
@pytest.mark.parametrize("ratio, verdict", [(3.04, "The input pipeline is 3.0× faster than training consumes."),
                                            (0.5, "The input pipeline is slower than training consumes (0.50×)")])
def test_report_says_whether_the_pipeline_keeps_up_with_training(benchmark, ratio, verdict):
    results, _ = benchmark
    assert verdict in bench_report.markdown_report({**results, "pipeline_over_training": ratio})


def _fake_fit(clock, profiler, epochs=2, steps=2):
    """The callback events of `model.fit`, each after a known time on the fake clock: per epoch 0.5 s of
    Python before each step, 2 s per step, 0.25 s before validation, 1 s of validation, 0.125 s of
    epoch-end callbacks."""
    def after(seconds, event, *args):
        clock[0] += seconds
        getattr(profiler, event)(*args)

    for epoch in range(epochs):
        after(0.125 if epoch else 0.0, "on_epoch_begin", epoch)
        for step in range(steps):
            after(0.5, "on_train_batch_begin", step)
            after(2.0, "on_train_batch_end", step)
        after(0.25, "on_test_begin")
        after(1.0, "on_test_end")
        after(0.0, "on_epoch_end", epoch)
    after(0.125, "on_train_end")


def test_training_breakdown_charges_each_interval_to_its_stage_and_the_rest_to_outside_fit(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(bench_timing.time, "perf_counter", lambda: clock[0])

    def fake_train(config, run_dir, verbose, callbacks):  # 3 s before fit (checks, build), 0.5 s after it
        clock[0] += 3.0
        _fake_fit(clock, callbacks[0])
        clock[0] += 0.5

    monkeypatch.setattr(bench_timing, "train", fake_train)
    breakdown = bench_timing.measure_breakdown(profile_config("smoke"), run_dir=None, epochs=2)
    # The first epoch (tracing) is kept apart whole: 2 x (0.5 + 2) + 0.25 + 1 + its callbacks 0.125.
    assert breakdown["stages"] == {"outside fit (checks, split, model build, calibration, summary)": pytest.approx(3.5),
                                   "first epoch (decode and cache, tracing)": pytest.approx(6.375),
                                   "train steps": pytest.approx(4.0), "Python between steps": pytest.approx(1.25),
                                   "validation": pytest.approx(1.0), "epoch-end callbacks": pytest.approx(0.125)}
    assert breakdown["total_seconds"] == pytest.approx(16.25) and breakdown["steady_steps"] == 2


@pytest.mark.slow
def test_report_shows_where_a_training_runs_time_goes(benchmark):
    results, report = benchmark
    assert results["breakdown"]["stages"]["train steps"] > 0 and results["breakdown"]["steady_steps"] > 0
    assert "## Where a training run's time goes" in report and "| epoch-end callbacks |" in report


@pytest.mark.parametrize("downsampling", ["maxpool", "strided"])
def test_bare_network_is_seglibs_network_without_the_training_extras(downsampling):
    config = profile_config("smoke", structures=("left_hip",), downsampling=downsampling)
    ours, bare = compile_model(config), bare_network(config, channels=2, n_outputs=1)
    assert [type(layer) for layer in bare.layers] == [type(layer) for layer in ours.layers]
    assert bare.count_params() == ours.count_params()
    assert type(bare.loss).__name__ == "BinaryCrossentropy" and not bare.optimizer.clipnorm


@pytest.mark.slow
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
    seglib, bare = rows["seglib default"][1], rows["bare Keras"][1]  # each printed to 0.1 s
    assert (seglib - 0.05) / (bare + 0.05) - 0.005 <= ratio <= (seglib + 0.05) / (bare - 0.05) + 0.005
    assert sorted(data.rglob("*")) == files_before, "the comparison writes nothing into the dataset"
