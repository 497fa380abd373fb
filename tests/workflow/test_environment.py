"""Where the code runs: Kaggle, Colab or a local machine, recognised from their markers; the notebooks' one
setup cell, which installs seglib there."""

from pathlib import Path

import nbformat
import pytest

from seglib.workflow import environment


@pytest.fixture
def clean_environment(monkeypatch, tmp_path):
    """No Kaggle or Colab markers, whatever machine runs the tests."""
    for name in environment._KAGGLE_ENV_VARS + environment._COLAB_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(environment, "KAGGLE_INPUT", tmp_path / "no_kaggle_input")
    monkeypatch.setattr(environment, "_colab_importable", lambda: False)
    return monkeypatch


def test_environment_is_local_without_markers(clean_environment):
    assert environment.detect_environment() == "local"
    assert environment.default_paths("local") == {"data_root": None, "output_root": None}


def test_kaggle_is_recognised_by_env_var_or_input_folder(clean_environment, tmp_path):
    clean_environment.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert environment.detect_environment() == "kaggle"
    clean_environment.delenv("KAGGLE_KERNEL_RUN_TYPE")
    (tmp_path / "kaggle_input").mkdir()
    clean_environment.setattr(environment, "KAGGLE_INPUT", tmp_path / "kaggle_input")
    assert environment.detect_environment() == "kaggle"
    paths = environment.default_paths("kaggle")
    assert str(paths["output_root"]) == "/kaggle/working"


@pytest.mark.parametrize("variable", ["COLAB_RELEASE_TAG", "COLAB_GPU"])
def test_colab_is_recognised_by_env_var(clean_environment, variable):
    clean_environment.setenv(variable, "1")
    assert environment.detect_environment() == "colab"
    assert str(environment.default_paths("colab")["output_root"]) == "/content"


def test_colab_is_recognised_by_its_module(clean_environment):
    clean_environment.setattr(environment, "_colab_importable", lambda: True)
    assert environment.detect_environment() == "colab"


def test_unknown_environment_is_refused():
    with pytest.raises(ValueError, match="unknown environment"):
        environment.default_paths("laptop")


# --- the notebooks' setup cell ----------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def test_every_notebook_starts_with_the_one_setup_cell():
    differing = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        code = [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
        setup = [source for source in code if source.startswith("# Setup")]
        if setup != [environment.SETUP_CELL] or code.index(setup[0]) > 1:  # after the parameters at most
            differing.append(path.name)
    assert not differing, f"paste seglib.workflow.environment.SETUP_CELL into {differing}"


def run_setup_cell(monkeypatch, source, installed: bool) -> list[list[str]]:
    """The pip commands the setup cell runs, with SEGLIB_SOURCE=source, seglib installed or not."""
    import importlib.util
    import subprocess

    commands = []
    monkeypatch.setenv("SEGLIB_SOURCE", str(source))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *_: object() if installed else None)
    monkeypatch.setattr(subprocess, "check_call", commands.append)
    exec(environment.SETUP_CELL, {})
    return commands


def test_the_setup_cell_installs_nothing_where_seglib_is_installed(monkeypatch):
    assert run_setup_cell(monkeypatch, ROOT, installed=True) == []


def test_the_setup_cell_installs_a_pip_requirement_as_given(monkeypatch):
    [command] = run_setup_cell(monkeypatch, "git+https://example.org/seglib.git", installed=False)
    assert command[1:] == ["-m", "pip", "install", "-q", "git+https://example.org/seglib.git"]


def test_the_setup_cell_installs_a_copy_of_a_read_only_folder_with_all_of_seglib(monkeypatch, tmp_path):
    """Kaggle mounts the repository read-only, so pip builds in a copy; the clone's own data, runs and .venv stay
    behind, but the package's folders of the same names (seglib/data) go along."""
    clone = tmp_path / "kaggle-input"
    for name in ("seglib/data/io.py", "seglib/__init__.py", "pyproject.toml", "data/demo/x.png", "runs/r/model.keras",
                 ".venv/bin/python"):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        (clone / name).write_text("x")
    [command] = run_setup_cell(monkeypatch, clone, installed=False)
    copy = Path(command[-1])
    assert not copy.is_relative_to(clone)
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()) == [
        "pyproject.toml", "seglib/__init__.py", "seglib/data/io.py"]
