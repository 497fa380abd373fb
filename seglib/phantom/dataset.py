"""The pelvis phantoms as a dataset in the standard layout: the embedded default dataset.

Each image is rendered by seglib.phantom.render (one film with its bone masks); this module numbers
them reproducibly, renders them in parallel and writes images, masks, the label-value image of the
two hips and a manifest with each film's geometry and the clinical conditions it got.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from seglib.config import PHANTOM_SIZES
from seglib.data.folders import DatasetDir
from seglib.data.outputs import output_folder
from seglib.phantom.exposure import Appearance
from seglib.phantom.render import STRUCTURES, PelvisSample, cached_shape_model, make_pelvis
from seglib.phantom.shape_model import load_atlas
from seglib.progress import progress

LABEL_VALUES = {"left_hip": 134, "right_hip": 255}
POSE_COLUMNS = ("tilt_deg", "rotation_deg", "obliquity_deg", "source_detector_mm", "magnification")
# conditions: what a clinical look drew for the film, ";"-separated (seglib.phantom.clinical), empty when none
MANIFEST_COLUMNS = ("id", "patient_id", "pixel_spacing_mm", "midline_x", "midline_tilt_deg", *POSE_COLUMNS, "conditions")


def phantom_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for image `index` of a dataset made with `seed`: independent of the dataset's size."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def write_phantom_dataset(out_dir, n: int = 200, size: int = 256, seed: int = 0, workers: int | None = None,
                          appearance: Appearance | None = None, model_path=None) -> Path:
    """Write n phantoms in the standard dataset layout and return out_dir.

    Layout: images/<id>.png (16-bit), masks/<structure>/<id>.png (0/255), labels/<id>.png (0
    background, LABEL_VALUES for the hip bones), labels.json, manifest.csv (MANIFEST_COLUMNS). Ids are
    pelvis_0000, pelvis_0001, ...; image i depends only on (seed, i). Images are rendered by
    `workers` processes (default: up to 2) and streamed to disk. Never overwrites: a non-empty
    out_dir raises FileExistsError. Written through seglib.data.outputs.output_folder: the folder
    appears complete or not at all.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    cached_shape_model(None if model_path is None else str(model_path))  # a broken model fails before any work
    jobs = [(seed, index, size, appearance, model_path) for index in range(n)]
    workers = min(workers or min(2, os.cpu_count() or 1), n)
    with _staged_dataset(out_dir) as (dataset, manifest):
        if workers > 1 and n >= 8:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                samples = pool.imap(_render, jobs)  # in order, as they finish: memory stays bounded
                for index, sample in enumerate(progress(samples, "phantom", total=n)):
                    _write_sample(dataset, manifest, f"pelvis_{index:04d}", f"synthetic_{index:04d}", sample)
        else:
            for index, job in enumerate(progress(jobs, "phantom")):
                _write_sample(dataset, manifest, f"pelvis_{index:04d}", f"synthetic_{index:04d}", _render(job))
    return Path(out_dir)


def write_profile_phantoms(out_dir, profile: str, seed: int = 0) -> Path:
    """The phantom dataset of a profile's size (seglib.config.PHANTOM_SIZES) written to out_dir."""
    n, size = PHANTOM_SIZES[profile]
    return write_phantom_dataset(out_dir, n=n, size=size, seed=seed)


@contextmanager
def _staged_dataset(out_dir):
    """A temporary folder with the layout's folders and an open manifest writer, which becomes
    out_dir only when the block succeeds (seglib.data.outputs.output_folder)."""
    with output_folder(out_dir, "phantom") as staging:
        dataset = DatasetDir(staging)
        for folder in [dataset.images_dir, dataset.labels_dir, *(dataset.masks_dir(name) for name in STRUCTURES)]:
            folder.mkdir(parents=True)
        with open(dataset.manifest_path, "w", newline="") as handle:
            manifest = csv.writer(handle)
            manifest.writerow(MANIFEST_COLUMNS)
            yield dataset, manifest
        dataset.write_labels(LABEL_VALUES)


def _render(job) -> PelvisSample:
    seed, index, size, appearance, model_path = job
    return make_pelvis(phantom_rng(seed, index), size, appearance, model_path=model_path)


def _write_sample(dataset: DatasetDir, manifest, sample_id: str, patient_id: str, sample: PelvisSample) -> None:
    dataset.write_sample(sample_id, sample.image, {name: sample.masks[name] for name in STRUCTURES})
    dataset.write_label_map(sample_id, label_map(sample))
    manifest.writerow(manifest_row(sample_id, patient_id, sample))


def manifest_row(sample_id: str, patient_id: str, sample: PelvisSample) -> list:
    pose = sample.pose
    return [sample_id, patient_id, f"{sample.pixel_spacing_mm:.6g}", f"{sample.midline_x:.3f}",
            f"{sample.midline_tilt_deg:.3f}", f"{pose.tilt:.3f}", f"{pose.rotation:.3f}", f"{pose.obliquity:.3f}",
            f"{pose.source_distance:.1f}", f"{pose.magnification:.4f}", ";".join(sample.conditions)]


def label_map(sample: PelvisSample) -> np.ndarray:
    """The hip bones in one label-value image (LABEL_VALUES); their masks never overlap."""
    labels = np.zeros(sample.image.shape, np.uint8)
    for name, value in LABEL_VALUES.items():
        labels[sample.masks[name]] = value
    return labels


def write_atlas_renderings(out_dir, surfaces, ids, poses: int = 6, size: int = 256, seed: int = 0,
                           appearance: Appearance | None = None, model_path=None) -> Path:
    """Render the REAL atlas meshes of subjects `ids` (e.g. ones held out of the shape model), each
    in `poses` random poses, as a dataset in the same layout as write_phantom_dataset (ids
    atlas<ID>_<pose>, patient_id atlas<ID>). Femurs, spine, soft tissue and the look are random."""
    model = cached_shape_model(None if model_path is None else str(model_path))
    atlas = load_atlas(surfaces, ids=ids)
    with _staged_dataset(out_dir) as (dataset, manifest):
        for number, (subject, vertices) in enumerate(zip(atlas.ids, atlas.vertices)):
            pelvis = model.pelvis(model.align(vertices))  # the real shape, in the model's pelvic frame
            for pose in range(poses):
                sample = make_pelvis(phantom_rng(seed, number * 1000 + pose), size, appearance, pelvis=pelvis)
                _write_sample(dataset, manifest, f"atlas{subject}_{pose}", f"atlas{subject}", sample)
    return Path(out_dir)
