"""Hardware helpers on a CPU-only machine: environment detection, strategies, mixed precision, XLA."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from seglib import accelerate
from seglib.losses import BCEDiceLoss
from seglib.models import build_unet


@pytest.fixture
def clean_environment(monkeypatch, tmp_path):
    """No Kaggle or Colab markers, whatever machine runs the tests."""
    for name in accelerate._KAGGLE_ENV_VARS + accelerate._COLAB_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(accelerate, "KAGGLE_INPUT", tmp_path / "no_kaggle_input")
    monkeypatch.setattr(accelerate, "_colab_importable", lambda: False)
    return monkeypatch


def test_environment_is_local_without_markers(clean_environment):
    assert accelerate.detect_environment() == "local"
    assert accelerate.default_paths("local") == {"data_root": None, "output_root": None}


def test_kaggle_is_recognised_by_env_var_or_input_folder(clean_environment, tmp_path):
    clean_environment.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert accelerate.detect_environment() == "kaggle"
    clean_environment.delenv("KAGGLE_KERNEL_RUN_TYPE")
    (tmp_path / "kaggle_input").mkdir()
    clean_environment.setattr(accelerate, "KAGGLE_INPUT", tmp_path / "kaggle_input")
    assert accelerate.detect_environment() == "kaggle"
    paths = accelerate.default_paths("kaggle")
    assert str(paths["output_root"]) == "/kaggle/working"


@pytest.mark.parametrize("variable", ["COLAB_RELEASE_TAG", "COLAB_GPU"])
def test_colab_is_recognised_by_env_var(clean_environment, variable):
    clean_environment.setenv(variable, "1")
    assert accelerate.detect_environment() == "colab"
    assert str(accelerate.default_paths("colab")["output_root"]) == "/content"


def test_colab_is_recognised_by_its_module(clean_environment):
    clean_environment.setattr(accelerate, "_colab_importable", lambda: True)
    assert accelerate.detect_environment() == "colab"


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown environment"):
        accelerate.default_paths("laptop")
    with pytest.raises(ValueError, match="unknown strategy"):
        accelerate.choose_strategy("horovod")
    with pytest.raises(ValueError, match="mixed precision"):
        accelerate.set_mixed_precision("yes")


def test_auto_strategy_on_cpu_trains_a_step_and_logs(caplog):
    with caplog.at_level(logging.INFO, logger="seglib"):
        strategy = accelerate.choose_strategy("auto")
    assert strategy.num_replicas_in_sync == 1
    assert "1 replica(s)" in caplog.text
    batch = accelerate.global_batch_size(2, strategy)
    with strategy.scope():
        model = build_unet(32, depth=2, base_filters=4)
        model.compile(optimizer="adam", loss=BCEDiceLoss(), jit_compile=accelerate.jit_compile_option("auto"))
    images = np.random.default_rng(0).random((batch, 32, 32, 1), np.float32)
    loss = model.train_on_batch(images, (images > 0.5).astype(np.float32))
    assert np.isfinite(loss)


def test_global_batch_size_scales_with_replicas():
    strategy = tf.distribute.get_strategy()
    assert accelerate.global_batch_size(8, strategy) == 8
    with pytest.raises(ValueError, match="positive integer"):
        accelerate.global_batch_size(0, strategy)


def test_mixed_precision_is_set_then_restored_and_output_stays_float32():
    assert keras.config.dtype_policy().name == "float32"
    with accelerate.mixed_precision(True) as name:
        assert name == keras.config.dtype_policy().name == "mixed_float16"
        model = build_unet(32, depth=2, base_filters=4)
        model.compile(optimizer="adam", loss=BCEDiceLoss())
    assert keras.config.dtype_policy().name == "float32"
    assert model.get_layer("down0_conv1").compute_dtype == "float16"
    assert model.output.dtype == "float32"
    # Keras 3 wraps the optimizer for loss scaling by itself (compile(auto_scale_loss=True)).
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_auto_means_gpu_only(monkeypatch):
    monkeypatch.setattr(accelerate, "visible_gpus", lambda: 0)
    with accelerate.mixed_precision("auto") as name:
        assert name == "float32"
    assert accelerate.jit_compile_option("auto") is False
    monkeypatch.setattr(accelerate, "visible_gpus", lambda: 1)
    with accelerate.mixed_precision("auto") as name:
        assert name == "mixed_float16"
    assert accelerate.jit_compile_option("auto") is True
    assert accelerate.jit_compile_option(False) is False
    assert keras.config.dtype_policy().name == "float32"
