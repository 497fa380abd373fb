"""The notebooks' plumbing: where the code runs, notebook parameters, the embedded demo data, the
bodies of the per-bone notebooks and of the fuse-and-report notebook, and running them in sequence."""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "environment": ("detect_environment", "project_root", "mount_drive"),
    "parameters": ("notebook_settings", "wants_training"),
    "demo_data": ("ensure_dataset",),
    "notebooks": ("NOTEBOOKS", "run_notebooks"),
    "per_bone": ("BoneTraining",),
    "fuse_report": ("FuseAndReport",),
    "pretrained_notebook": ("PretrainedSegmentation",),
    "build_pelvis_model": ("build_pretrained",),
})
