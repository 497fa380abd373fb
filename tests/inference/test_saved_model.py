"""SavedModel export of a run: same predictions as the Keras model, self-describing, never overwritten."""

import json

import numpy as np
import pytest
from conftest import untrained_run

from seglib.inference.saved_model import export_run, load_exported
from seglib.training.run_dir import RunDir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return untrained_run(tmp_path_factory.mktemp("runs") / "left", ("left_hip",), side_aware=False)


@pytest.fixture(scope="module")
def exported(run):
    return export_run(run)


def test_export_goes_into_the_run_directory(run, exported):
    assert exported == run / "saved_model" and (exported / "saved_model.pb").is_file()


def test_exported_model_predicts_like_the_keras_model(run, exported):
    images = np.random.default_rng(1).normal(size=(3, 32, 32, 1)).astype(np.float32)
    expected = RunDir(run).load_model()(images, training=False)
    served = load_exported(exported)(images)
    np.testing.assert_allclose(np.asarray(served), np.asarray(expected), atol=1e-5)


def test_serving_json_describes_input_structures_and_preprocessing(exported):
    serving = json.loads((exported / "serving.json").read_text())
    assert serving["image_size"] == 32 and serving["structures"] == ["left_hip"]
    assert serving["input"]["shape"] == [None, 32, 32, 1]
    steps = " ".join(serving["preprocessing"])
    assert "[0, 1]" in steps and "resize" in steps and "standardisation" in steps


def test_existing_export_is_not_overwritten(run, exported):
    with pytest.raises(FileExistsError):
        export_run(run)
    with pytest.raises(FileExistsError):
        export_run(run, out_dir=exported)
