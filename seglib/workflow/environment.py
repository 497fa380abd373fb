"""Where the code runs (Kaggle / Colab / local) and where its data and outputs go."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

ENVIRONMENTS = ("kaggle", "colab", "local")

# The setup cell of every notebook, word for word: edit it here, then paste it into each (tests/workflow/
# test_environment.py names the notebooks that differ). It runs before seglib exists on a fresh Kaggle or Colab, so
# it cannot call seglib. Only the clone's top-level .venv, data and runs stay behind: a name pattern matching at any
# depth would leave seglib/data out of the install.
SETUP_CELL = """\
# Setup, the same in every notebook (seglib.workflow.environment.SETUP_CELL): installs seglib where it is missing
# (Kaggle, Colab) from SEGLIB_SOURCE: a pip requirement such as git+https://... or a copy of this repository
import importlib.util, os, shutil, subprocess, sys, tempfile

if importlib.util.find_spec("seglib") is None:
    source = os.environ.get("SEGLIB_SOURCE", "..")
    if os.path.isdir(source):  # built from a copy: Kaggle inputs are read-only and pip builds in place
        top = os.path.abspath(source)
        source = shutil.copytree(top, os.path.join(tempfile.mkdtemp(), "seglib"),
                                 ignore=lambda folder, names: {".venv", "data", "runs"} & set(names) if folder == top else ())
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", source])"""


KAGGLE_INPUT = Path("/kaggle/input")


_KAGGLE_ENV_VARS = ("KAGGLE_KERNEL_RUN_TYPE",)


_COLAB_ENV_VARS = ("COLAB_RELEASE_TAG", "COLAB_GPU")


def detect_environment() -> str:
    """The platform running this code: "kaggle", "colab" or "local"."""
    if any(name in os.environ for name in _KAGGLE_ENV_VARS) or KAGGLE_INPUT.exists():
        return "kaggle"
    if any(name in os.environ for name in _COLAB_ENV_VARS) or _colab_importable():
        return "colab"
    return "local"


def _colab_importable() -> bool:
    try:
        return importlib.util.find_spec("google.colab") is not None
    except ModuleNotFoundError:  # no `google` package at all
        return False


def default_paths(environment: str) -> dict[str, Path | None]:
    """Where data is read from and outputs go; None means the caller's own default."""
    paths = {
        # Kaggle mounts datasets read-only under /kaggle/input; only /kaggle/working is kept.
        "kaggle": {"data_root": KAGGLE_INPUT, "output_root": Path("/kaggle/working")},
        "colab": {"data_root": Path("/content"), "output_root": Path("/content")},
        "local": {"data_root": None, "output_root": None},
    }
    if environment not in paths:
        raise ValueError(f"unknown environment {environment!r}; choose one of {', '.join(ENVIRONMENTS)}")
    return paths[environment]


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
    return default_paths(detect_environment())["output_root"] or here


def mount_drive() -> None:
    """On Colab with SEGLIB_DRIVE set: mount Google Drive and keep data, runs and reports there
    (SEGLIB_HOME = SEGLIB_DRIVE), so they outlive the session."""
    if os.environ.get("SEGLIB_DRIVE"):
        from google.colab import drive

        drive.mount("/content/drive")
        os.environ.setdefault("SEGLIB_HOME", os.environ["SEGLIB_DRIVE"])
