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
    from seglib.data.phantom import write_phantom_dataset

    return write_phantom_dataset(tmp_path_factory.mktemp("phantom") / "pelvis", n=16, size=64, seed=0)


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
