"""Where the code runs: Kaggle, Colab or a local machine, recognised from their markers."""

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
