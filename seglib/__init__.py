"""seglib: bilateral bone segmentation in 2D X-rays with Keras 3 and TensorFlow.

The public API, without knowing file names (each name is imported on first use, so
`import seglib` stays light):

    from seglib import train, Predictor, fuse, evaluate_folder, build_report

A function for each command with a Python use, e.g. `seglib.segment("films", "out")` (`segment`, with the
pelvis model that ships with seglib) and `seglib.pretrained("pelvis")` (its Predictor, for films in memory).

Subpackages, one per concern: data, phantom, symmetry, networks, losses, training, models (the shipped
models), inference, evaluation, reporting, experiments, workflow, cli (see docs/architecture.md).
"""

from seglib.tensorflow_start import quiet_tensorflow_start

quiet_tensorflow_start()  # first: before any seglib module imports TensorFlow

from seglib._lazy import lazy_exports  # noqa: E402
from seglib.keras_objects import register_when_keras_is_imported  # noqa: E402

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_exports(__name__, {
    "config": ("RunConfig", "profile_config", "PROFILES"),
    "data.io": ("DataError", "read_image", "read_mask"),
    "data.layout": ("load_records", "list_images", "available_structures"),
    "data.splits": ("split_records", "read_split"),
    "data.validation": ("check_dataset",),
    "data.adapters": ("import_dataset",),
    "phantom.dataset": ("write_phantom_dataset",),
    "symmetry.partners": ("partner_of",),
    "symmetry.midline": ("estimate_midline",),
    "networks.unet": ("build_model",),
    "losses.spec": ("get_loss",),
    "training.fit": ("train",),
    "training.run_dir": ("RunDir", "load_run_model"),
    "inference.predictor": ("Predictor", "predict_folder", "fuse_folder"),
    "inference.fusion": ("fuse",),
    "inference.quality": ("film_quality",),
    "inference.segment": ("segment", "pretrained", "Segmentation", "segment_folder"),
    "inference.saved_model": ("export_run",),
    "evaluation.metrics": ("segmentation_metrics",),
    "evaluation.folder": ("evaluate_folder",),
    "evaluation.statistics": ("summarise",),
    "reporting.document": ("build_report",),
    "reporting.figures": ("show_samples", "plot_history", "show_predictions"),
    "workflow.parameters": ("notebook_settings",),
    "workflow.demo_data": ("ensure_dataset",),
    "workflow.notebooks": ("run_notebooks",),
})

register_when_keras_is_imported()  # saved models load with safe_mode after a plain `import seglib`
