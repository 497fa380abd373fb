"""segment --ray (seglib.inference.archive on Ray Data), on a local Ray started by the tests: today's label maps,
an actor killed mid-run (ray.kill) still gives every film once, a killed driver's run is resumed."""

import os
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_archive import areas_of, killed_after, labels_of, one_film_at_a_time, write_films

from seglib.cli.commands import main
from seglib.inference import archive
from seglib.inference.archive import RaySegmenter, segment_archive

pytestmark = pytest.mark.slow  # a Ray start and actors that load TensorFlow: ~1 minute in all


def test_without_ray_the_option_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is not installed
    assert main(["segment", "--model", "pelvis", "--images", str(tmp_path), "--out", str(tmp_path / "out"),
                 "--ray"]) == 2
    assert capsys.readouterr().err == "error: --ray needs Ray: pip install 'seglib[ray]' (or pip install 'ray[data]')\n"
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def ray_address():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    return write_films(tmp_path_factory.mktemp("ray") / "images", 24, size=(48, 56), seed=3)


@pytest.fixture(scope="module")
def today(hip_runs, films, tmp_path_factory):
    return one_film_at_a_time(hip_runs, films, tmp_path_factory.mktemp("today") / "out")


class KilledOnce(RaySegmenter):
    """The actor is killed through Ray's API after its first batch's films are written, before the batch returns;
    Ray restarts it and gives it the batch again."""
    kills: Path  # a folder: one file per kill, so the test knows it happened

    def __call__(self, batch):
        import ray

        result = super().__call__(batch)
        context = ray.get_runtime_context()
        if not context.was_current_actor_reconstructed:
            (self.kills / str(os.getpid())).touch()
            ray.kill(context.current_actor, no_restart=False)
            time.sleep(10)  # killed meanwhile: this batch's result never arrives
        return result


def test_ray_gives_todays_label_maps_even_when_an_actor_is_killed_mid_run(ray_address, hip_runs, films, today,
                                                                          tmp_path, monkeypatch):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the actors cannot import the tests
    (tmp_path / "kills").mkdir()
    monkeypatch.setattr(KilledOnce, "kills", tmp_path / "kills", raising=False)
    monkeypatch.setattr(archive, "RaySegmenter", KilledOnce)
    out = segment_archive(hip_runs, films, tmp_path / "out", tta=True, threshold=0.3, ray=ray_address, workers=1,
                          batch_size=4)
    assert len(list((tmp_path / "kills").iterdir())) == 1  # killed once, restarted, finished
    areas = pd.read_csv(out / "areas.csv", dtype={"id": str})
    assert len(areas) == 2 * 24 and not areas.duplicated(["id", "structure"]).any()
    assert labels_of(out) == labels_of(today)
    pd.testing.assert_frame_equal(areas_of(out), areas_of(today))


def test_resume_after_a_killed_driver_segments_only_the_rest(ray_address, hip_runs, tmp_path):
    images = write_films(tmp_path / "images", 80, size=(64, 64), seed=4)
    out = tmp_path / "out"
    options = ["--runs", *map(str, hip_runs), "--images", str(images), "--out", str(out), "--quiet",
               "--ray", ray_address, "--batch-size", "2", "--overlays", "none"]
    before = killed_after(["segment", *options], out, 6)
    assert 6 <= len(before) < 80 and not (out / "areas.csv").exists()
    time.sleep(2)  # Ray ends the killed driver's actors
    before = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    assert main(["segment", *options, "--resume"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json") if p.name in before} == before
    areas = pd.read_csv(out / "areas.csv", dtype={"id": str})
    assert len(areas) == 2 * 80 and not areas.duplicated(["id", "structure"]).any()
    assert set(labels_of(out)) == {f"film{i:04d}" for i in range(80)}
    assert [p for p in Path(out).rglob(".*") if p.name != ".seglib-output"] == []
