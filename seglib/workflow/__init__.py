"""The notebooks' plumbing: where the code runs, notebook parameters, the embedded demo data,
and running the notebooks in sequence."""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "environment": ("detect_environment", "project_root", "mount_drive"),
    "parameters": ("notebook_settings", "wants_training"),
    "demo_data": ("ensure_dataset",),
    "notebooks": ("NOTEBOOKS", "run_notebooks"),
    "per_bone": ("BoneTraining",),
})
