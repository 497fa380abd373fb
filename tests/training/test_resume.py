"""An interrupted training resumes from its last completed epoch."""

import signal
import subprocess
import sys
import time

import pytest
from conftest import write_square_dataset

from seglib.config import profile_config
from seglib.training.fit import train
from seglib.training.run_dir import RunDir

EPOCHS = 8


def _history_rows(path):
    return len(path.read_text().splitlines()) - 1 if path.exists() else 0


@pytest.mark.slow
def test_a_killed_run_resumes_and_logs_every_epoch_once(tmp_path):
    data = write_square_dataset(tmp_path / "d", n=8, size=32)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "seglib", "train", "--data", str(data), "--structure", "left_thing",
               "--out", str(run), "--profile", "demo", "--image-size", "32", "--depth", "2",
               "--base-filters", "4", "--epochs", str(EPOCHS),  # demo: early stopping needs 8 flat epochs
               "--checkpoint-seconds", "0"]  # a backup at every epoch, so the kill lands after one
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _history_rows(RunDir(run).history_path) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = _history_rows(RunDir(run).history_path)
    assert 2 <= done_before < EPOCHS, "the run should have been killed mid-way"
    assert not RunDir(run).is_finished()

    config = profile_config("demo", data=str(data), structures=("left_thing",), image_size=32, depth=2,
                            base_filters=4, epochs=EPOCHS, checkpoint_seconds=0)
    train(config, run, resume=True, verbose=0)
    history = RunDir(run).history()
    assert history["epoch"].tolist() == list(range(EPOCHS))
    # The training time counts on from the epochs kept, not from zero: time to accuracy stays readable.
    assert history["seconds"].is_monotonic_increasing
    assert RunDir(run).model_path.exists() and not RunDir(run).backup_path.exists()


@pytest.mark.slow
def test_resume_refuses_another_config_or_a_finished_run(tmp_path):
    data = write_square_dataset(tmp_path / "d", n=8, size=32)
    config = profile_config("smoke", data=str(data), structures=("left_thing",), image_size=32, depth=2, epochs=1)
    train(config, tmp_path / "run", verbose=0)
    with pytest.raises(ValueError, match="already finished"):
        train(config, tmp_path / "run", resume=True)
    other = profile_config("smoke", data=str(data), structures=("left_thing",), image_size=32, depth=2, epochs=3)
    with pytest.raises(ValueError, match="config.json differs"):
        train(other, tmp_path / "run", resume=True)
