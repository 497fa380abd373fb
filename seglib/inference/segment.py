"""Segmenting films, the Python side of `python -m seglib segment`: `segment(films, out)` with a model that
ships with seglib (seglib.models; pelvis unless another is named) or with trained runs, one per structure, and
`pretrained(name)`, the shipped model's Predictor for films in memory. What OUT holds:

    OUT/labels/<id>.png     uint8 label map at the image's original size (values: OUT/labels.json)
    OUT/labels.json         structure -> label value
    OUT/overlays/<id>.png   the image with each structure coloured (seglib.reporting.plots.structure_color)
    OUT/areas.csv           id, structure, area_px, area_mm2, left_right_area_ratio, contested_px, warning
                            (seglib.inference.measurements)
    OUT/quality.csv         id, structure, predicted_dice, flag and their evidence (seglib.inference.quality)
    OUT/nifti/, OUT/dicom-seg/   with formats=("nifti", "dicom-seg"): see seglib.inference.segment_formats
    OUT/records/, OUT/segment.json, ...   how the run is resumed and sharded: seglib.inference.archive

labels/ and overlays/ are the "png" format, the default; formats may name several. The films are streamed
(seglib.inference.archive), so the folder may be of any length; images may differ in size and bit depth. A
film that cannot be segmented at all (blank, tiny, a strip: seglib.inference.film_checks) gets an empty label
map, a warning line on stderr, and its reason in the warning column of its rows in areas.csv.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from seglib.data.folders import Folder, PredictionDir
from seglib.inference.archive import segment_archive
from seglib.models.shipped import fusion_options, pretrained_run

DEFAULT_MODEL = "pelvis"


class Segmentation(Folder):
    """A segment output folder, with its tables. Passes for its path (os.fspath, str, and `/` for a file in it),
    so it goes wherever a folder is expected; `.path` is the Path."""

    def __truediv__(self, name: str | os.PathLike) -> Path:
        return self.path / name

    def labels(self) -> dict[str, int]:
        """structure -> its value in the label maps."""
        return PredictionDir(self.path).read_labels()

    def areas(self):
        """areas.csv: one row per film and structure."""
        import pandas as pd  # here: segmenting needs no pandas

        return pd.read_csv(self.path / "areas.csv", dtype={"id": str})

    def quality(self):
        """quality.csv, the films to look at first: flagged rows, then by predicted Dice, lowest first."""
        import pandas as pd

        table = pd.read_csv(self.path / "quality.csv", dtype={"id": str}, keep_default_na=False)
        return table.sort_values(["flag", "predicted_dice"], ascending=[False, True], kind="stable")


def segment(images=None, out=None, *, model: str | None = None, runs=None, images_list=None, formats=("png",),
            tta: bool = False, threshold: float = 0.5, fuse_options: dict | None = None, overlays: str = "all",
            resume: bool = False, force: bool = False, shard=None, spacing_mm: dict | None = None,
            batch_size: int = 8, ray=None, workers: int | None = None) -> Segmentation:
    """`python -m seglib segment` in Python: the films of the folder `images` (or of the list file
    `images_list`) segmented into `out` (see the module doc), e.g. `seglib.segment("films", "out")`.

    The model: `model`, the name of one that ships with seglib (default pelvis), with its fusion defaults; or
    `runs`, trained run folders, one per structure. `fuse_options` (seglib.inference.fusion.fuse's, without
    the threshold) add to or replace the model's. `spacing_mm`: id -> mm per pixel (or a (row, column)
    pair), else a DICOM input's header. `overlays`, `resume`, `force`, `shard` (I, N), `batch_size`, `ray` and
    `workers` are the command's options (seglib.inference.archive.segment_archive). An existing `out` is
    replaced only with `force`, and only when it is an earlier segment output (seglib.data.outputs)."""
    if model is not None and runs is not None:
        raise ValueError("segment: give a shipped model or runs, not both")
    if runs is None:
        model = model or DEFAULT_MODEL
        runs, fuse_options = [pretrained_run(model)], {**fusion_options(model), **(fuse_options or {})}
    return Segmentation(segment_archive(
        runs, images, out, images_list=images_list, tta=tta, threshold=threshold, fuse_options=fuse_options,
        formats=formats, overlays=overlays, resume=resume, force=force, shard=shard, spacing_mm=spacing_mm,
        batch_size=batch_size, ray=ray, workers=workers))


def segment_folder(run_dirs, images_dir, out_dir, tta: bool = False, threshold: float = 0.5,
                   fuse_options: dict | None = None, spacing_mm: dict | None = None,
                   force: bool = False, formats=("png",)) -> Path:
    """Deprecated: `segment(images_dir, out_dir, runs=run_dirs, ...)`, which it calls."""
    warnings.warn("segment_folder(runs, images, out) is segment(images, out, runs=runs) now (seglib.segment); "
                  "segment_folder goes in the next version", DeprecationWarning, stacklevel=2)
    return segment(images_dir, out_dir, runs=run_dirs, tta=tta, threshold=threshold, fuse_options=fuse_options,
                   spacing_mm=spacing_mm, force=force, formats=formats).path


def pretrained(name: str = DEFAULT_MODEL, calibrate: bool = True):
    """The Predictor of a model that ships with seglib (seglib.models), e.g.
    `seglib.pretrained("pelvis").probabilities(film)`: no training, and nothing is downloaded."""
    from seglib.inference.predictor import Predictor  # here: segment() leaves TensorFlow to the network's workers

    return Predictor(pretrained_run(name), calibrate)

