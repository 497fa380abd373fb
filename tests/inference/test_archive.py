"""segment on an archive (seglib.inference.archive): the streaming path gives today's label maps, a run killed
at any moment and resumed has every film once, shards cover a folder once, memory follows the batch, a bad film
fails alone (listed, retried by --resume), and a resumed run is the same model."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from conftest import untrained_run, write_dicom_film

from seglib.cli.commands import main
from seglib.data.io import read_image, write_png
from seglib.inference.archive import done_ids, in_shard, segment_archive
from seglib.inference.film_checks import degenerate_reason
from seglib.inference.fusion import fuse
from seglib.inference.measurements import AREA_COLUMNS, area_rows
from seglib.inference.predictor import Predictor
from seglib.reporting.plots import overlay_rgb

ROOT = Path(__file__).resolve().parents[2]


def write_films(folder: Path, n: int, size=(40, 48), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = (size[0] + i % 5, size[1] + i % 3)  # sizes differ, as in an archive
        write_png(folder / f"film{i:04d}.png", rng.integers(0, 65535, shape, dtype=np.uint16))
    return folder


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    folder = write_films(tmp_path_factory.mktemp("films") / "images", 12)
    write_png(folder / "blank.png", np.full((30, 30), 900, np.uint16))  # not segmentable: flagged
    return folder


def one_film_at_a_time(runs, images: Path, out: Path) -> Path:
    """The reference the batches must equal: each film alone through the single-film API
    (Predictor.probabilities with flip TTA, fuse at threshold 0.3), written as segment writes its label maps,
    overlays, areas.csv and labels.json."""
    predictor, rows = Predictor(runs), []
    for path in sorted(images.glob("*.png")):
        image = read_image(path)
        probabilities, passes = predictor.probabilities(image, tta=True, passes=True)
        fused = fuse(probabilities, threshold=0.3)
        write_png(out / "labels" / path.name, fused.label_map)
        write_png(out / "overlays" / path.name, overlay_rgb(image, fused.masks))
        warning = None if passes is not None else degenerate_reason(image)
        rows += area_rows(path.stem, fused.masks, fused.contested, None, warning)
    pd.DataFrame(rows, columns=AREA_COLUMNS).to_csv(out / "areas.csv", index=False)
    (out / "labels.json").write_text(json.dumps(fused.labels))
    return out


@pytest.fixture(scope="module")
def today(hip_runs, films, tmp_path_factory):
    return one_film_at_a_time(hip_runs, films, tmp_path_factory.mktemp("today") / "out")


def segment(hip_runs, images, out, *options) -> list[str]:
    return ["segment", "--runs", *map(str, hip_runs), "--images", str(images), "--out", str(out), "--tta",
            "--threshold", "0.3", "--quiet", *options]


def labels_of(folder: Path) -> dict[str, bytes]:
    return {p.stem: read_image(p).tobytes() for p in sorted((folder / "labels").glob("*.png"))}


def areas_of(folder: Path) -> pd.DataFrame:
    table = pd.read_csv(folder / "areas.csv", dtype={"id": str}, keep_default_na=False)
    return table.sort_values(["id", "structure"]).reset_index(drop=True)


def test_the_streaming_path_writes_todays_label_maps_overlays_and_areas(hip_runs, films, today, tmp_path):
    out = tmp_path / "out"
    assert main(segment(hip_runs, films, out, "--batch-size", "3")) == 0
    assert labels_of(out) == labels_of(today) and len(labels_of(out)) == 13
    for film in films.glob("*.png"):
        np.testing.assert_array_equal(read_image(out / "overlays" / film.name), read_image(today / "overlays" / film.name))
    pd.testing.assert_frame_equal(areas_of(out), areas_of(today))
    assert json.loads((out / "labels.json").read_text()) == json.loads((today / "labels.json").read_text())


def test_overlays_for_none_or_only_flagged_films(hip_runs, films, today, tmp_path):
    assert main(segment(hip_runs, films, tmp_path / "none", "--overlays", "none")) == 0
    assert not (tmp_path / "none" / "overlays").exists() and len(labels_of(tmp_path / "none")) == 13
    assert main(segment(hip_runs, films, tmp_path / "flagged", "--overlays", "flagged")) == 0
    quality = pd.read_csv(tmp_path / "flagged" / "quality.csv", dtype={"id": str}, keep_default_na=False)
    flagged = set(quality.loc[quality["flag"] == 1, "id"])  # the quality estimate's flag says who should look
    assert "blank" in flagged and set(quality.loc[quality["warning"] != "", "id"]) <= flagged
    assert {p.stem for p in (tmp_path / "flagged" / "overlays").glob("*.png")} == flagged


def killed_after(arguments, out: Path, films: int) -> dict[str, int]:
    """`python -m seglib ARGUMENTS` killed (SIGKILL) once `films` films of OUT are done: record -> mtime."""
    run = subprocess.Popen([sys.executable, "-m", "seglib", *arguments], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(done_ids(out)) < films and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    return {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}


def test_a_run_killed_midway_and_resumed_has_every_film_exactly_once(hip_runs, tmp_path):
    images = write_films(tmp_path / "images", 100, size=(64, 64), seed=1)
    out = tmp_path / "out"
    before = killed_after(segment(hip_runs, images, out, "--batch-size", "2"), out, 10)
    assert 10 <= len(before) < 100 and not (out / "areas.csv").exists()

    assert main(segment(hip_runs, images, out)) == 2  # not without --resume: said in one line
    assert main(segment(hip_runs, images, out, "--resume")) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json") if p.name in before} == before
    areas = pd.read_csv(out / "areas.csv", dtype={"id": str})
    assert len(areas) == 2 * 100 and not areas.duplicated(["id", "structure"]).any()
    assert set(areas["id"]) == {f"film{i:04d}" for i in range(100)} == set(labels_of(out))
    hidden = [p for p in out.rglob(".*") if p.name != ".seglib-output"]
    assert hidden == []  # no half-written file left
    reference = one_film_at_a_time(hip_runs, images, tmp_path / "reference")
    # The resumed run's batches pair other films than one run's: float sums in another order may move a pixel
    # that lies on the threshold, nothing more.
    for (image_id, ours), theirs in zip(labels_of(out).items(), labels_of(reference).values()):
        differing = np.count_nonzero(np.frombuffer(ours, np.uint8) != np.frombuffer(theirs, np.uint8))
        assert differing <= 0.005 * len(ours), image_id


def test_a_run_stopped_after_its_tables_but_before_labels_json_is_finished_by_resume(hip_runs, films, tmp_path):
    out = tmp_path / "out"
    assert main(segment(hip_runs, films, out, "--overlays", "none")) == 0
    tables = {name: (out / name).read_bytes() for name in ("areas.csv", "quality.csv")}
    (out / "labels.json").unlink()  # as a kill or a full disk between the tables and labels.json leaves it
    assert main(segment(hip_runs, films, out, "--overlays", "none", "--resume")) == 0
    assert (out / "labels.json").is_file()
    assert {name: (out / name).read_bytes() for name in tables} == tables


def test_resume_continues_only_its_own_run(hip_runs, films, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(segment(hip_runs, films, out, "--overlays", "none")) == 0
    written = labels_of(out)
    assert main(segment(hip_runs, films, out, "--overlays", "none", "--resume")) == 0  # complete: nothing to do
    assert "complete already" in capsys.readouterr().err
    assert main([*segment(hip_runs, films, out, "--overlays", "none", "--resume"), "--threshold", "0.4"]) == 2
    assert capsys.readouterr().err == (f"error: {out}: was segmented with threshold 0.3, not 0.4; resume with the "
                                       "same options, or choose another --out\n")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    assert main(segment(hip_runs, films, theirs, "--resume")) == 2
    assert "was not written by seglib segment" in capsys.readouterr().err
    assert (theirs / "notes.txt").read_text() == "mine" and labels_of(out) == written


def test_force_refuses_a_finished_folder_holding_a_users_file(hip_runs, films, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(segment(hip_runs, films, out, "--overlays", "none")) == 0
    assert main(segment(hip_runs, films, out, "--overlays", "none", "--force")) == 0  # as written: replaced
    (out / "labels" / "notes.txt").write_text("checked by hand")
    assert main(segment(hip_runs, films, out, "--overlays", "none", "--force")) == 2
    assert "holds files added or changed since seglib segment wrote it (labels/notes.txt)" in capsys.readouterr().err
    assert (out / "labels" / "notes.txt").is_file()


def test_shards_cover_a_folder_exactly_once_and_merge_joins_them(hip_runs, films, today, tmp_path, capsys):
    ids = {p.stem for p in films.glob("*.png")}
    shares = [{i for i in ids if in_shard(i, (k, 3))} for k in (1, 2, 3)]
    assert sum(map(len, shares)) == len(ids) and set.union(*shares) == ids and all(shares)
    folders = [tmp_path / f"shard{k}" for k in (1, 2, 3)]
    for k, folder in enumerate(folders, 1):
        assert main(segment(hip_runs, films, folder, "--shard", f"{k}/3", "--overlays", "none")) == 0
        assert set(labels_of(folder)) == shares[k - 1]
    capsys.readouterr()
    assert main(["merge", str(folders[0]), str(folders[2]), "--out", str(tmp_path / "merged")]) == 2
    assert capsys.readouterr().err == "error: shard 2/3 is missing; give all 3 shard folders\n"
    assert main(["merge", *map(str, folders), "--out", str(tmp_path / "merged")]) == 0
    pd.testing.assert_frame_equal(areas_of(tmp_path / "merged"), areas_of(today))
    where = pd.read_csv(tmp_path / "merged" / "films.csv", dtype=str)
    assert sorted(where["id"]) == sorted(ids)
    assert all(Path(row.folder) == folders[next(k for k in range(3) if row.id in shares[k])].resolve()
               for row in where.itertuples())


def test_a_list_of_films_is_read_from_a_text_file_or_a_csv(hip_runs, films, today, tmp_path, capsys):
    def from_list(list_file, out):
        arguments = segment(hip_runs, films, out, "--overlays", "none")
        arguments[arguments.index("--images")] = "--images-list"
        arguments[arguments.index("--images-list") + 1] = str(list_file)
        return arguments

    listed = tmp_path / "films.txt"
    listed.write_text("# the archive\n" + "".join(f"{p}\n" for p in sorted(films.glob("*.png"))))
    assert main(from_list(listed, tmp_path / "a")) == 0
    assert labels_of(tmp_path / "a") == labels_of(today)
    table = tmp_path / "films.csv"
    table.write_text("id,path\nfirst,images/film0000.png\nsecond,images/nowhere.png\n")
    (tmp_path / "images").symlink_to(films)
    capsys.readouterr()
    assert main(from_list(table, tmp_path / "b")) == 2  # a film gone from the archive fails alone
    assert f"error: {tmp_path / 'images' / 'nowhere.png'}: file not found; not segmented" in capsys.readouterr().err
    assert set(labels_of(tmp_path / "b")) == {"first"}
    assert failures_of(tmp_path / "b") == {"second": "file not found"}
    table.write_text("id,path\nfirst,images/film0000.png\nsecond,images/notes.txt\n")
    assert main(from_list(table, tmp_path / "c")) == 2  # what the list itself gets wrong: refused up front
    assert capsys.readouterr().err.startswith(f"error: {table} line 3: images/notes.txt is not an image file")
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_memory_follows_the_batch_not_the_archive(hip_runs, tmp_path):
    """2000 films: the memory at its peak is that of a few batches, a small part of the archive's."""
    images = write_films(tmp_path / "images", 2000, size=(64, 64))
    tracemalloc.start()
    try:
        segment_archive(hip_runs, images, tmp_path / "out", overlays="none", batch_size=8)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(done_ids(tmp_path / "out")) == 2000
    held = 2000 * 64 * 64 * (2 + 2 * 4)  # every film and its two probability maps, were they kept: 82 MB
    assert peak < held / 4, peak


def test_resume_of_a_complete_folder_segments_films_added_since(hip_runs, tmp_path):
    images = write_films(tmp_path / "images", 3, seed=7)
    out = tmp_path / "out"
    assert main(segment(hip_runs, images, out, "--overlays", "none")) == 0
    write_png(images / "late.png", read_image(images / "film0000.png")[::-1])  # a film that arrived later
    assert main(segment(hip_runs, images, out, "--overlays", "none", "--resume")) == 0
    assert set(labels_of(out)) == {"film0000", "film0001", "film0002", "late"}
    assert set(areas_of(out)["id"]) == set(labels_of(out))


def test_two_processes_never_write_one_folder(hip_runs, films, tmp_path, capsys):
    """A Slurm array given one --out for every job, or a requeued job beside the first: refused, not mixed."""
    from seglib.data.outputs import writing_alone

    out = tmp_path / "out"
    assert main(segment(hip_runs, films, out, "--overlays", "none")) == 0
    (out / "labels.json").unlink()  # unfinished again: a --resume would write into it
    with writing_alone(out):  # another process holds it (this one, for the test)
        (out / ".seglib-lock").write_text("1\n")  # pid 1 always runs
        assert main(segment(hip_runs, films, out, "--overlays", "none", "--resume")) == 2
        assert "is being written by another seglib process (1)" in capsys.readouterr().err
    (out / ".seglib-lock").write_text(f"{2**22 + 1}\n")  # a killed process's lock is taken over
    assert main(segment(hip_runs, films, out, "--overlays", "none", "--resume")) == 0
    assert not (out / ".seglib-lock").exists() and (out / "labels.json").is_file()


def failures_of(folder: Path) -> dict[str, str]:
    table = pd.read_csv(folder / "failed.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == ["id", "path", "problem"]
    return dict(zip(table["id"], table["problem"]))


def test_bad_films_fail_alone_are_listed_and_resume_tries_them_again(hip_runs, tmp_path, capsys):
    images = write_films(tmp_path / "images", 6, seed=2)
    good = (images / "film0000.png").read_bytes()
    (images / "cut.png").write_bytes(good[: len(good) // 2])  # a copy stopped half-way
    (images / "notes.dcm").write_text("not a DICOM file")
    with_pixels = write_dicom_film(images / "header.dcm", (40, 48)).read_bytes()
    film = pydicom.dcmread(images / "header.dcm")
    del film.PixelData  # a DICOM without pixels (as a structured report, or a header sent alone)
    film.save_as(images / "header.dcm")
    out = tmp_path / "out"

    assert main(segment(hip_runs, images, out, "--batch-size", "4")) == 2
    err = capsys.readouterr().err.splitlines()
    named = [line for line in err if line.startswith("error: ") and "not segmented" in line]
    assert sorted(line.split(": ")[1] for line in named) == sorted(str(images / n) for n in
                                                                   ("cut.png", "notes.dcm", "header.dcm"))
    assert err[-1] == (f"error: 3 of 9 film(s) could not be segmented (e.g. cut), listed with their problem in "
                       f"{out / 'failed.csv'}; the others are done. Mend or remove them and run the same command "
                       "with --resume")
    good_ids = {f"film{i:04d}" for i in range(6)}
    assert set(labels_of(out)) == good_ids == set(areas_of(out)["id"])
    problems = failures_of(out)
    assert set(problems) == {"cut", "notes", "header"}
    assert problems["cut"].startswith("cannot read image") and problems["notes"].startswith("cannot read DICOM")
    assert "Pixel Data" in problems["header"]
    assert main(["merge", str(out), "--out", str(tmp_path / "merged")]) == 0  # a finished folder: its tables join
    assert failures_of(tmp_path / "merged") == problems
    assert "3 film(s) of the shards could not be segmented" in capsys.readouterr().err

    (images / "cut.png").write_bytes(good)  # mended (or the file system is back)
    (images / "header.dcm").write_bytes(with_pixels)
    assert main(segment(hip_runs, images, out, "--resume")) == 2
    err = capsys.readouterr().err
    assert "6 films done, 3 to segment (3 that failed, tried again)" in err and "1 of 9 film(s)" in err
    assert set(labels_of(out)) == good_ids | {"cut", "header"} == set(areas_of(out)["id"])
    assert not areas_of(out).duplicated(["id", "structure"]).any()
    assert list(failures_of(out)) == ["notes"]

    (images / "notes.dcm").unlink()  # not a film: removed from the archive
    assert main(segment(hip_runs, images, out, "--resume")) == 0
    assert failures_of(out) == {} and set(labels_of(out)) == good_ids | {"cut", "header"}
    assert [p for p in out.rglob(".*") if p.name != ".seglib-output"] == []


def test_shards_failures_are_joined_by_merge(hip_runs, tmp_path, capsys):
    images = write_films(tmp_path / "images", 4, seed=3)
    for name in ("a", "b", "c", "d"):  # films that cannot be read, spread over the shards by their ids
        (images / f"{name}.png").write_text("not a PNG")
    shards = [tmp_path / "shard1", tmp_path / "shard2"]
    for k, folder in enumerate(shards, 1):
        assert main(segment(hip_runs, images, folder, "--shard", f"{k}/2", "--overlays", "none")) == 2
    assert all(failures_of(folder) for folder in shards)
    capsys.readouterr()
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "merged")]) == 0
    assert sorted(failures_of(tmp_path / "merged")) == ["a", "b", "c", "d"]
    assert capsys.readouterr().err.startswith("4 film(s) of the shards could not be segmented")
    assert len(areas_of(tmp_path / "merged")) == 2 * 4


def test_resume_refuses_another_model_at_the_same_path_and_follows_a_moved_one(tmp_path, capsys):
    """Retrained weights written over the run (or a replaced shipped model) are another model: never mixed."""
    runs = [untrained_run(tmp_path / "left", ("left_hip",), side_aware=False, seed=0),
            untrained_run(tmp_path / "right", ("right_hip",), side_aware=False, seed=1)]
    images = write_films(tmp_path / "images", 4, seed=5)
    out = tmp_path / "out"
    assert main(segment(runs, images, out, "--overlays", "none")) == 0
    (out / "labels.json").unlink()  # unfinished again, as a killed run leaves it
    moved = tmp_path / "moved"
    shutil.copytree(runs[0], moved)
    assert main(segment([moved, runs[1]], images, out, "--overlays", "none", "--resume")) == 0  # the same model

    (out / "labels.json").unlink()
    retrained = untrained_run(tmp_path / "retrained", ("left_hip",), side_aware=False, seed=7)
    shutil.copy(retrained / "model.keras", runs[0] / "model.keras")
    capsys.readouterr()
    assert main(segment(runs, images, out, "--overlays", "none", "--resume")) == 2
    assert capsys.readouterr().err == (
        f"error: {out}: was segmented with another model than {runs[0].resolve()} holds now (its weights, "
        "calibration or config differ); resume only with the model the run began with, or start again with --force "
        "(or choose another --out)\n")
    assert not (out / "labels.json").exists()
    assert main(segment(runs, images, out, "--overlays", "none", "--force")) == 0
    assert set(labels_of(out)) == {f"film{i:04d}" for i in range(4)}
