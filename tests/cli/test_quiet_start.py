"""TensorFlow's start-up notices ("Could not find cuda drivers", "failed call to cuInit", absl's
pre-initialisation warning) stay out of the commands' output; the devices in use are one line."""

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import untrained_run, write_square_dataset

from seglib.tensorflow_start import LOG_LEVEL_VARIABLE, filtered_stderr

ROOT = Path(__file__).resolve().parents[2]
NOISE = re.compile(r"cuda|cuInit|absl", re.IGNORECASE)


def _fresh_environment(**variables) -> dict:
    """The environment of a user's shell: this test process set TF_CPP_MIN_LOG_LEVEL when it imported seglib."""
    environment = {k: v for k, v in os.environ.items() if k != LOG_LEVEL_VARIABLE}
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return environment | variables


def test_segment_prints_no_tensorflow_start_up_noise(tmp_path):
    images = write_square_dataset(tmp_path / "squares", n=2) / "images"
    run = untrained_run(tmp_path / "run")
    result = subprocess.run([sys.executable, "-m", "seglib", "segment", "--runs", str(run), "--images", str(images),
                             "--out", str(tmp_path / "segmented")],
                            capture_output=True, text=True, env=_fresh_environment(), timeout=600)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "segmented" / "areas.csv").is_file()
    assert [line for line in result.stderr.splitlines() if NOISE.search(line)] == []


def test_only_the_start_up_notices_are_dropped_from_what_cpp_writes(capfd):
    with filtered_stderr():
        os.write(2, b"W0000 00:00:1.0 1 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n")
        os.write(2, b"E0000 00:00:1.0 1 some_kernel.cc:12] out of memory allocating 4 GB\n")
        print("a Python warning", file=sys.stderr)
    caught = capfd.readouterr().err
    assert "out of memory allocating 4 GB" in caught and "a Python warning" in caught
    assert "cuda drivers" not in caught


def test_devices_line_names_the_hardware_training_uses():
    import tensorflow as tf

    from seglib.training.hardware import devices_line

    line = devices_line(tf.distribute.get_strategy())
    if tf.config.list_physical_devices("GPU"):
        assert re.fullmatch(r"devices: GPU:0 \(.+\)", line)
    else:
        assert re.fullmatch(r"devices: CPU \(\d+ threads?\)", line)
