"""A saved model loads with safe_mode after a plain `import seglib` (issue #10, case 5), in a fresh
interpreter, whichever of seglib and keras is imported first. (That `import seglib` alone still loads
no TensorFlow is guarded by test_ablation.test_command_line_help_does_not_load_tensorflow.)"""

import subprocess
import sys

import pytest

from seglib.config import profile_config
from seglib.training.fit import compile_model

LOAD = "keras.saving.load_model(sys.argv[1], safe_mode=True)"


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """A model compiled with each family of seglib objects: a custom loss and metric, a custom model."""
    root = tmp_path_factory.mktemp("models")
    configs = {"focal_tversky": {"structures": ("left_hip",), "loss": "0.5*bce_dice+0.5*focal_tversky"},
               "consistency": {"structures": ("left_hip", "right_hip"), "consistency_weight": 0.1,
                               "side_aware": False}}
    paths = []
    for name, options in configs.items():
        config = profile_config("smoke", image_size=32, depth=2, base_filters=4, **options)
        compile_model(config).save(root / f"{name}.keras")
        paths.append(root / f"{name}.keras")
    return paths


@pytest.mark.parametrize("imports", ["import seglib, keras", "import keras, seglib"])
def test_a_saved_model_loads_in_safe_mode_after_importing_seglib(saved_models, imports):
    for path in saved_models:
        code = f"import sys; {imports}; model = {LOAD}; print(type(model).__name__)"
        result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr.splitlines()[-1]


def test_without_seglib_the_model_does_not_load(saved_models):
    # the control: the objects really are seglib's, so the registration above is what makes it work
    code = f"import sys, keras; {LOAD}"
    result = subprocess.run([sys.executable, "-c", code, str(saved_models[0])], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "Could not locate" in result.stderr



def _predict_error(run, tmp_path, capsys) -> str:
    """The one line `predict` answers with for `run`, after checking that it wrote nothing."""
    from conftest import write_square_dataset

    from seglib.cli import main

    images = write_square_dataset(tmp_path / "data", n=1) / "images"
    assert main(["predict", "--runs", str(run), "--images", str(images), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    (line,) = capsys.readouterr().err.splitlines()
    return line


def test_a_model_with_a_class_this_version_does_not_know_is_named_in_one_line(tmp_path, capsys):
    # a run saved by another seglib version, whose network uses a class this one does not define
    import json
    import zipfile

    from conftest import untrained_run

    from seglib import __version__
    from seglib.training.run_dir import RunDir

    run = RunDir(untrained_run(tmp_path / "run"))
    with zipfile.ZipFile(run.model_path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(parts["config.json"])
    config.update(class_name="FutureUNet", module="seglib.networks.future", registered_name="seglib>FutureUNet")
    with zipfile.ZipFile(run.model_path, "w") as archive:
        for name, content in {**parts, "config.json": json.dumps(config)}.items():
            archive.writestr(name, content)
    assert _predict_error(run, tmp_path, capsys) == (
        f"error: {run.model_path}: seglib {__version__} cannot load this model (saved by another version?): "
        "Could not locate class 'FutureUNet'")


def test_truncated_half_precision_weights_are_named_in_one_line(tmp_path, capsys):
    # a shipped-style run (seglib/models/NAME) whose weights file was cut short by a failed copy
    from conftest import untrained_run

    from seglib.training.run_dir import RunDir

    run = RunDir(untrained_run(tmp_path / "run"))
    run.save_float16_weights(run.load_model())
    run.model_path.unlink()
    weights = run.float16_weights_path
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert _predict_error(run, tmp_path, capsys).startswith(f"error: {weights}: damaged weights")
