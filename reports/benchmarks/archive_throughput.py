"""Films per second of `segment` with the shipped pelvis model: the one-film-at-a-time path `segment` had before
the archive path (`one_film_at_a_time` below: the loop of seglib 0.x's segment_folder, labels + overlays + areas +
quality, one film after the other) against the streaming path (seglib.inference.archive.segment_archive), one
after the other in one run on the same films, and the share of the wall time the network is busy. Start-up (loading the model, the first batches) is
excluded: the rate is taken between the SKIP-th and the last film's completion. Optionally Ray with 1 and 2
local workers. Appends nothing anywhere: prints a markdown table (copied into reports/benchmarks.md).

    .venv/bin/python reports/benchmarks/archive_throughput.py [--png 50] [--dicom 16] [--ray]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from seglib.data.io import read_image, write_png
from seglib.inference import archive, predictor
from seglib.inference.fusion import fuse
from seglib.inference.measurements import AREA_COLUMNS, area_rows
from seglib.inference.quality import QualityTable
from seglib.models.shipped import PRETRAINED_FUSION, pretrained_run
from seglib.reporting.plots import overlay_rgb

RUN = pretrained_run("pelvis").path
FUSION = PRETRAINED_FUSION["pelvis"]


class Clock:
    """Completion times of films and the intervals the network ran, for one run."""

    def __init__(self):
        self.done, self.busy = [], []

    def rate(self, skip: int) -> tuple[float, float]:
        """(films per second, network busy share) between the skip-th and the last completion."""
        done = sorted(self.done)
        start, end = done[skip - 1], done[-1]
        busy = sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.busy)
        return (len(done) - skip) / (end - start), busy / (end - start) if self.busy else float("nan")


def one_film_at_a_time(images: Path, out: Path, clock: Clock) -> Path:
    """The baseline: segment as it was before the archive path, each film read, predicted (flip pass for the
    quality estimate), fused and written (label map, overlay, areas and quality rows) before the next."""
    run = predictor.Predictor([RUN])
    rows, quality = [], QualityTable(run)
    for image_id, path in sorted((p.stem, p) for p in images.iterdir()):
        image = read_image(path)
        probabilities, passes = run.probabilities(image, passes=True, name=str(path))
        quality.add(image_id, image, passes)
        fused = fuse(probabilities, **FUSION)
        write_png(out / "labels" / f"{image_id}.png", fused.label_map)
        write_png(out / "overlays" / f"{image_id}.png", overlay_rgb(image, fused.masks))
        rows += area_rows(image_id, fused.masks, fused.contested, None)
        clock.done.append(time.perf_counter())
    with open(out / "areas.csv", "w", newline="") as table:
        writer = csv.DictWriter(table, fieldnames=AREA_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    quality.write(out / "quality.csv")
    (out / "labels.json").write_text(json.dumps(fused.labels))
    return out


@contextmanager
def clocked(clock: Clock):
    """Record film completions (the streaming path's progress bar) and network calls (both paths' own)."""
    original_bar = archive.progress_bar
    original_predict, original_run = predictor.Predictor._network_maps, archive.BatchNetwork.run

    class Bar:
        def __init__(self, *args):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def update(self, n=1):
            clock.done.extend([time.perf_counter()] * n)

    def timed(function):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                clock.busy.append((start, time.perf_counter()))
        return run

    archive.progress_bar = Bar
    predictor.Predictor._network_maps, archive.BatchNetwork.run = timed(original_predict), timed(original_run)
    try:
        yield clock
    finally:
        archive.progress_bar = original_bar
        predictor.Predictor._network_maps, archive.BatchNetwork.run = original_predict, original_run


def phantom_films(work: Path, n: int, size: int) -> list[np.ndarray]:
    """n distinct-looking films: 8 rendered phantoms, flipped and shifted in intensity."""
    from seglib.phantom.dataset import write_phantom_dataset

    rendered = work / f"phantoms{size}"
    if not rendered.exists():
        write_phantom_dataset(rendered, n=8, size=size, seed=5, workers=1)
    base = [read_image(p) for p in sorted((rendered / "images").glob("*.png"))]
    return [(base[i % 8][:, ::-1] if (i // 8) % 2 else base[i % 8]) for i in range(n)]


def write_dicom(path: Path, pixels: np.ndarray) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1.1", generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    film = Dataset()
    film.file_meta = meta
    film.SOPClassUID, film.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    film.StudyInstanceUID, film.SeriesInstanceUID, film.Modality = generate_uid(), generate_uid(), "DX"
    film.PatientID, film.PatientOrientation = "P1", ["L", "F"]
    film.Rows, film.Columns = pixels.shape
    film.SamplesPerPixel, film.PhotometricInterpretation = 1, "MONOCHROME2"
    film.BitsAllocated, film.BitsStored, film.HighBit, film.PixelRepresentation = 16, 16, 15, 0
    film.PixelSpacing = [0.14, 0.14]
    film.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    film.save_as(path, enforce_file_format=True)


def film_folders(work: Path, png: int, dicom: int) -> dict[str, Path]:
    from skimage.transform import resize

    folders = {}
    if png:
        folders["512 px PNG"] = work / "png"
        for i, film in enumerate(phantom_films(work, png, 512)):
            write_png(folders["512 px PNG"] / f"film{i:04d}.png", film)
    if dicom:
        folders["2500 x 3000 DICOM (16-bit)"] = work / "dicom"
        for i, film in enumerate(phantom_films(work, min(dicom, 8), 512)[:8]):
            large = resize(film.astype(np.float32), (3000, 2500), order=1, preserve_range=True).astype(np.uint16)
            write_dicom(work / "dicom" / f"film{i:04d}.dcm", large)
        for i in range(8, dicom):  # copies under other names: decoding and writing cost the same
            shutil.copy(work / "dicom" / f"film{i % 8:04d}.dcm", work / "dicom" / f"film{i:04d}.dcm")
    return folders


def measure(name: str, run, skip: int) -> tuple[str, float, float]:
    with clocked(Clock()) as clock:
        out = run(clock)
    if (out / archive.RECORDS).is_dir():  # a film is done when its record is written (Ray's results come in bursts)
        clock.done = [p.stat().st_mtime_ns / 1e9 for p in (out / archive.RECORDS).iterdir()]
        clock.busy = [(a - time.perf_counter() + time.time(), b - time.perf_counter() + time.time())
                      for a, b in clock.busy]  # the same clock as the files' times
    rate, busy = clock.rate(skip)
    return name, rate, busy


def compared(images: Path, out: Path, skip: int, batch_size: int, ray: bool) -> list[tuple[str, float, float]]:
    """(path, films/s, network busy share) of each path on the films of `images`, today's first."""
    def fresh(name: str) -> Path:
        shutil.rmtree(out / name, ignore_errors=True)
        return out / name

    streaming = {"fuse_options": FUSION, "batch_size": batch_size}
    runs = [("one film at a time (labels, overlays, areas)",
             lambda clock: one_film_at_a_time(images, fresh("today"), clock)),
            ("streaming (labels, overlays, areas)",
             lambda _: archive.segment_archive([RUN], images, fresh("all"), **streaming)),
            ("streaming (labels, areas: --overlays none)",
             lambda _: archive.segment_archive([RUN], images, fresh("none"), overlays="none", **streaming))]
    if ray:
        runs += [(f"ray, {n} local worker(s) (labels, areas)",
                  lambda _, n=n: archive.segment_archive([RUN], images, fresh(f"ray{n}"), overlays="none",
                                                         ray="local", workers=n, **streaming)) for n in (1, 2)]
    return [measure(name, run, skip) for name, run in runs]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--png", type=int, default=50, help="512 px PNG films (default 50)")
    parser.add_argument("--dicom", type=int, default=16, help="2500 x 3000 DICOM films (default 16; 0: none)")
    parser.add_argument("--skip", type=int, default=10, help="films counted as start-up (default 10)")
    parser.add_argument("--ray", action="store_true", help="also Ray Data with 1 and 2 local workers (PNG films)")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="seglib-archive-bench-"))
    try:
        print("| films | path | films/s | × today | network busy |\n|---|---|---|---|---|")
        for kind, images in film_folders(work, args.png, args.dicom).items():
            skip = min(args.skip, max(1, len(list(images.iterdir())) // 4))
            measured = compared(images, work / "out", skip, args.batch_size, args.ray and kind.startswith("512"))
            for name, rate, busy in measured:
                shown = "n/a (in the actors)" if np.isnan(busy) else f"{100 * busy:.0f} %"
                print(f"| {kind} | {name} | {rate:.2f} | {rate / measured[0][1]:.2f}× | {shown} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
