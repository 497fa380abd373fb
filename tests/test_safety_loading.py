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

