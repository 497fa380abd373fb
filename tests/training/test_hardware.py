"""Hardware helpers on a CPU-only machine: strategies, mixed precision, XLA."""

import logging
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from seglib.losses.dice import BCEDiceLoss
from seglib.networks.unet import build_unet
from seglib.training import hardware as accelerate


def test_unknown_names_are_refused():
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


TWO_REPLICAS = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from seglib.losses.dice import BCEDiceLoss
from seglib.networks.unet import build_unet
from seglib.training.hardware import global_batch_size
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
batch = global_batch_size(4, strategy)
with strategy.scope():
    model = build_unet(32, depth=2, base_filters=4)
    model.compile(optimizer="adam", loss=BCEDiceLoss())
images = np.random.default_rng(0).random((batch, 32, 32, 1), np.float32)
dataset = tf.data.Dataset.from_tensor_slices((images, (images > 0.5).astype(np.float32))).batch(batch)
history = model.fit(dataset, epochs=1, verbose=0)
print(strategy.num_replicas_in_sync, batch, np.isfinite(history.history["loss"][0]))
"""


def test_global_batch_size_scales_with_two_replicas_and_a_step_trains_on_them():
    # Two logical CPU devices stand in for two GPUs; they must be set before TensorFlow starts.
    result = subprocess.run([sys.executable, "-c", TWO_REPLICAS], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-3:] == ["2", "8", "True"]


def test_global_batch_size_refuses_what_is_not_a_positive_integer():
    strategy = tf.distribute.get_strategy()
    assert accelerate.global_batch_size(8, strategy) == 8
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="positive integer"):
            accelerate.global_batch_size(bad, strategy)


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
