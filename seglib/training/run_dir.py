"""A training run's folder: what `train` writes and every later step (predict, fuse, segment,
export, the report, the studies) reads. Its file names live here and nowhere else:

    RUN_DIR/config.json    the resolved RunConfig
    RUN_DIR/split.csv      id,split used
    RUN_DIR/model.keras    best weights by validation Dice
    RUN_DIR/history.csv    one row per epoch
    RUN_DIR/summary.json   epochs run, best validation Dice, wall time, images/s (written last)
    RUN_DIR/calibration.json  the probability threshold chosen on the validation split (seglib.training.calibration)
    RUN_DIR/backup/        the resume backup while training runs (removed when it finishes)
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from seglib.config import RunConfig
from seglib.data.io import DataError, atomic_file, write_text
from seglib.data.splits import read_split, write_split


def _in_run(name: str) -> property:
    """The path of `name` inside the run folder, as a read-only attribute."""
    return property(lambda run: run.path / name, doc=f"RUN_DIR/{name}")


class RunDir(os.PathLike):
    """One run folder. Passes for its path (os.fspath), so it goes wherever a folder is expected."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    config_path = _in_run("config.json")
    split_path = _in_run("split.csv")
    model_path = _in_run("model.keras")
    history_path = _in_run("history.csv")
    summary_path = _in_run("summary.json")
    calibration_path = _in_run("calibration.json")
    backup_path = _in_run("backup")

    def config(self) -> RunConfig:
        return RunConfig.load(self.config_path)

    def split(self) -> dict[str, str]:
        """image id -> train / val / test (/ unused)."""
        return read_split(self.split_path)

    def summary(self) -> dict:
        try:
            return json.loads(self.summary_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise DataError(f"{self.summary_path}: cannot read the run summary: {error}") from error

    def history(self):
        """history.csv as a DataFrame, one row per epoch."""
        import pandas as pd  # here: reading a run's config or split needs no pandas

        return pd.read_csv(self.history_path)

    def is_finished(self) -> bool:
        """Training wrote its summary, which it does last."""
        return self.summary_path.is_file()

    def load_model(self):
        """The run's model, loaded with Keras's safe_mode on (seglib.keras_objects registers its objects)."""
        import keras  # here: the rest of a run folder is read without TensorFlow

        from seglib.keras_objects import register_keras_objects

        if not self.model_path.exists():
            raise FileNotFoundError(f"{self.model_path}: no model in this run directory")
        if not zipfile.is_zipfile(self.model_path):
            raise DataError(f"{self.model_path}: truncated or damaged model file (not a complete .keras archive); "
                            "train again, or continue an interrupted run with train --resume")
        register_keras_objects()  # also when Keras was imported half-way through seglib
        return keras.saving.load_model(self.model_path, safe_mode=True)

    def write(self, config: RunConfig, split: dict[str, str] | None = None, model=None) -> RunDir:
        """Write the config, and the split and the model when given (the model through a temporary
        name, so a kill never leaves a truncated model.keras). Nothing here is overwritten but the model."""
        write_text(self.config_path, config.to_json())
        if split is not None:
            write_split(split, self.split_path)
        if model is not None:
            self.save_model(model)
        return self

    def save_model(self, model) -> None:
        with atomic_file(self.model_path, overwrite=True) as temporary:
            model.save(temporary)

    def write_summary(self, summary: dict) -> None:
        write_text(self.summary_path, json.dumps(summary, indent=2))


def load_run_model(run_dir: str | os.PathLike):
    """The model of the run in `run_dir` (RunDir.load_model)."""
    return RunDir(run_dir).load_model()
