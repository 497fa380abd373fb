"""From trained runs (or classical baselines) to masks: prediction with flip TTA, fusion into a
label map, post-processing, folder inference and SavedModel export."""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "predictor": ("Predictor", "predict_folder", "fuse_folder", "select_ids"),
    "fusion": ("STRATEGIES", "FusionResult", "fuse", "keep_largest_component"),
    "postprocessing": ("select_postprocessing",),
    "segment": ("segment_folder",),
    "baselines": ("BASELINES", "predict_baseline_folder"),
    "export": ("export_run", "load_exported"),
})
