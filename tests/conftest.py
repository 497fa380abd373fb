"""Shared fixtures: small datasets built by the tests themselves, and the real shared set when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seglib.data.io import write_png

SHARED_LUNGS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cxr_lungs_covid"


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory) -> Path:
    """16 pelvis phantoms of 64 px in the standard layout."""
    from seglib.phantom.dataset import write_phantom_dataset

    return write_phantom_dataset(tmp_path_factory.mktemp("phantom") / "pelvis", n=16, size=64, seed=0)


@pytest.fixture(scope="session")
def learned_hip_runs(phantom_dataset, tmp_path_factory) -> dict[str, Path]:
    """A left_hip and a right_hip run trained with the smoke profile as it is on phantom_dataset: the one smoke
    training that the learning-floor tests check and every test needing a trained pair of hips shares."""
    from seglib.config import profile_config
    from seglib.training.fit import train

    root = tmp_path_factory.mktemp("learned")
    return {s: train(profile_config("smoke", data=str(phantom_dataset), structures=(s,)), root / s, verbose=0)
            for s in ("left_hip", "right_hip")}


@pytest.fixture(scope="session")
def lungs_dataset() -> Path:
    if not (SHARED_LUNGS / "images").is_dir():
        pytest.skip(f"shared real dataset not found at {SHARED_LUNGS.resolve()} (only in the team's workspace)")
    return SHARED_LUNGS


def write_square_dataset(root: Path, n: int = 4, size: int = 32) -> Path:
    """A tiny dataset: bright squares, left_thing on the image's right, right_thing on its left."""
    for i in range(n):
        image = np.zeros((size, size), np.uint8)
        left = np.zeros((size, size), bool)
        right = np.zeros((size, size), bool)
        left[8:20, size - 14:size - 4] = True
        right[8:26, 4:14] = True  # taller than its partner, so a mirrored image differs
        image[left | right] = 200
        write_png(root / "images" / f"case{i}.png", image)
        write_png(root / "masks" / "left_thing" / f"case{i}.png", left.astype(np.uint8) * 255)
        write_png(root / "masks" / "right_thing" / f"case{i}.png", right.astype(np.uint8) * 255)
    return root


def file_contents(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) with its bytes: a snapshot to prove nothing changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def untrained_run(folder, structures=("left_thing",), side_aware: bool = True, seed: int = 0) -> Path:
    """A run folder as predict reads it (config and a compiled, untrained model), without the cost of training."""
    from seglib.config import profile_config
    from seglib.training.fit import write_untrained_run

    config = profile_config("smoke", data="unused", structures=tuple(structures), image_size=32, depth=2,
                            base_filters=4, mirror_flip=False, side_aware=side_aware, seed=seed)
    return write_untrained_run(config, folder).path


@pytest.fixture(scope="module")
def hip_runs(tmp_path_factory):
    """A left_hip and a right_hip run of tiny untrained models (mirror partners, so flip TTA works)."""
    root = tmp_path_factory.mktemp("runs")
    return [untrained_run(root / "left", ("left_hip",), side_aware=False, seed=0),
            untrained_run(root / "right", ("right_hip",), side_aware=False, seed=1)]


DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


def write_dicom_film(path, shape, photometric="MONOCHROME2", spacing_attribute="PixelSpacing", spacing=(0.2, 0.1),
                     seed=0, **attributes):
    """A 16-bit DX film as a modality writes it: patient, study, series and instance identity, spacing."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = DX_FOR_PRESENTATION, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    film = Dataset()
    film.file_meta = meta
    film.SOPClassUID, film.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    film.StudyInstanceUID, film.SeriesInstanceUID = generate_uid(), generate_uid()
    film.PatientID, film.PatientName, film.PatientBirthDate, film.PatientSex = "P7", "Doe^Jane", "19600101", "F"
    film.StudyDate, film.StudyTime, film.StudyID, film.AccessionNumber = "20260101", "120000", "S1", "A1"
    film.ReferringPhysicianName, film.Modality, film.SeriesNumber, film.InstanceNumber = "", "DX", 1, 1
    film.PatientOrientation = ["L", "F"]  # rows run to the patient's left, columns to the feet: an AP view
    film.Rows, film.Columns = shape
    film.SamplesPerPixel, film.PhotometricInterpretation = 1, photometric
    film.BitsAllocated, film.BitsStored, film.HighBit, film.PixelRepresentation = 16, 12, 11, 0
    setattr(film, spacing_attribute, list(spacing))
    for name, value in attributes.items():
        setattr(film, name, value)
    pixels = np.random.default_rng(seed).integers(0, 4096, shape, dtype=np.uint16)
    film.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    film.save_as(path, enforce_file_format=True)
    return path
