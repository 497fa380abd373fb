"""The wheel built from a fresh clone installs in a new virtual environment and runs: `python -m
seglib`, the `seglib` script, a command that reads the shipped shape model, and one that segments with the
shipped pelvis model.

To keep CI quick, the new environment does not download TensorFlow and the other dependencies
again: a .pth file lends it this environment's site-packages (after its own, and without
running this environment's .pth files, so the editable seglib here stays invisible), and the
wheel is installed with --no-deps. What is tested is the wheel itself: its modules, package data,
entry point and metadata. That the dependency ranges resolve is `make setup`'s job."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _fresh_clone(destination: Path) -> Path:
    """The files git tracks, as they are in the working tree: what a clone holds, nothing built or ignored."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the files of a fresh clone are unknown")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():  # a tracked file deleted in the working tree is gone from the next commit too
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


def _run(command, cwd: Path) -> subprocess.CompletedProcess:
    # No PYTHONPATH: the checkout on it would hide the installed wheel.
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(c) for c in command], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_the_wheel_of_a_fresh_clone_installs_and_runs(tmp_path):
    clone = _fresh_clone(tmp_path / "clone")
    built = _run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", tmp_path / "dist", clone], tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    assert not re.search(r"licen[cs]e.*deprecated", built.stdout + built.stderr, re.IGNORECASE)
    wheel = next((tmp_path / "dist").glob("seglib-*.whl"))

    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", venv], tmp_path).returncode == 0
    python = venv / "bin" / "python"
    site_packages = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              tmp_path).stdout.strip())
    lent = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site_packages / "lent_dependencies.pth").write_text("\n".join(sorted(lent)) + "\n")
    installed = _run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    where = _run([python, "-c", "import seglib; print(seglib.__file__)"], tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(site_packages), where
    for command in ([python, "-m", "seglib", "--help"], [venv / "bin" / "seglib", "--help"]):
        shown = _run(command, tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "phantom" in shown.stdout and "segment" in shown.stdout
    generated = _run([venv / "bin" / "seglib", "phantom", "--out", tmp_path / "phantoms", "--n", "1", "--film-size", "32"],
                     tmp_path)
    assert generated.returncode == 0, generated.stderr
    assert len(list((tmp_path / "phantoms" / "images").glob("*.png"))) == 1
    # The pretrained pelvis model is package data: the installed wheel segments with it, nothing downloaded.
    segmented = _run([venv / "bin" / "seglib", "segment", "--model", "pelvis", "--images", tmp_path / "phantoms" / "images",
                      "--out", tmp_path / "segmented", "--quiet"], tmp_path)
    assert segmented.returncode == 0, segmented.stderr
    assert "left_hip" in (tmp_path / "segmented" / "labels.json").read_text()
