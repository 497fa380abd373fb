"""Train one model (per bone, or several structures at once) into a run directory
(seglib.training.run_dir.RunDir: config, split, model, history, summary)."""

from __future__ import annotations

import json
import shutil
import sys
import time
import zipfile
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf

from seglib.config import RunConfig
from seglib.data.io import DataError, write_text
from seglib.data.layout import available_structures, load_records, require_structures
from seglib.data.outputs import check_replaceable, claim_folder, output_folder, seal
from seglib.data.pipeline import evaluation_dataset, training_dataset
from seglib.data.splits import records_in, split_records
from seglib.data.validation import check_dataset
from seglib.losses.spec import get_loss
from seglib.networks.unet import build_model
from seglib.symmetry.consistency import BilateralConsistencyModel
from seglib.symmetry.partners import mirror_targets
from seglib.training.calibration import choose_thresholds
from seglib.training.callbacks import training_callbacks
from seglib.training.hardware import (
    choose_strategy,
    devices_line,
    global_batch_size,
    jit_compile_option,
    mixed_precision,
)
from seglib.training.metrics import DiceScore
from seglib.training.run_dir import RunDir
from seglib.training.transfer import check_init, load_initial_weights, untrained_structures


def set_determinism(seed: int, deterministic_ops: bool = True) -> None:
    """Same seed on the same machine: the same weights (Python, NumPy, TF seeds; deterministic ops)."""
    keras.utils.set_random_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()


def structures_to_load(config: RunConfig) -> tuple[str, ...]:
    """The targets, plus their mirror partners when mirrored examples are used."""
    require_structures(config.data, config.structures)  # a missing structure is not a mirror-flip problem
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
    """The records, after the same checks as `python -m seglib check`: bad data is refused, not
    skipped, and check's warnings (e.g. files that are not read) are repeated on stderr."""
    if not Path(config.data).is_dir():
        raise DataError(f"{config.data}: dataset folder not found")
    structures = structures_to_load(config)
    problems = check_dataset(config.data, structures)
    warnings = [p for p in problems if p.level == "warning"]
    for warning in warnings[:20]:
        print(warning, file=sys.stderr)
    if len(warnings) > 20:
        print(f"warning: ... and {len(warnings) - 20} more (python -m seglib check --data {config.data})", file=sys.stderr)
    errors = [p for p in problems if p.level == "error"]
    if errors:
        shown = "\n  ".join(str(p) for p in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise DataError(f"{config.data}: {len(errors)} problem(s) in the dataset:\n  {shown}{more}")
    return load_records(config.data, structures, report_skipped=False)


def train(config: RunConfig, run_dir: str | Path, force: bool = False, resume: bool = False,
          verbose: int | str = "auto", callbacks: tuple[keras.callbacks.Callback, ...] = ()) -> Path:
    """Train and return the run directory. An existing non-empty run directory is refused unless
    `force` (train anew beside it; the earlier run is replaced only when the new one is complete)
    or `resume` (continue an interrupted run from its last backup).
    `callbacks` run before seglib's own (e.g. the benchmark's seglib.training.callbacks.TrainingProfiler)."""
    # First: MultiWorkerMirroredStrategy must configure TensorFlow before it runs any op.
    strategy = choose_strategy(config.validate().strategy)
    if verbose:  # beside Keras's progress
        print(devices_line(strategy), flush=True)
    if config.init:
        check_init(config)
        if verbose:  # the demo profile chooses it by itself (init auto): say so
            fresh = untrained_structures(config)
            outputs = f" with a fresh output layer for {', '.join(fresh)}" if fresh else ""
            print(f"start: the weights of {config.init}{outputs}, trained on at {config.image_size} px, learning "
                  f"rate {config.learning_rate:g}, {config.epochs} epochs (--init none: from random weights)", flush=True)
    records = load_checked_records(config)
    if resume:
        split = _resumable_split(config, Path(run_dir), records)
    else:
        split = split_records(records, config.val_fraction, config.test_fraction, config.seed,
                              root=Path(config.data), split_file=config.split_file)
    train_records, val_records = records_in(records, split, "train"), records_in(records, split, "val")
    if not train_records or not val_records:
        raise DataError(f"{config.data}: the split leaves {len(train_records)} training and "
                        f"{len(val_records)} validation images; both must be non-empty")
    run_dir = Path(run_dir)
    if resume:
        return _fit(config, run_dir, train_records, val_records, resume, verbose, strategy, callbacks)
    inputs = [config.data, config.split_file]
    if check_replaceable(run_dir, "train", inputs, force):
        # --force onto an earlier run: the new run is trained in a temporary sibling and replaces the
        # old one only when complete; a failed or interrupted new run leaves the old run as it was.
        with output_folder(run_dir, "train", inputs, force) as new_run:
            _start(config, new_run, split, train_records, val_records, verbose, strategy, callbacks)
        return run_dir
    claim_folder(run_dir, "train", inputs, RunDir.LAYOUT)
    try:
        return _start(config, run_dir, split, train_records, val_records, verbose, strategy, callbacks)
    except Exception:
        # A failed run must not pass for a result. A kill or Ctrl-C (not an Exception) leaves it to --resume.
        shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _start(config: RunConfig, run_dir: Path, split, train_records, val_records, verbose, strategy, callbacks) -> Path:
    RunDir(run_dir).write(config, split=split)
    return _fit(config, run_dir, train_records, val_records, False, verbose, strategy, callbacks)


def _fit(config: RunConfig, run_dir: Path, train_records, val_records, resume: bool, verbose, strategy,
         callbacks) -> Path:
    set_determinism(config.seed, config.deterministic)
    batch_size = global_batch_size(config.batch_size, strategy)
    train_data = training_data(config, train_records, batch_size)
    val_data = evaluation_dataset(val_records, config.structures, config.image_size, batch_size,
                                  side_aware=config.side_aware)
    # The policy must be set before the model is built; the context restores it afterwards.
    with mixed_precision(config.mixed_precision), strategy.scope():
        model = compile_model(config)
    if config.init:  # a resumed run's backup, restored by fit, then replaces these weights
        load_initial_weights(getattr(model, "segmenter", model), config)
    run = RunDir(run_dir)
    kept = _history_kept_by_backup(run)  # what a resumed run continues from; None on a fresh run
    started = time.perf_counter()
    model.fit(train_data, validation_data=val_data, epochs=config.epochs, verbose=verbose,
              callbacks=[*callbacks, *training_callbacks(config, run_dir, best_val_dice=_best_val_dice(kept),
                                                         seconds_trained=_seconds_trained(kept))],
              shuffle=False)  # the tf.data pipeline shuffles, seeded
    seconds = time.perf_counter() - started
    # The outline's threshold, measured at the films' own size with the best weights (those model.keras holds).
    choose_thresholds(run.load_model(), config, run_dir, val_records)
    _write_summary(run, _deduplicated_history(run), seconds, len(train_records), resume,
                   replicas=strategy.num_replicas_in_sync)
    seal(run_dir)  # complete: --force may replace it later, unless someone has added to it
    return run_dir


def training_data(config: RunConfig, records, batch_size: int):
    """The run's tf.data training batches (seglib.data.pipeline.training_dataset with the config's options)."""
    return training_dataset(records, config.structures, config.image_size, batch_size, config.seed,
                            augment=config.augment, mirror_flip=config.mirror_flip, side_aware=config.side_aware,
                            patch_size=config.patch_size, foreground_crops=config.foreground_crops,
                            intensity=config.intensity_augmentation)


def _resumable_split(config: RunConfig, run_dir: Path, records) -> dict[str, str]:
    """The split of an interrupted run, after checking it is the same run."""
    run = RunDir(run_dir)
    if not run.config_path.exists():
        raise FileNotFoundError(f"{run_dir}: nothing to resume (no {run.config_path.name})")
    if run.config() != config:
        raise ValueError(f"{run_dir}: its {run.config_path.name} differs from this run's settings; cannot resume")
    if run.is_finished():
        raise ValueError(f"{run_dir}: this run has already finished")
    return split_records(records, 0, 0, 0, split_file=run.split_path)


def _history_kept_by_backup(run: RunDir) -> pd.DataFrame | None:
    """The history rows of the epochs the resume backup holds; epochs logged after the backup are
    trained again on resume, so they do not count. None when there is no intact model or backup yet
    (a kill while writing model.keras truncates the zip): then the run starts afresh."""
    path, backup = run.history_path, run.backup_path / "training_metadata.json"
    if not path.exists() or path.stat().st_size == 0 or not zipfile.is_zipfile(run.model_path) or not backup.exists():
        return None
    history = run.history()
    return history[history["epoch"] < json.loads(backup.read_text())["epoch"]]


def _best_val_dice(done: pd.DataFrame | None) -> float | None:
    """The best validation Dice kept by the resume backup: a resumed run must not replace a better saved model."""
    return float(done["val_dice"].max()) if done is not None and len(done) else None


def _seconds_trained(done: pd.DataFrame | None) -> float:
    """The training time the resume backup holds, so a resumed run's history counts on from it."""
    return float(done["seconds"].iloc[-1]) if done is not None and len(done) and "seconds" in done else 0.0


def _deduplicated_history(run: RunDir) -> pd.DataFrame:
    """history.csv with one row per epoch: an epoch interrupted after its row was logged but before
    the backup was written is trained again on resume; its second row wins."""
    history = run.history().drop_duplicates("epoch", keep="last").reset_index(drop=True)
    write_text(run.history_path, history.to_csv(index=False), overwrite=True)
    return history


def compile_model(config: RunConfig) -> keras.Model:
    model = build_model(config, channels=1 + config.side_aware)
    if config.consistency_weight:
        model = BilateralConsistencyModel(model, config.structures, weight=config.consistency_weight)
        model.build(model.segmenter.input_shape)  # BackupAndRestore needs a built model
    # Gradient clipping guards against the occasional Dice-loss spike on small batches.
    optimizer = keras.optimizers.Adam(config.learning_rate, clipnorm=1.0)
    model.compile(optimizer=optimizer, loss=get_loss(config.loss), metrics=[DiceScore(name="dice")],
                  jit_compile=jit_compile_option(config.jit_compile) and not config.deterministic)
    _create_state(model, config)
    return model


def _create_state(model: keras.Model, config: RunConfig) -> None:
    """Create the optimizer's and the metrics' variables now. Keras (without a distribution strategy of its own)
    leaves them to the first traced training step, and a tf.function that creates variables is traced twice: the
    first epoch paid for tracing the whole step a second time (reports/benchmarks.md, "The first epoch")."""
    model.optimizer.build(model.trainable_variables)
    blank = keras.ops.zeros((1, config.crop_size, config.crop_size, len(config.structures)))
    model.compute_metrics(None, blank, blank)  # DiceScore sizes its variables on its first update
    model.reset_metrics()


def _write_summary(run: RunDir, history: pd.DataFrame, seconds: float, n_train: int, resumed: bool,
                   replicas: int = 1) -> None:
    best = int(history["val_dice"].idxmax())
    summary = {
        "epochs_run": len(history),
        "best_val_dice": float(history["val_dice"][best]),
        "best_epoch": int(history["epoch"][best]) + 1,
        "resumed": resumed,
        "replicas": replicas,  # devices (or workers) the training was distributed over
        "train_seconds": round(seconds, 1),  # of this call (the resumed part, when resumed)
        "train_images_per_second": round(len(history) * n_train / seconds, 1) if not resumed else None,
    }
    run.write_summary(summary)


def write_untrained_run(config: RunConfig, run_dir: str | Path) -> RunDir:
    """A run directory as predict reads it (config and model), its model compiled but untrained, its
    weights drawn from config.seed: for measuring speed, where the weights' values do not matter, and
    for tests."""
    keras.utils.set_random_seed(config.seed)
    with mixed_precision(config.mixed_precision):
        model = compile_model(config)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return RunDir(run_dir).write(config, model=model)
