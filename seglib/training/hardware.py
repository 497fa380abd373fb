"""How training uses the hardware: tf.distribute strategy, mixed precision and XLA (where the code
runs, Kaggle / Colab / local, is seglib.workflow.environment).

Keras 3 needs no manual loss scaling: `Model.compile(auto_scale_loss=True)` (the default) wraps the
optimizer in a `LossScaleOptimizer` when the MODEL's dtype policy is "mixed_float16". A model takes
the global policy when it is built, so `set_mixed_precision` must run before the model is built.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

import keras
import tensorflow as tf

from seglib.config import DISTRIBUTION_STRATEGIES

logger = logging.getLogger("seglib")



def visible_gpus() -> int:
    return len(tf.config.list_physical_devices("GPU"))


def choose_strategy(kind: str = "auto") -> tf.distribute.Strategy:
    """The tf.distribute strategy; build and compile the model inside `strategy.scope()`.

    "auto": all GPUs mirrored when there are several, the one GPU, else the default (no-op) strategy.
    "multi_worker" reads the cluster from TF_CONFIG and must be created at program start."""
    if kind not in DISTRIBUTION_STRATEGIES:
        raise ValueError(f"unknown strategy {kind!r}; choose one of {', '.join(DISTRIBUTION_STRATEGIES)}")
    strategy = _create_strategy(kind)
    logger.info("distribution strategy: %s with %d replica(s)", type(strategy).__name__,
                strategy.num_replicas_in_sync)
    return strategy


def _create_strategy(kind: str) -> tf.distribute.Strategy:
    if kind == "auto":
        gpus = visible_gpus()
        if gpus > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.OneDeviceStrategy("/gpu:0") if gpus == 1 else tf.distribute.get_strategy()
    if kind == "mirrored":
        # Without GPUs, MirroredStrategy would use one CPU device; use every logical CPU (see split_cpu).
        cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(None if visible_gpus() else cpus)
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "tpu":
        return _tpu_strategy()
    return tf.distribute.get_strategy()


def split_cpu(devices: int) -> None:
    """Present the CPU as `devices` logical devices, so MirroredStrategy can run that many replicas
    on one machine (to test distributed training without GPUs). Call it before TensorFlow runs any op."""
    if devices < 1:
        raise ValueError(f"the number of CPU devices must be at least 1, got {devices}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)


def _tpu_strategy() -> tf.distribute.TPUStrategy:
    # Kaggle and Colab TPUs are TPU VMs: the TPU is "local" unless TPU_NAME names a remote one.
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", "local"))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def global_batch_size(per_replica: int, strategy: tf.distribute.Strategy) -> int:
    """The batch size to give tf.data: Keras splits each global batch across the replicas."""
    if isinstance(per_replica, bool) or not isinstance(per_replica, int) or per_replica < 1:
        raise ValueError(f"per-replica batch size must be a positive integer, got {per_replica!r}")
    return per_replica * strategy.num_replicas_in_sync


def _on_gpu(value, what: str) -> bool:
    if value == "auto":
        return visible_gpus() > 0
    if isinstance(value, bool):
        return value
    raise ValueError(f"{what} must be True, False or 'auto', got {value!r}")


def set_mixed_precision(enabled: bool | str = "auto") -> str:
    """Set the global Keras dtype policy and return its name. "auto": mixed_float16 only on a GPU
    (float16 on a CPU is slower, not faster). Build the model afterwards."""
    name = "mixed_float16" if _on_gpu(enabled, "mixed precision") else "float32"
    keras.config.set_dtype_policy(name)
    logger.info("dtype policy: %s", name)
    return name


@contextmanager
def mixed_precision(enabled: bool | str = "auto"):
    """`set_mixed_precision` for the block only; the previous policy is restored afterwards."""
    previous = keras.config.dtype_policy()
    try:
        yield set_mixed_precision(enabled)
    finally:
        keras.config.set_dtype_policy(previous)


def jit_compile_option(value: bool | str = "auto") -> bool:
    """model.compile(jit_compile=...): "auto" compiles with XLA only on a GPU, where it pays off.
    Keras itself turns XLA off (with a warning) while TF op determinism is enabled."""
    return _on_gpu(value, "jit_compile")


def devices_line(strategy: tf.distribute.Strategy) -> str:
    """The hardware a training uses, in one line: "devices: CPU (2 threads)", "devices: GPU:0 (Tesla T4)",
    "devices: GPU:0 (Tesla T4), GPU:1 (Tesla T4); MirroredStrategy, 2 replicas"."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        used = ", ".join(f"GPU:{i} ({tf.config.experimental.get_device_details(gpu).get('device_name', 'GPU')})"
                         for i, gpu in enumerate(gpus))
    elif tf.config.list_physical_devices("TPU"):
        used = f"TPU ({len(tf.config.list_logical_devices('TPU'))} cores)"
    else:
        # 0 means TensorFlow's default: every core this process may run on
        threads = tf.config.threading.get_intra_op_parallelism_threads() or _usable_cores()
        used = f"CPU ({threads} thread{'s' if threads > 1 else ''})"
    replicas = strategy.num_replicas_in_sync
    return f"devices: {used}" + (f"; {type(strategy).__name__}, {replicas} replicas" if replicas > 1 else "")


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: the cores this process may use (a container's share)
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
