"""Segmenting an archive: streaming, resumable, sharded; on one machine (threads) or on a Ray cluster.

    OUT/labels/<id>.png, OUT/overlays/<id>.png, OUT/nifti/, OUT/dicom-seg/   as seglib.inference.segment
    OUT/records/<id>.json   the film's record: its rows of every per-film table (TABLES), written last
    OUT/failed/<id>.json    instead, for a film that could not be read (damaged, missing, not an image): its row
                            of failed.csv (id, path, problem)
    OUT/areas.csv           assembled from the records when every film has one
    OUT/quality.csv         likewise: a predicted Dice and a flag per film and structure (seglib.inference.quality)
    OUT/failed.csv          likewise: the films that failed (only the header when none did)
    OUT/labels.json         written last of all: the folder is complete
    OUT/segment.json        the settings (runs and their files' SHA-256, tta, threshold, fusion, formats, overlays,
                            shard)

The output contract (README, "Archives"): a film's files are written atomically (a temporary name renamed),
its record after them, so a film is done exactly when its record exists. A run killed at any moment
leaves OUT with finished films and no tables; `resume=True` (`--resume`) writes the films without a
record (their leftovers are removed first) and then the tables, so every film appears once. OUT is
resumed only when its marker says segment and its settings are these (the runs by their files' contents,
not their paths: retrained weights at the same path are another model); with `force`, an earlier
complete output is replaced as every folder is (written beside it, swapped at the end; not resumable).

One bad film never stops an archive: a film that cannot be read is named on stderr in one line, gets a
failure record instead of its outputs, and the run goes on; the folder is finished (tables, failed.csv,
labels.json) and then FilmsFailed says how many failed, so the command ends non-zero. `--resume` tries
the failed films again (a file mended, or a file system that was away, then succeeds). What is wrong with
the command itself (options, runs, OUT, a list naming a non-image or an id twice) is refused up front.

The films are listed up front (names only, ~100 bytes a film: a bad list fails before any work) and
read, run through the network in batches and written in an overlapped pipeline: reader threads decode
and shrink films to the working size while the network runs, writer threads resize, fuse and write,
so at most a few batches of films are in memory. TensorFlow is imported only where the network runs
(never by the Ray driver).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seglib.config import OVERLAY_CHOICES
from seglib.data.folders import LABELS, LABELS_JSON, PredictionDir
from seglib.data.io import (
    IMAGE_SUFFIXES,
    DataError,
    atomic_file,
    read_image,
    resolved,
    spreadsheet_safe,
    write_png,
    write_text,
)
from seglib.data.layout import list_images
from seglib.data.outputs import (
    LOCK,
    MARKER,
    UnsafeOutput,
    check_output_path,
    check_replaceable,
    claim_folder,
    marked_command,
    output_folder,
    seal,
    writing_alone,
)
from seglib.inference.film_checks import degenerate_reason, warn_if_degenerate
from seglib.inference.fusion import fuse
from seglib.inference.measurements import AREA_COLUMNS, area_rows
from seglib.inference.quality import QUALITY_COLUMNS, QUALITY_FILE, quality_model, quality_rows
from seglib.inference.segment_formats import image_spacing, open_exports
from seglib.progress import progress_bar
from seglib.symmetry.partners import flip_partners

FAILED_COLUMNS = ["id", "path", "problem"]
# name -> columns of each per-film table: OUT/<name>.csv
TABLES = {"areas": AREA_COLUMNS, "quality": QUALITY_COLUMNS, "failed": FAILED_COLUMNS}
SETTINGS = "segment.json"
RECORDS = "records"
FAILED = "failed"  # the records of films that could not be read
# The settings a resumed run must share with the folder it continues (the images and runs may have moved:
# the runs are compared by their files' contents, "models").
RESUME_SETTINGS = ("models", "tta", "threshold", "fusion", "formats", "overlays", "shard")
# Every file a segment run writes into OUT (seglib.data.outputs.claim_folder): any other is a person's.
LAYOUT = (f"{LABELS}/*", "overlays/*", "nifti/*", "dicom-seg/*", f"{RECORDS}/*", f"{FAILED}/*",
          *(f"{name}.csv" for name in TABLES), LABELS_JSON, SETTINGS, ".*.tmp*")
RAY_INSTALL = "--ray needs Ray: pip install 'seglib[ray]' (or pip install 'ray[data]')"


@dataclass(frozen=True)
class Film:
    image_id: str
    path: Path


class FilmsFailed(DataError):
    """Raised at the end of a run whose folder is finished but some of whose films could not be read."""


# --- which films ------------------------------------------------------------------------------------------

def folder_films(folder: str | Path) -> list[Film]:
    """The films of a folder, by the listing rules of every command (seglib.data.layout.list_images)."""
    return [Film(image_id, path.absolute()) for image_id, path in list_images(folder).items()]


def listed_films(list_file: str | Path) -> list[Film]:
    """The films of a list: a text file with one path a line (blank lines and # comments skipped), or a
    .csv with a `path` column and optionally an `id` column (default: the file name without suffix).
    Relative paths are relative to the list's folder. Every entry's form (an image suffix, an id that can
    name a file, once) is checked now, before any work; a file that is missing or unreadable fails alone,
    when its turn comes (failed.csv), as in an archive of 100 000 films some will."""
    list_file = Path(list_file)
    try:
        text = list_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{list_file}: cannot be read as a list of films ({getattr(error, 'strerror', None) or error})"
                        ) from None
    entries = _csv_entries(list_file, text) if list_file.suffix.lower() == ".csv" else _text_entries(text)
    films, lines = [], {}
    for line, image_id, given in entries:
        path = given if given.is_absolute() else list_file.parent / given
        where = f"{list_file} line {line}"
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{where}: {given} is not an image file seglib reads ({', '.join(IMAGE_SUFFIXES)})")
        image_id = image_id or path.stem
        if not image_id or image_id.startswith(".") or any(c in image_id for c in "/\\\0"):
            raise DataError(f"{where}: id {image_id!r} cannot name a file (empty, hidden, or with a slash)")
        if image_id in lines:
            raise DataError(f"{where}: id {image_id!r} is also on line {lines[image_id]}; ids must be unique")
        lines[image_id] = line
        films.append(Film(image_id, path.absolute()))  # the same file for a Ray actor elsewhere
    if not films:
        raise DataError(f"{list_file}: lists no films")
    return films


def _text_entries(text: str):
    for line, entry in enumerate(text.splitlines(), 1):
        if entry.strip() and not entry.lstrip().startswith("#"):
            yield line, None, Path(entry.strip())


def _csv_entries(list_file: Path, text: str):
    rows = csv.DictReader(text.splitlines())
    if "path" not in (rows.fieldnames or []):
        raise DataError(f"{list_file}: a list of films needs a 'path' column (columns: {rows.fieldnames})")
    for line, row in enumerate(rows, 2):
        if not (row.get("path") or "").strip():
            raise DataError(f"{list_file} line {line}: empty path")
        yield line, (row.get("id") or "").strip() or None, Path(row["path"].strip())


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' (1 <= I <= N) -> (I, N)."""
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise ValueError(f"shard {text!r}: expected I/N with 1 <= I <= N, e.g. 1/4")
    return int(index), int(count)


def in_shard(image_id: str, shard: tuple[int, int] | None) -> bool:
    """Whether shard (I, N) takes this film: by a hash of the id, stable across machines and Python runs."""
    if shard is None:
        return True
    digest = int.from_bytes(hashlib.sha256(image_id.encode("utf-8")).digest()[:8], "big")
    return digest % shard[1] == shard[0] - 1


# --- one film's outputs -----------------------------------------------------------------------------------

class FilmWriter:
    """Writes one film's outputs into a folder, its record last (see the module doc)."""

    def __init__(self, folder: Path, formats, overlays: str, exports, run_dirs, threshold: float,
                 spacing_mm: dict | None = None):
        self.folder, self.formats, self.overlays, self.exports = Path(folder), tuple(formats), overlays, exports
        self.predicted = PredictionDir(folder)
        self.spacing_mm = spacing_mm or {}
        self.quality = (*quality_model(run_dirs), threshold)  # loaded once, not per film

    def __call__(self, film: Film, image: np.ndarray, passes, fused) -> None:
        """Every output of `film` from its pixels, its network passes (TTAPasses, None when it was not
        segmented) and fused label map."""
        spacing = self.spacing_mm.get(film.image_id) or image_spacing(film.path)
        tables = film_tables(film.image_id, image, passes, fused, spacing, self.quality)
        self.clear(film.image_id)  # an earlier, killed attempt's files
        if "png" in self.formats:
            self.predicted.write_label_map(film.image_id, fused.label_map)
            if self.overlays == "all" or (self.overlays == "flagged" and flagged(tables)):
                from seglib.reporting.plots import overlay_rgb  # here: matplotlib only for overlays

                write_png(self.folder / "overlays" / f"{film.image_id}.png", overlay_rgb(image, fused.masks))
        for export in self.exports:
            export.write(self.folder, film.image_id, film.path, fused, spacing)
        write_text(self.folder / RECORDS / f"{film.image_id}.json",
                   json.dumps({"id": film.image_id, "tables": tables}))

    def failed(self, film: Film, problem: str) -> None:
        """`film` could not be segmented: said in one line, and its failure record written instead of its outputs."""
        print(f"error: {film.path}: {problem}; not segmented, the other films go on", file=sys.stderr)
        self.clear(film.image_id)
        row = {"id": spreadsheet_safe(film.image_id), "path": str(film.path), "problem": problem}
        write_text(self.folder / FAILED / f"{film.image_id}.json",
                   json.dumps({"id": film.image_id, "tables": {"failed": [row]}}))

    def clear(self, image_id: str) -> None:
        """An earlier attempt's files of the film: a killed one's, or a failed one's record (tried again)."""
        self.predicted.label_path(image_id).unlink(missing_ok=True)
        for name in (f"overlays/{image_id}.png", f"nifti/{image_id}.nii.gz", f"dicom-seg/{image_id}.dcm",
                     f"{RECORDS}/{image_id}.json", f"{FAILED}/{image_id}.json"):
            (self.folder / name).unlink(missing_ok=True)


# A film's own problems, which fail that film alone: DataError (damaged, not an image, no pixels, a bad header;
# the message names the file) and, while it is read, OSError (the file gone, a network file system away).
def film_problem(film: Film, error: Exception) -> str:
    """What went wrong with `film`, without its path (failed.csv has a column for that)."""
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error).removeprefix(f"{film.path}: ")


def film_tables(image_id: str, image: np.ndarray, passes, fused, spacing, quality) -> dict[str, list[dict]]:
    """The film's rows of each per-film table (TABLES): one more table is one more entry here.
    `quality`: (QualityModel, its estimator's words, threshold)."""
    # The network's passes are None exactly for a film it did not segment (seglib.inference.film_checks).
    warning = None if passes is not None else degenerate_reason(image)
    shown_id = spreadsheet_safe(image_id)
    return {"areas": area_rows(shown_id, fused.masks, fused.contested, spacing, warning),
            "quality": quality_rows(shown_id, list(fused.masks), passes, *quality, warning)}


def flagged(tables: dict[str, list[dict]]) -> bool:
    """Films a person should look at (overlays='flagged'): the quality estimate's flag (which covers films
    that could not be segmented and empty masks)."""
    return any(row["flag"] for row in tables["quality"])


# --- the network on batches -------------------------------------------------------------------------------

@dataclass
class Loaded:
    """A film read and prepared for the network (by a reader thread)."""
    film: Film
    image: np.ndarray | None  # None when it could not be read: `problem` says why
    inputs: list | None = None  # per run: its model input, and the mirrored one with flip TTA
    outputs: list = field(default_factory=list)  # per run: (outputs, mirrored outputs or None), working size
    working: dict | None = None  # size -> the film at that working size (the quality estimate reads the film)
    problem: str | None = None


class BatchNetwork:
    """seglib.inference.predictor.Predictor applied to batches of films, step by step, so that reading,
    the network and writing can overlap; each film's probabilities are those Predictor.probabilities gives."""

    def __init__(self, predictor, tta: bool):
        self.predictor, self.tta = predictor, tta
        if tta:
            predictor.tta_partners()  # flip TTA without a structure's partner: said before any film is read
        # The mirrored pass runs for the quality estimate too, wherever the runs hold the mirror partners.
        self.flip = tta or predictor.mirrorable
        self.busy_seconds = 0.0

    def load(self, film: Film) -> Loaded:
        from seglib.data.pipeline import model_input, working_image

        image = read_image(film.path)
        loaded = Loaded(film, image)
        if warn_if_degenerate(image, str(film.path)) is None:
            working = {size: working_image(image, size) for size in {c.image_size for _, c in self.predictor.runs}}
            loaded.working = working
            loaded.inputs = [(model_input(working[c.image_size], c.side_aware),
                              model_input(np.ascontiguousarray(working[c.image_size][:, ::-1]), c.side_aware)
                              if self.flip else None) for _, c in self.predictor.runs]
        return loaded

    def run(self, batch: list[Loaded], size: int | None = None) -> None:
        """The network's outputs for every segmentable film of the batch (one call per run and view). The call
        takes `size` films, a shorter batch (the last, or one holding films not segmented) padded with blank
        ones: the compiled graph is traced anew for each batch shape, which costs more (~0.8 s for the pelvis
        model on 2 CPU cores) than the network's time for a whole batch (~0.2 s)."""
        from seglib.networks.tiling import apply_model, window_size

        films = [loaded for loaded in batch if loaded.inputs is not None]
        if not films:
            return
        start = time.perf_counter()
        for index, (model, config) in enumerate(self.predictor.runs):
            views = []
            for view in (0, 1) if self.flip else (0,):
                inputs = [loaded.inputs[index][view] for loaded in films]
                if window_size(config):  # sliding windows: one film at a time
                    views.append([apply_model(model, x, config) for x in inputs])
                else:
                    views.append(list(np.asarray(model.predict_on_batch(_padded(inputs, size)), np.float32)))
            for position, loaded in enumerate(films):
                loaded.outputs.append(tuple(view[position] for view in views) + (None,) * (2 - len(views)))
        self.busy_seconds += time.perf_counter() - start

    def probabilities(self, loaded: Loaded):
        """(structure -> float32 map at the film's size, TTAPasses): Predictor.probabilities(passes=True),
        from the batch's outputs."""
        predictor = self.predictor
        if loaded.inputs is None:
            return {s: np.zeros(loaded.image.shape, np.float32) for s in predictor.structures}, None
        plain = predictor.structure_maps([outputs[0] for outputs in loaded.outputs])
        mirrored = predictor.structure_maps([outputs[1] for outputs in loaded.outputs]) if self.flip else None
        return predictor.film_maps(plain, mirrored, loaded.image, self.tta, loaded.working)


def _padded(inputs: list[np.ndarray], size: int | None) -> np.ndarray:
    stacked = np.stack(inputs)
    if size is None or len(inputs) >= size:
        return stacked
    return np.concatenate([stacked, np.zeros((size - len(inputs), *stacked.shape[1:]), stacked.dtype)])


def load_network(run_dirs, tta: bool) -> BatchNetwork:
    from seglib.inference.predictor import Predictor

    return BatchNetwork(Predictor(run_dirs), tta)


@dataclass
class Timing:
    films: int = 0
    seconds: float = 0.0
    network_seconds: float = 0.0


def segment_films(films, network: BatchNetwork, write, fusion: dict, batch_size: int = 8, readers: int = 2,
                  writers: int = 2, done=None) -> Timing:
    """Segment `films` (an iterable of Film) in an overlapped pipeline: reader threads prepare the next
    batches while the network runs on this one, writer threads fuse and `write(film, image, passes, fused)`
    the previous ones (passes: seglib.inference.predictor.TTAPasses). At most (2 + 2) batches of films are in memory. `done(film)` after each."""
    start, busy = time.perf_counter(), network.busy_seconds
    count = 0
    with ThreadPoolExecutor(readers, "seglib-read") as reading, ThreadPoolExecutor(writers, "seglib-write") as writing:
        try:
            reads, writes = deque(), deque()
            batches = _batches(films, batch_size)
            for batch in batches:
                reads.append([reading.submit(_read_film, network, film) for film in batch])
                if len(reads) < 2:  # one batch ahead: read while the network runs
                    continue
                count += _network_step(reads.popleft(), network, writing, writes, write, fusion, batch_size, done)
            while reads:
                count += _network_step(reads.popleft(), network, writing, writes, write, fusion, batch_size, done)
            while writes:
                writes.popleft().result()
        except BaseException:
            reading.shutdown(cancel_futures=True)
            writing.shutdown(cancel_futures=True)
            raise
    return Timing(count, time.perf_counter() - start, network.busy_seconds - busy)


def _read_film(network: BatchNetwork, film: Film) -> Loaded:
    try:
        return network.load(film)
    except (DataError, OSError) as error:
        return Loaded(film, None, problem=film_problem(film, error))


def _network_step(reads, network, writing, writes, write, fusion, batch_size, done) -> int:
    batch = [future.result() for future in reads]
    network.run(batch, batch_size)
    for loaded in batch:
        writes.append(writing.submit(_write_film, network, loaded, write, fusion, done))
    while len(writes) > 2 * batch_size:  # memory: the writers keep up, or the network waits
        writes.popleft().result()
    return len(batch)


def _write_film(network: BatchNetwork, loaded: Loaded, write, fusion: dict, done) -> None:
    """The film's outputs, or its failure record (`write`: a FilmWriter). An error of the output side (a full
    disk: OSError) stops the run; a DataError here is the film's (its DICOM header: spacing, a SEG's source)."""
    if loaded.problem is None:
        try:
            probabilities, passes = network.probabilities(loaded)
            loaded.inputs = loaded.outputs = None
            write(loaded.film, loaded.image, passes, fuse(probabilities, **fusion))
        except DataError as error:
            loaded.problem = film_problem(loaded.film, error)
    if loaded.problem is not None:
        write.failed(loaded.film, loaded.problem)
    if done is not None:
        done(loaded.film)


def _batches(films, size: int):
    batch = []
    for film in films:
        batch.append(film)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- the output folder ------------------------------------------------------------------------------------

def done_ids(folder: Path) -> set[str]:
    """The films of `folder` that are complete: those with a record."""
    return _recorded(Path(folder) / RECORDS)


def failed_ids(folder: Path) -> set[str]:
    """The films of `folder` that could not be segmented (and are not done since): those with a failure record."""
    return _recorded(Path(folder) / FAILED) - done_ids(folder)


def _recorded(records: Path) -> set[str]:
    if not records.is_dir():
        return set()
    return {name[:-5] for name in os.listdir(records) if name.endswith(".json") and not name.startswith(".")}


def is_complete(folder: Path) -> bool:
    return PredictionDir(folder).labels_json.is_file() and (Path(folder) / SETTINGS).is_file()


def read_settings(folder: Path) -> dict:
    try:
        settings = json.loads((Path(folder) / SETTINGS).read_text())
    except (OSError, ValueError):
        raise UnsafeOutput(f"{folder}: has no readable {SETTINGS}; not a segment folder seglib can resume or merge"
                           ) from None
    return settings if isinstance(settings, dict) else {}


def _check_resumable(out: Path, settings: dict, inputs) -> None:
    """OUT may be resumed: written by segment, with these settings (one line naming what differs)."""
    check_output_path(out, inputs)
    if marked_command(out) != "segment":
        raise UnsafeOutput(f"{out}: was not written by seglib segment; --resume continues only a segment output")
    earlier = read_settings(out)
    if earlier.get("models") != settings["models"]:
        raise UnsafeOutput(f"{out}: {_model_change(earlier, settings)}; resume only with the model the run began "
                           "with, or start again with --force (or choose another --out)")
    for key in RESUME_SETTINGS:
        if earlier.get(key) != settings[key]:
            raise UnsafeOutput(f"{out}: was segmented with {key} {earlier.get(key)!r}, not {settings[key]!r}; "
                               "resume with the same options, or choose another --out")


def _model_change(earlier: dict, settings: dict) -> str:
    before, now = earlier.get("models"), settings["models"]
    if not isinstance(before, list) or len(before) != len(now):
        return f"was segmented with the runs {earlier.get('runs')}, not {settings['runs']}"
    run = next(run for run, a, b in zip(settings["runs"], before, now) if a != b)
    return f"was segmented with another model than {run} holds now (its weights, calibration or config differ)"


def _remove_leftovers(folder: Path) -> None:
    """The temporaries of a killed run's unfinished files (seglib.data.io.atomic_file's names)."""
    for sub in ("", LABELS, "overlays", "nifti", "dicom-seg", RECORDS, FAILED):
        if (folder / sub).is_dir():
            for entry in os.scandir(folder / sub):
                if entry.name.startswith(".") and ".tmp" in entry.name and entry.is_file():
                    os.unlink(entry.path)


def assemble_tables(folder: Path, ids) -> None:
    """OUT/<table>.csv from the films' records (or failure records), in listing order: each film once."""
    done = done_ids(folder)
    with ExitStack() as stack:
        tables = {}
        for name, columns in TABLES.items():
            # overwrite: a run stopped after the tables but before labels.json rewrites them when resumed
            temporary = stack.enter_context(atomic_file(folder / f"{name}.csv", overwrite=True))
            tables[name] = csv.DictWriter(stack.enter_context(open(temporary, "w", newline="")), fieldnames=columns)
            tables[name].writeheader()
        for image_id in ids:
            record = json.loads((folder / (RECORDS if image_id in done else FAILED) / f"{image_id}.json").read_text())
            for name, writer in tables.items():
                writer.writerows(record["tables"].get(name, []))


# --- the command ------------------------------------------------------------------------------------------

def segment_archive(run_dirs, images=None, out=None, *, images_list=None, tta: bool = False,
                    threshold: float = 0.5, fuse_options: dict | None = None, formats=("png",),
                    overlays: str = "all", resume: bool = False, force: bool = False, shard=None,
                    spacing_mm: dict | None = None, batch_size: int = 8, ray=None, workers: int | None = None,
                    timing: Timing | None = None) -> Path:
    """Segment the films of the folder `images` (or of the list file `images_list`) into `out`, by the
    contract of the module doc. `shard` (I, N): only the films of that share. `ray`: None (this process),
    "local" (a Ray on this machine) or a cluster's address; `workers`: Ray actors. `timing`: filled with
    the films, seconds and network seconds of this run (the benchmark's). Films that could not be read:
    OUT is finished without them, then FilmsFailed (a DataError) names how many and where they are listed."""
    from seglib.inference.measurements import spacing_pair

    if resume and force:
        raise ValueError("segment: --resume continues an output and --force replaces it; choose one")
    if overlays not in OVERLAY_CHOICES:
        raise ValueError(f"overlays {overlays!r}: choose from {', '.join(OVERLAY_CHOICES)}")
    if batch_size < 1:
        raise ValueError(f"batch size {batch_size}: must be 1 or more")
    if ray is not None:
        _require_ray()
    run_dirs = [run_dirs] if isinstance(run_dirs, (str, os.PathLike)) else list(run_dirs)
    out = Path(out)
    inputs = [images, images_list, *run_dirs]
    films = listed_films(images_list) if images_list is not None else folder_films(images)
    films = [film for film in films if in_shard(film.image_id, shard)]
    fusion, labels = _fusion(threshold, fuse_options, run_dirs)
    # What the network's workers would find wrong, found before OUT exists (README: before any model loads).
    if tta:
        flip_partners(list(labels))
    quality_model(run_dirs)
    given_spacing = {image_id: spacing_pair(image_id, value) for image_id, value in (spacing_mm or {}).items()}
    settings = {"runs": [str(resolved(d)) for d in run_dirs], "models": [model_fingerprint(d) for d in run_dirs],
                "tta": tta, "threshold": threshold,
                "fusion": {k: v for k, v in fusion.items() if k != "threshold"}, "formats": sorted(formats),
                "overlays": overlays, "shard": None if shard is None else f"{shard[0]}/{shard[1]}",
                "images": str(images_list if images_list is not None else images)}
    resuming = resume and out.is_dir() and any(out.iterdir())
    if resuming:
        _check_resumable(out, settings, inputs)
        _check_records_listed(out, films)
        if is_complete(out) and {film.image_id for film in films} <= done_ids(out) and not failed_ids(out):
            print(f"{out}: complete already ({len(done_ids(out))} films); nothing to do", file=sys.stderr)
            return out
    else:
        if not force and marked_command(out) == "segment" and not is_complete(out):
            raise UnsafeOutput(f"{out}: holds an unfinished segment run; pass --resume to finish it "
                               "(or --force to start again)")
        check_replaceable(out, "segment", inputs, force)  # before the models load
    exports = open_exports(formats, run_dirs, {f.image_id: f.path for f in films}, {"tta": tta, **fusion}
                           ) if films else []
    with ExitStack() as stack:
        if resuming:
            folder = out
        elif force:
            folder = stack.enter_context(output_folder(out, "segment", inputs, force))
        else:
            folder = claim_folder(out, "segment", inputs, LAYOUT)
        stack.enter_context(writing_alone(folder))  # before the leftovers of a killed run are cleared
        if not resuming:
            write_text(folder / SETTINGS, json.dumps(settings, indent=2))
        _remove_leftovers(folder)
        _forget_failures_of_films_gone(folder, films)
        done, retried = done_ids(folder), failed_ids(folder)
        todo = [film for film in films if film.image_id not in done]
        if resuming:
            again = f" ({len(retried)} that failed, tried again)" if retried else ""
            print(f"{out}: {len(done)} films done, {len(todo)} to segment{again}", file=sys.stderr)
        run = _run_ray if ray is not None else _run_here
        try:
            result = run(todo, folder, run_dirs=run_dirs, tta=tta, fusion=fusion, formats=formats,
                         overlays=overlays, exports=exports, spacing=given_spacing, batch_size=batch_size,
                         address=ray, workers=workers)
        except Exception:  # e.g. a film that cannot be read: the error names it
            if not resuming and not force:
                _remove_if_nothing_done(folder)
            raise
        if timing is not None:
            timing.__dict__.update(result.__dict__)
        failed = finish(folder, [film.image_id for film in films], labels, exports)
    if failed:  # after the folder is in place (with --force, swapped in), so that --resume can retry them
        raise FilmsFailed(f"{len(failed)} of {len(films)} film(s) could not be segmented (e.g. {failed[0]}), listed "
                          f"with their problem in {out / 'failed.csv'}; the others are done. Mend or remove them and "
                          "run the same command with --resume")
    return out


def _remove_if_nothing_done(folder: Path) -> None:
    """A fresh run that failed before any film was done leaves no folder (as every command's failure
    leaves nothing); one with finished films stays, for --resume once the cause is fixed."""
    ours = {folder / MARKER, folder / SETTINGS, folder / LOCK}
    if not any(path.is_file() and path not in ours and not path.name.startswith(".") for path in folder.rglob("*")):
        shutil.rmtree(folder, ignore_errors=True)


def finish(folder: Path, ids: list[str], labels: dict[str, int], exports) -> list[str]:
    """The tables and the files of the whole folder, once every film is done or failed; then the seal (--force's
    check). The films that failed, in listing order."""
    done, failed = done_ids(folder), failed_ids(folder)
    missing = [image_id for image_id in ids if image_id not in done and image_id not in failed]
    if missing:
        raise DataError(f"{folder}: {len(missing)} film(s) have no record after the run, e.g. {missing[0]}; "
                        "run again with --resume")
    assemble_tables(folder, ids)
    for export in exports:
        export.finish(folder, labels)
    PredictionDir(folder).write_labels(labels, overwrite=True)  # a resumed complete folder
    seal(folder)
    return [image_id for image_id in ids if image_id in failed]


def _forget_failures_of_films_gone(folder: Path, films: list[Film]) -> None:
    """A failed film removed from the folder or the list since (one way to mend an archive): its failure
    record goes, so failed.csv lists only this run's films."""
    for image_id in failed_ids(folder) - {film.image_id for film in films}:
        (folder / FAILED / f"{image_id}.json").unlink()


def model_fingerprint(run_dir) -> str:
    """SHA-256 of the files of a run that decide its outputs (config, weights, calibration, quality model): a
    resumed run must be the same model, wherever its folder now lies, and a model retrained in place is not."""
    from seglib.training.run_dir import RunDir

    run = RunDir(run_dir)
    digest = hashlib.sha256()
    for path in (run.config_path, run.model_path, run.float16_weights_path, run.calibration_path,
                 run.path / QUALITY_FILE):
        if path.is_file():
            digest.update(path.name.encode() + b"\0")
            with open(path, "rb") as file:
                digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


def _check_records_listed(out: Path, films: list[Film]) -> None:
    stray = sorted(done_ids(out) - {film.image_id for film in films})
    if stray:
        raise UnsafeOutput(f"{out}: holds {len(stray)} film(s) not in this run's films (e.g. {stray[0]}); "
                           "resume with the same images and shard, or choose another --out")


def _fusion(threshold: float, fuse_options: dict | None, run_dirs) -> tuple[dict, dict[str, int]]:
    """The fusion options, checked on a 1-pixel dry run (before any folder exists), and the label values."""
    from seglib.training.run_dir import RunDir

    options = dict(fuse_options or {})
    if "threshold" in options:
        raise ValueError("give the threshold as threshold=..., not in fuse_options")
    options["threshold"] = threshold
    structures = [s for d in run_dirs for s in RunDir(d).config().structures]
    return options, fuse({s: np.zeros((1, 1), np.float32) for s in structures}, **options).labels


def _run_here(films, folder, *, run_dirs, tta, fusion, formats, overlays, exports, spacing, batch_size, **_):
    if not films:  # a resumed folder with only its tables to write: no model to load
        return Timing()
    network = load_network(run_dirs, tta)
    write = FilmWriter(folder, formats, overlays, exports, run_dirs, fusion["threshold"], spacing)
    with progress_bar(len(films), "segment", "image") as bar:
        lock = threading.Lock()

        def advance(_film):
            with lock:
                bar.update()
        return segment_films(films, network, write, fusion, batch_size, done=advance)


# --- Ray --------------------------------------------------------------------------------------------------

def _require_ray():
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise ValueError(RAY_INSTALL) from None


class RaySegmenter:
    """A Ray Data actor: loads the runs once, then segments each batch of films it is given through the same
    pipeline and FilmWriter as one process, into the shared output folder; returns the films it wrote."""

    def __init__(self, folder, run_dirs, tta, fusion, formats, overlays, exports, spacing, batch_size):
        self.network = load_network(run_dirs, tta)
        self.write = FilmWriter(Path(folder), formats, overlays, exports, run_dirs, fusion["threshold"], spacing)
        self.fusion, self.batch_size = fusion, batch_size

    def __call__(self, batch: dict) -> dict:
        films = [Film(str(i), Path(p)) for i, p in zip(batch["id"], batch["path"])]
        timing = segment_films(films, self.network, self.write, self.fusion, self.batch_size, readers=1, writers=1)
        return {"id": np.array([film.image_id for film in films]),
                "network_seconds": np.full(len(films), timing.network_seconds / max(1, len(films)))}


def _run_ray(films, folder, *, run_dirs, tta, fusion, formats, overlays, exports, spacing, batch_size, address,
             workers, **_):
    import ray

    if not films:
        return Timing()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=None if address == "local" else address, include_dashboard=False)
    try:
        return _ray_job(films, folder, run_dirs, tta, fusion, formats, overlays, exports, spacing, batch_size,
                        workers)
    finally:
        if started_here:
            ray.shutdown()


def _ray_job(films, folder, run_dirs, tta, fusion, formats, overlays, exports, spacing, batch_size, workers):
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = workers or max(1, gpus)  # one actor per GPU; on CPUs one, using them all, unless told
    dataset = ray.data.from_items([{"id": f.image_id, "path": str(f.path)} for f in films],
                                  override_num_blocks=max(1, len(films) // batch_size))
    resources = {"num_gpus": 1} if gpus else {"num_cpus": max(1, ray.cluster_resources().get("CPU", 1) // actors)}
    results = dataset.map_batches(
        RaySegmenter, batch_size=batch_size, concurrency=actors, **resources,
        # absolute paths: an actor's working folder is not the driver's
        fn_constructor_kwargs={"folder": str(folder.absolute()), "run_dirs": [str(Path(d).absolute()) for d in run_dirs],
                               "tta": tta,
                               "fusion": fusion, "formats": list(formats), "overlays": overlays, "exports": exports,
                               "spacing": spacing, "batch_size": batch_size})
    start, timing = time.perf_counter(), Timing()
    with progress_bar(len(films), "segment (ray)", "image") as bar:
        for batch in results.iter_batches(batch_size=None):
            timing.films += len(batch["id"])
            timing.network_seconds += float(np.sum(batch["network_seconds"]))
            bar.update(len(batch["id"]))
    timing.seconds = time.perf_counter() - start
    return timing


# --- merging shards ---------------------------------------------------------------------------------------

def merge_shards(shard_folders, out, force: bool = False) -> Path:
    """OUT/<table>.csv joined from the complete shard folders of one sharded segment (every shard of
    I/N once, the same settings), with OUT/films.csv naming the folder holding each film's files. The
    shards' failed films are joined into OUT/failed.csv, and their number said on stderr."""
    shard_folders = [Path(folder) for folder in shard_folders]
    twice = next((folder for i, folder in enumerate(shard_folders)
                  if resolved(folder) in {resolved(f) for f in shard_folders[:i]}), None)
    if twice is not None:
        raise ValueError(f"{twice}: given twice; give each shard folder once")
    settings = {}
    for folder in shard_folders:
        if marked_command(folder) != "segment" or not is_complete(folder):
            raise UnsafeOutput(f"{folder}: is not a complete segment output; finish it with --resume first")
        settings[folder] = read_settings(folder)
    first = settings[shard_folders[0]]
    for folder, shard_settings in settings.items():
        different = [k for k in RESUME_SETTINGS if k != "shard" and shard_settings.get(k) != first.get(k)]
        if different:
            raise ValueError(f"{folder}: was segmented with other {different[0]} than {shard_folders[0]}; "
                             "merge only the shards of one run")
    shards = [parse_shard(s["shard"]) if s.get("shard") else (1, 1) for s in settings.values()]
    count = shards[0][1]
    seen = {}
    for folder, shard in zip(shard_folders, shards):
        if shard[1] != count:
            raise ValueError(f"{folder}: is shard {shard[0]}/{shard[1]}, the others are of {count}")
        if shard in seen:
            raise ValueError(f"{folder}: is shard {shard[0]}/{count}, as is {seen[shard]}")
        seen[shard] = folder
    missing = [f"{i}/{count}" for i in range(1, count + 1) if (i, count) not in seen]
    if missing:
        raise ValueError(f"shard {missing[0]} is missing; give all {count} shard folders")
    with output_folder(out, "merge", shard_folders, force) as staging:
        owners = {}
        for folder in shard_folders:
            for image_id in done_ids(folder):
                if image_id in owners:
                    raise DataError(f"{folder}: film {image_id!r} is also in {owners[image_id]}")
                owners[image_id] = folder
        for name in TABLES:
            with open(staging / f"{name}.csv", "w", newline="") as table:
                for position, folder in enumerate(shard_folders):
                    lines = (folder / f"{name}.csv").read_text().splitlines(keepends=True)
                    table.writelines(lines if position == 0 else lines[1:])
        failed = sum(len(failed_ids(folder)) for folder in shard_folders)
        with open(staging / "films.csv", "w", newline="") as table:
            writer = csv.writer(table)
            writer.writerow(["id", "folder"])
            writer.writerows((spreadsheet_safe(image_id), str(resolved(folder))) for image_id, folder in owners.items())
        PredictionDir(staging).write_labels(PredictionDir(shard_folders[0]).read_labels())
        write_text(staging / SETTINGS, json.dumps({**first, "shard": None,
                                                  "shards": [str(resolved(f)) for f in shard_folders]}, indent=2))
    if failed:
        print(f"{failed} film(s) of the shards could not be segmented; listed in {Path(out) / 'failed.csv'}",
              file=sys.stderr)
    return Path(out)
