"""The machine a benchmark ran on: devices, CPU, library versions, threads, peak memory."""

from __future__ import annotations

import os
import platform
import resource
import sys
from pathlib import Path

import keras
import tensorflow as tf


def peak_rss_mib() -> float:
    """The process's peak resident memory so far (everything it did before the benchmark too)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def system_info() -> dict:
    threading = tf.config.threading
    return {
        "devices": ", ".join(device.name for device in tf.config.list_physical_devices()),
        "cpu_model": cpu_model(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version(),
        # 0 means TensorFlow's default: one thread per usable core.
        "intra_op_threads": threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": threading.get_inter_op_parallelism_threads(),
        "thread_environment": " ".join(f"{name}={os.environ[name]}" for name in _THREAD_VARIABLES
                                       if name in os.environ) or "none set",
    }


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS")


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux
        return platform.processor() or "unknown"
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else "unknown"
