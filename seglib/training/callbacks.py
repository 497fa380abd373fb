"""The Keras callbacks of a training run (the history clock, checkpoints and resume backup, the
learning-rate schedule, early stopping) and the timing callbacks of the speed benchmark."""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras

from seglib.config import RunConfig
from seglib.training.run_dir import RunDir


def training_callbacks(config: RunConfig, run_dir: str | Path, best_val_dice: float | None = None,
                       seconds_trained: float = 0.0) -> list[keras.callbacks.Callback]:
    # Callbacks run in list order at each epoch end: the log row is written before the checkpoints.
    run = RunDir(run_dir)
    return [
        TrainingClock(seconds_trained),
        keras.callbacks.CSVLogger(run.history_path, append=True),
        learning_rate_callback(config),
        # The best weights are kept by RunCheckpoints, which writes them to model.keras.
        # Stop when `patience` epochs in a row gain less than 0.001 validation Dice: a flat curve. Under the
        # cosine schedule not before half the epochs: a plateau at a high learning rate is not convergence,
        # and stopped there the rate never decays (reports/benchmarks.md, "Early stopping").
        keras.callbacks.EarlyStopping(monitor="val_dice", mode="max", patience=config.early_stopping_patience,
                                      min_delta=1e-3, start_from_epoch=_first_epoch_to_stop(config)),
        RunCheckpoints(run, config.checkpoint_seconds, best_val_dice),
    ]


class TrainingClock(keras.callbacks.Callback):
    """Adds `seconds` to every epoch's log (and so to history.csv): the training time so far (counting on
    from `seconds_trained` when resumed), so the time a run needed to reach a validation Dice can be read
    off its history, not only the epoch."""

    def __init__(self, seconds_trained: float = 0.0):
        super().__init__()
        self._seconds_trained = seconds_trained

    def on_train_begin(self, logs=None):
        self._started = time.perf_counter() - self._seconds_trained

    def on_epoch_end(self, epoch, logs=None):
        logs["seconds"] = round(time.perf_counter() - self._started, 2)


class RunCheckpoints(keras.callbacks.BackupAndRestore):
    """model.keras (the weights of the best validation Dice) and the resume backup (the latest
    weights and optimizer state, with the previous copy kept so a run killed while writing one
    resumes from the other), both written at an epoch end only when `interval_seconds` have passed
    since the last write, and at the end. Each write costs more than a short epoch; in between, the
    best weights wait in memory. The best model is written before the backup, so an epoch the
    backup counts as done never lacks its model; a killed run repeats at most that much training."""

    def __init__(self, run_dir: str | Path, interval_seconds: float, best_val_dice: float | None = None):
        self.run = RunDir(run_dir)
        super().__init__(str(self.run.backup_path), double_checkpoint=True)
        self.interval_seconds = interval_seconds
        self.best = -math.inf if best_val_dice is None else best_val_dice
        self._best_weights, self._last_write = None, time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if logs["val_dice"] > self.best:
            self.best, self._best_weights = logs["val_dice"], self.model.get_weights()
        if time.monotonic() - self._last_write >= self.interval_seconds:
            self._write_best_model()
            super().on_epoch_end(epoch, logs)  # the backup
            self._last_write = time.monotonic()

    def on_train_end(self, logs=None):
        self._write_best_model()
        super().on_train_end(logs)  # removes the backup: the run is complete

    def _write_best_model(self) -> None:
        if self._best_weights is None:
            return
        latest = self.model.get_weights()
        self.model.set_weights(self._best_weights)
        self.run.save_model(self.model)  # through a temporary name: never a truncated model file
        self.model.set_weights(latest)
        self._best_weights = None


def _first_epoch_to_stop(config: RunConfig) -> int:
    return config.epochs // 2 if config.lr_schedule == "cosine" else 0


def learning_rate_callback(config: RunConfig) -> keras.callbacks.Callback:
    if config.lr_schedule == "plateau":
        return keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                 patience=max(2, config.early_stopping_patience // 3), min_lr=1e-5)
    if config.lr_schedule == "cosine":
        def cosine(epoch, _rate):
            return float(config.learning_rate * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs)))
        return keras.callbacks.LearningRateScheduler(cosine)
    raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}")


class EpochTimer(keras.callbacks.Callback):
    """Wall time of every epoch, so the tracing epoch can be left out."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


class TrainingProfiler(keras.callbacks.Callback):
    """Where `model.fit` spends its wall time, by stage. Put it first in the callback list: the time
    from its on_epoch_end to the next epoch (or the end) is then the other callbacks' work (history
    log, checkpoint, learning rate, early stopping, backup). The first epoch, which traces the
    functions, is kept apart.

    Keras fetches each batch inside the compiled train function, so waiting for input counts as
    step time; `measure_pipeline` shows whether the pipeline keeps up."""

    STAGES = ("first epoch (decode and cache, tracing)", "train steps", "Python between steps", "validation",
              "epoch-end callbacks")

    def __init__(self):
        super().__init__()
        self.seconds = dict.fromkeys(self.STAGES, 0.0)
        self.epoch, self.steps, self._mark = 0, 0, None

    def _close(self, stage: str) -> None:
        """Charge the time since the previous event to `stage` (to the first epoch while in it)."""
        now = time.perf_counter()
        if self._mark is not None:
            self.seconds[self.STAGES[0] if self.epoch == 0 else stage] += now - self._mark
        self._mark = now

    def on_epoch_begin(self, epoch, logs=None):
        self._close("epoch-end callbacks")
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self._close("Python between steps")

    def on_train_batch_end(self, batch, logs=None):
        self._close("train steps")
        self.steps += self.epoch > 0

    def on_test_begin(self, logs=None):
        self._close("Python between steps")

    def on_test_end(self, logs=None):
        self._close("validation")

    def on_epoch_end(self, epoch, logs=None):
        self._close("Python between steps")

    def on_train_end(self, logs=None):
        self._close("epoch-end callbacks")
