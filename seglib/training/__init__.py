"""Training a model into a run directory: the fit loop, the run folder (RunDir), the threshold chosen on the validation split, its callbacks and metrics, and the
hardware it runs on (distribution strategy, mixed precision, XLA)."""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "fit": ("train", "compile_model", "write_untrained_run"),
    "run_dir": ("RunDir", "load_run_model"),
    "calibration": ("choose_thresholds", "recalibrate"),
    "callbacks": ("training_callbacks", "TrainingClock", "RunCheckpoints", "TrainingProfiler"),
    "metrics": ("DiceScore",),
    "hardware": ("DISTRIBUTION_STRATEGIES", "choose_strategy", "mixed_precision"),
})
