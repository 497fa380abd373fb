"""Scoring predictions against ground truth: per-image metrics, folder evaluation, statistics
across methods, and left/right confusion. Knows nothing of training."""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "metrics": ("METRIC_NAMES", "segmentation_metrics", "dice"),
    "folder": ("evaluate_folder",),
    "statistics": ("summarise", "margins_over"),
    "laterality": ("laterality_table",),
})
