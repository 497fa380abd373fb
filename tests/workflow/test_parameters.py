"""Notebook parameters: environment variables override a notebook's defaults, typed like them."""

from pathlib import Path

import pytest

from seglib.workflow.parameters import notebook_settings, wants_training


@pytest.fixture
def home(monkeypatch, tmp_path):
    """A project root of its own, and no SEGLIB_* variables from the machine running the tests."""
    for name in ("PROFILE", "DATA", "RUNS", "REPORTS", "SEED", "EPOCHS", "TTA", "LEFT", "DRIVE"):
        monkeypatch.delenv(f"SEGLIB_{name}", raising=False)
    monkeypatch.setenv("SEGLIB_HOME", str(tmp_path))
    return tmp_path


def test_defaults_put_data_runs_and_reports_under_the_project_root_per_profile(home):
    settings = notebook_settings(profile="smoke", left="left_hip", seed=0)
    assert settings["left"] == "left_hip" and settings["seed"] == 0
    assert settings["data"] == home / "data" / "pelvis_phantom_smoke"
    assert settings["runs"] == home / "runs" / "smoke" / "pelvis_phantom"
    assert settings["reports"] == home / "reports" / "smoke" / "pelvis_phantom"


def test_environment_variables_override_and_take_the_default_type(home, monkeypatch):
    monkeypatch.setenv("SEGLIB_SEED", "7")
    monkeypatch.setenv("SEGLIB_EPOCHS", "2")
    monkeypatch.setenv("SEGLIB_TTA", "no")
    monkeypatch.setenv("SEGLIB_LEFT", "left_lung")
    settings = notebook_settings(profile="smoke", seed=0, epochs=0, tta=True, left="left_hip")
    assert (settings["seed"], settings["epochs"], settings["tta"], settings["left"]) == (7, 2, False, "left_lung")
    monkeypatch.setenv("SEGLIB_TTA", "yes")
    assert notebook_settings(profile="smoke", tta=False)["tta"] is True


def test_another_dataset_gets_runs_and_reports_of_its_own(home, monkeypatch, tmp_path):
    monkeypatch.setenv("SEGLIB_DATA", str(tmp_path / "lungs"))
    settings = notebook_settings(profile="demo")
    assert settings["data"] == tmp_path / "lungs"
    assert settings["runs"] == home / "runs" / "demo" / "lungs"
    assert settings["reports"] == home / "reports" / "demo" / "lungs"


def test_a_number_that_is_not_one_and_an_unknown_profile_are_refused(home, monkeypatch):
    monkeypatch.setenv("SEGLIB_SEED", "seven")
    with pytest.raises(ValueError, match="SEGLIB_SEED='seven': not a int"):
        notebook_settings(seed=0)
    monkeypatch.delenv("SEGLIB_SEED")
    monkeypatch.setenv("SEGLIB_PROFILE", "huge")
    with pytest.raises(ValueError, match="SEGLIB_PROFILE='huge'"):
        notebook_settings()


def test_explicit_runs_and_reports_folders_are_kept(home, monkeypatch, tmp_path):
    monkeypatch.setenv("SEGLIB_RUNS", str(tmp_path / "elsewhere"))
    assert notebook_settings(profile="smoke")["runs"] == Path(tmp_path / "elsewhere")


def test_wants_training_auto_keeps_the_cpu_demo_short():
    assert wants_training("auto", "smoke") and wants_training("auto", "full") and not wants_training("auto", "demo")
    assert wants_training("yes", "demo") and not wants_training("no", "smoke")
    with pytest.raises(ValueError, match="choose auto, yes or no"):
        wants_training("sometimes", "demo")
