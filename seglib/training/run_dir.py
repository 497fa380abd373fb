"""A training run's folder: what `train` writes and every later step (predict, fuse, segment,
export, the report, the studies) reads. Its file names live here and nowhere else:

    RUN_DIR/config.json    the resolved RunConfig
    RUN_DIR/split.csv      id,split used
    RUN_DIR/model.keras    best weights by validation Dice
    RUN_DIR/history.csv    one row per epoch
    RUN_DIR/summary.json   epochs run, best validation Dice, wall time, images/s (written last)
    RUN_DIR/calibration.json  the probability thresholds chosen on the validation split, without and with flip TTA
                           (seglib.training.calibration; read with RunDir.thresholds)
    RUN_DIR/backup/        the resume backup while training runs (removed when it finishes)
    RUN_DIR/weights.float16.npz  instead of model.keras in a shipped run (seglib.models: seglib/models/NAME/):
                           the weights in half precision, half the size; the network is rebuilt from
                           config.json and computes in float32
"""

from __future__ import annotations

import json
import os
import zipfile

from seglib.config import RUN_CONFIG_FILE, RunConfig, checked_threshold
from seglib.data.folders import Folder
from seglib.data.io import DataError, atomic_file, write_text
from seglib.data.splits import read_split, write_split

_RUN_FILES = []  # every file name given to _in_run: what a run folder holds (RunDir.LAYOUT)


def _in_run(name: str) -> property:
    """The path of `name` inside the run folder, as a read-only attribute."""
    _RUN_FILES.append(name)
    return property(lambda run: run.path / name, doc=f"RUN_DIR/{name}")


class RunDir(Folder):
    """One run folder. Passes for its path (os.fspath), so it goes wherever a folder is expected."""

    config_path = _in_run(RUN_CONFIG_FILE)
    split_path = _in_run("split.csv")
    model_path = _in_run("model.keras")
    history_path = _in_run("history.csv")
    summary_path = _in_run("summary.json")
    calibration_path = _in_run("calibration.json")
    backup_path = _in_run("backup")
    float16_weights_path = _in_run("weights.float16.npz")
    # Every file training writes into the run (seglib.data.outputs.claim_folder): any other is a person's.
    LAYOUT = (*_RUN_FILES, "backup/*", ".*.tmp*")  # the backup's files, atomic writes' temporaries

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

    def thresholds(self, tta: bool = False) -> dict[str, float]:
        """structure -> the probability threshold chosen on the validation split (seglib.training.calibration);
        with `tta`, the one chosen on flip-TTA-averaged maps where the run has one ("threshold_tta"; older runs
        have none), else the plain one. Empty for a run without calibration.json: 0.5 applies. Each is a
        probability strictly between 0 and 1 (seglib.config.checked_threshold), of a structure the run predicts."""
        path = self.calibration_path
        if not path.exists():
            return {}
        try:
            stored = json.loads(path.read_text())
            chosen = {"threshold": dict(stored["threshold"]), "threshold_tta": dict(stored.get("threshold_tta", {}))}
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise DataError(f"{path}: not a seglib calibration file: {error}") from error
        structures = set(self.config().structures)
        for key, by_structure in chosen.items():  # both checked, whichever is asked for
            unknown = sorted(set(by_structure) - structures)
            if unknown:
                raise DataError(f"{path}: {key} of {', '.join(unknown)}, which the run does not predict")
            chosen[key] = {s: checked_threshold(t, f"{path}: {key} of {s}") for s, t in by_structure.items()}
        return {**chosen["threshold"], **(chosen["threshold_tta"] if tta else {})}

    def history(self):
        """history.csv as a DataFrame, one row per epoch."""
        import pandas as pd  # here: reading a run's config or split needs no pandas

        return pd.read_csv(self.history_path)

    def is_finished(self) -> bool:
        """Training wrote its summary, which it does last."""
        return self.summary_path.is_file()

    def load_model(self):
        """The run's model, loaded with Keras's safe_mode on (seglib.keras_objects registers its objects), checked
        against config.json."""
        if not self.model_path.exists() and self.float16_weights_path.exists():
            return self._model_from_float16_weights()
        if not self.model_path.exists():
            raise FileNotFoundError(f"{self.model_path}: no model in this run directory")
        if not zipfile.is_zipfile(self.model_path):
            raise DataError(f"{self.model_path}: truncated or damaged model file (not a complete .keras archive); "
                            "train again, or continue an interrupted run with train --resume")
        return self._checked(self._keras_model())

    def _keras_model(self):
        import keras  # here: the rest of a run folder is read without TensorFlow

        from seglib import __version__
        from seglib.keras_objects import register_keras_objects

        register_keras_objects()  # also when Keras was imported half-way through seglib
        try:
            return keras.saving.load_model(self.model_path, safe_mode=True)
        except (TypeError, ValueError, KeyError, OSError) as error:
            # A class this version does not know (a run of another seglib version), an object safe_mode refuses,
            # damaged weights: Keras's own text, a page long, is cut to its first sentence.
            raise DataError(f"{self.model_path}: seglib {__version__} cannot load this model (saved by another "
                            f"version?): {_first_sentence(error)}") from error

    def _checked(self, model):
        """`model` if it is the network config.json describes (a hand-edited config.json would mislabel its maps)."""
        config, network = self.config(), getattr(model, "segmenter", model)  # a consistency run: its U-Net
        size = None if config.patch_training else config.image_size  # a patch-trained network takes any size
        expected = {"structures": (network.output_shape[-1], len(config.structures), "predicts {} structure(s)"),
                    "side_aware": (network.input_shape[-1], 1 + config.side_aware, "takes {} input channel(s) (the "
                                   "film, and the side channel when side-aware)"),
                    "image_size": (network.input_shape[1], size, "takes images of {} pixels")}
        for name, (has, fits, what) in expected.items():
            if has != fits:
                raise DataError(f"{self.config_path}: {name} {getattr(config, name)!r} does not fit "
                                f"{self.model_path.name}, which {what.format(has)}")
        return model

    def _model_from_float16_weights(self):
        """The network of config.json with the stored half-precision weights, in float32. The archive holds
        plain arrays (read without pickle), so this is as safe as Keras's safe_mode."""
        import numpy as np

        from seglib.networks.unet import build_model

        config = self.config()
        model = build_model(config, channels=1 + config.side_aware)
        try:
            with np.load(self.float16_weights_path, allow_pickle=False) as stored:
                weights = [stored[f"w{i:03d}"].astype(np.float32) for i in range(len(stored.files))]
            model.set_weights(weights)
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as error:  # truncated: BadZipFile
            raise DataError(f"{self.float16_weights_path}: damaged weights, or not the network of "
                            f"{self.config_path.name}: {error}") from error
        return model

    def save_float16_weights(self, model) -> None:
        """The model's weights in half precision (a shipped run): plain arrays in the order of get_weights."""
        import numpy as np

        arrays = {f"w{i:03d}": w.astype(np.float16) for i, w in enumerate(model.get_weights())}
        with atomic_file(self.float16_weights_path, overwrite=True) as temporary:
            with open(temporary, "wb") as file:
                np.savez_compressed(file, **arrays)

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


def _first_sentence(error: BaseException) -> str:
    """The first sentence of the innermost error behind `error` (Keras wraps the one that names the class)."""
    while error.__cause__ or error.__context__:
        error = error.__cause__ or error.__context__
    text = str(error).strip()
    return text.splitlines()[0].split(". ")[0][:300] if text else type(error).__name__


def load_run_model(run_dir: str | os.PathLike):
    """The model of the run in `run_dir` (RunDir.load_model)."""
    return RunDir(run_dir).load_model()
