"""The embedded default dataset (pelvis phantoms), generated on first use and reused afterwards."""

from __future__ import annotations

from pathlib import Path

from seglib.config import PHANTOM_SIZES
from seglib.data.folders import DatasetDir
from seglib.workflow.environment import project_root


def default_data(profile: str) -> Path:
    return project_root() / "data" / f"pelvis_phantom_{profile}"


def ensure_dataset(data_dir: str | Path, profile: str, seed: int = 0) -> Path:
    """The dataset to use. The embedded default (pelvis phantoms) is generated on first use,
    deterministically, and reused afterwards; any other folder must already exist."""
    from seglib.phantom.dataset import write_phantom_dataset

    data_dir = Path(data_dir)
    images = DatasetDir(data_dir).images_dir
    if images.is_dir():
        return data_dir
    if data_dir.resolve() != default_data(profile).resolve():
        raise FileNotFoundError(f"{data_dir}: no dataset here (expected {images})")
    n, size = PHANTOM_SIZES[profile]
    return write_phantom_dataset(data_dir, n=n, size=size, seed=seed)
