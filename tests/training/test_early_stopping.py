"""Early stopping ends a run whose validation Dice is flat, but under the cosine schedule not before half
its epochs: a plateau at a high learning rate is not convergence."""


import pytest
from conftest import write_square_dataset

from seglib.config import profile_config
from seglib.training.fit import train
from seglib.training.run_dir import RunDir

EPOCHS = 8


def _epochs_run(data, run, lr_schedule):
    # A learning rate of 1e-12 moves no float32 weight, so the validation Dice is flat from the first epoch.
    config = profile_config("smoke", data=str(data), structures=("left_thing",), image_size=32, depth=2,
                            base_filters=4, epochs=EPOCHS, learning_rate=1e-12, early_stopping_patience=1,
                            lr_schedule=lr_schedule, val_fraction=0.25, test_fraction=0.0)
    return RunDir(train(config, run, verbose=0)).summary()["epochs_run"]


@pytest.mark.slow
def test_a_flat_run_stops_early_but_not_before_half_of_a_cosine_schedule(tmp_path):
    data = write_square_dataset(tmp_path / "d", n=8, size=32)
    assert _epochs_run(data, tmp_path / "plateau", "plateau") <= 3
    assert EPOCHS // 2 < _epochs_run(data, tmp_path / "cosine", "cosine") < EPOCHS
