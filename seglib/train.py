"""Train one model (per bone, or several structures at once) into a run directory:

    RUN_DIR/config.json    the resolved RunConfig
    RUN_DIR/split.csv      id,split used
    RUN_DIR/model.keras    best weights by validation Dice
    RUN_DIR/history.csv    one row per epoch
    RUN_DIR/summary.json   epochs run, best validation Dice, wall time, images/s
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import tensorflow as tf

from seglib.config import RunConfig
from seglib.checks import check_dataset
from seglib.datasets import DataError, available_structures, load_records, records_in, split_records, write_split
from seglib.io import prepare_output_dir, write_text
from seglib.losses import get_loss
from seglib.metrics import DiceScore
from seglib.models import build_model
from seglib.pipeline import evaluation_dataset, training_dataset
from seglib.symmetry import mirror_targets


def set_determinism(seed: int) -> None:
    """Same seed on the same machine: the same weights (Python, NumPy, TF seeds; deterministic ops)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def structures_to_load(config: RunConfig) -> tuple[str, ...]:
    """The targets, plus their mirror partners when mirrored examples are used."""
    if not config.mirror_flip:
        return config.structures
    partners = mirror_targets(config.structures)
    if partners is None:
        raise ValueError(f"mirror_flip: {', '.join(config.structures)} has no declared mirror partner; "
                         "disable it (--no-mirror-flip)")
    missing = sorted(set(partners) - set(available_structures(config.data)))
    if missing:
        raise DataError(f"{config.data}: mirror_flip needs masks of the partner structure(s) {', '.join(missing)}; "
                        "add them or disable it (--no-mirror-flip)")
    return tuple(dict.fromkeys(config.structures + partners))


def load_checked_records(config: RunConfig):
    """The records, after the same checks as `python -m seglib check`: bad data is refused, not skipped."""
    structures = structures_to_load(config)
    problems = [p for p in check_dataset(config.data, structures) if p.level == "error"]
    if problems:
        shown = "\n  ".join(str(p) for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DataError(f"{config.data}: {len(problems)} problem(s) in the dataset:\n  {shown}{more}")
    return load_records(config.data, structures)


def train(config: RunConfig, run_dir: str | Path, force: bool = False, verbose: int | str = "auto") -> Path:
    """Train and return the run directory. An existing non-empty run directory is refused unless `force`."""
    records = load_checked_records(config)
    split = split_records(records, config.val_fraction, config.test_fraction, config.seed,
                          root=Path(config.data), split_file=config.split_file)
    train_records, val_records = records_in(records, split, "train"), records_in(records, split, "val")
    if not train_records or not val_records:
        raise DataError(f"{config.data}: the split leaves {len(train_records)} training and "
                        f"{len(val_records)} validation images; both must be non-empty")
    run_dir = prepare_output_dir(run_dir, force=force)
    write_text(run_dir / "config.json", config.to_json())
    write_split(split, run_dir / "split.csv")

    set_determinism(config.seed)
    train_data = training_dataset(train_records, config.structures, config.image_size, config.batch_size,
                                  config.seed, augment=config.augment, mirror_flip=config.mirror_flip)
    val_data = evaluation_dataset(val_records, config.structures, config.image_size, config.batch_size)
    model = compile_model(config)
    started = time.perf_counter()
    history = model.fit(train_data, validation_data=val_data, epochs=config.epochs,
                        callbacks=training_callbacks(config, run_dir), verbose=verbose,
                        shuffle=False)  # the tf.data pipeline shuffles, seeded
    seconds = time.perf_counter() - started
    _write_summary(run_dir, history.history, seconds, len(train_records))
    return run_dir


def compile_model(config: RunConfig) -> keras.Model:
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=get_loss(config.loss),
                  metrics=[DiceScore(name="dice")])
    return model


def training_callbacks(config: RunConfig, run_dir: Path) -> list[keras.callbacks.Callback]:
    return [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        keras.callbacks.ModelCheckpoint(run_dir / "model.keras", monitor="val_dice", mode="max",
                                        save_best_only=True),
        keras.callbacks.CSVLogger(run_dir / "history.csv", append=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                          patience=max(2, config.early_stopping_patience // 3), min_lr=1e-5),
        keras.callbacks.EarlyStopping(monitor="val_dice", mode="max", patience=config.early_stopping_patience,
                                      restore_best_weights=True),
    ]


def _write_summary(run_dir: Path, history: dict, seconds: float, n_train: int) -> None:
    epochs = len(history["loss"])
    val_dice = history.get("val_dice", [float("nan")])
    summary = {
        "epochs_run": epochs,
        "best_val_dice": max(val_dice),
        "best_epoch": int(val_dice.index(max(val_dice))) + 1,
        "train_seconds": round(seconds, 1),
        "train_images_per_second": round(epochs * n_train / seconds, 1),
    }
    write_text(run_dir / "summary.json", json.dumps(summary, indent=2))


def load_run_model(run_dir: str | Path) -> keras.Model:
    """The run's model, loaded with Keras's safe_mode on."""
    import seglib.losses  # noqa: F401  (registers the serializable losses and metrics)
    import seglib.metrics  # noqa: F401

    path = Path(run_dir) / "model.keras"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no model in this run directory")
    return keras.saving.load_model(path, safe_mode=True)
