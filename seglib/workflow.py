"""The main job's plumbing: notebook parameters from the environment, the embedded phantom data,
and running the notebooks in sequence (`python -m seglib demo`).

Notebooks read their parameters through `notebook_settings`, so CI runs them small
(SEGLIB_PROFILE=smoke) and a GPU user runs them full size, without editing a notebook."""

from __future__ import annotations

import os
import time
from pathlib import Path

from seglib.config import PHANTOM_SIZES, PROFILES

NOTEBOOKS = ("01_train_left_hip.ipynb", "02_train_right_hip.ipynb", "03_fuse_and_report.ipynb")


def project_root() -> Path:
    """Where data/, runs/ and reports/ go: SEGLIB_HOME; else the nearest folder above the working
    directory that holds notebooks/ and seglib/ (a clone); else the platform's writable folder
    (/kaggle/working on Kaggle, /content on Colab); else the working directory."""
    if os.environ.get("SEGLIB_HOME"):
        return Path(os.environ["SEGLIB_HOME"]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "notebooks").is_dir() and (folder / "seglib").is_dir():
            return folder
    from seglib.accelerate import default_paths, detect_environment

    return default_paths(detect_environment())["output_root"] or here


def notebook_settings(**defaults) -> dict:
    """Parameters of a notebook: SEGLIB_<NAME> environment variables override `defaults`."""
    settings = {"profile": "demo", "data": "", "runs": "", "reports": "", **defaults}
    for name, default in list(settings.items()):
        raw = os.environ.get(f"SEGLIB_{name.upper()}")
        if raw is not None:
            settings[name] = _parse_like(raw, default)
    if settings["profile"] not in PROFILES:
        raise ValueError(f"SEGLIB_PROFILE={settings['profile']!r}: choose one of {', '.join(PROFILES)}")
    root, profile = project_root(), settings["profile"]
    settings["data"] = Path(settings["data"]) if settings["data"] else default_data(profile)
    # Runs and reports are kept apart per profile and dataset, so a lung run never replaces a pelvis one.
    dataset = "pelvis_phantom" if settings["data"].resolve() == default_data(profile).resolve() else settings["data"].name
    settings["runs"] = Path(settings["runs"] or root / "runs" / profile / dataset)
    settings["reports"] = Path(settings["reports"] or root / "reports" / profile / dataset)
    return settings


def _parse_like(raw: str, default):
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return type(default)(raw) if default is not None else raw


def wants_training(setting: str, profile: str) -> bool:
    """A notebook's train_contemporary: yes / no, or auto = yes in the smoke (seconds) and full
    (GPU) profiles and no in demo, whose CPU budget (~10 min) covers the U-Nets alone."""
    choice = str(setting).strip().lower()
    if choice not in ("auto", "yes", "no", "true", "false", "1", "0"):
        raise ValueError(f"train_contemporary={setting!r}: choose auto, yes or no")
    return profile != "demo" if choice == "auto" else choice in ("yes", "true", "1")


def default_data(profile: str) -> Path:
    return project_root() / "data" / f"pelvis_phantom_{profile}"


def ensure_dataset(data_dir: str | Path, profile: str, seed: int = 0) -> Path:
    """The dataset to use. The embedded default (pelvis phantoms) is generated on first use,
    deterministically, and reused afterwards; any other folder must already exist."""
    from seglib.phantom import write_phantom_dataset

    data_dir = Path(data_dir)
    if (data_dir / "images").is_dir():
        return data_dir
    if data_dir.resolve() != default_data(profile).resolve():
        raise FileNotFoundError(f"{data_dir}: no dataset here (expected {data_dir / 'images'})")
    n, size = PHANTOM_SIZES[profile]
    return write_phantom_dataset(data_dir, n=n, size=size, seed=seed)


def run_notebooks(profile: str = "demo", data: str | None = None, timeout: int = 3600,
                  only=("01", "02", "03")) -> list[Path]:
    """Execute the notebooks in order with nbclient (those whose number is in `only`); executed
    copies go to reports/<profile>/notebooks/, the committed notebooks are left untouched."""
    import nbformat
    from nbclient import NotebookClient

    root = project_root()
    out_dir = root / "reports" / profile / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["SEGLIB_PROFILE"] = profile  # the kernel inherits the environment
    data = data or os.environ.get("SEGLIB_DATA")
    if data:  # relative to where the user is, not to the kernels' notebooks/ folder
        os.environ["SEGLIB_DATA"] = str(Path(data).resolve())
    written = []
    for name in (n for n in NOTEBOOKS if n[:2] in only):
        started = time.perf_counter()
        notebook = nbformat.read(root / "notebooks" / name, as_version=4)
        NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(root / "notebooks")}}).execute()
        path = out_dir / name
        nbformat.write(notebook, path)
        written.append(path)
        print(f"{name}: {time.perf_counter() - started:.0f} s -> {path}", flush=True)
    return written
