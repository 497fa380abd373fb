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


def train_tiny_run(data: Path, out: Path, structure: str = "left_thing") -> Path:
    """A one-epoch run on a write_square_dataset, for tests that need any trained run."""
    from seglib.config import profile_config
    from seglib.training.fit import train

    config = profile_config("smoke", data=str(data), structures=(structure,), image_size=32, depth=2,
                            base_filters=4, epochs=1, mirror_flip=False)
    return train(config, out, verbose=0)


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
