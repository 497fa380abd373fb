"""From trained runs (or classical baselines) to masks: prediction with flip TTA, fusion into a
label map, post-processing, folder inference (with DICOM SEG and NIfTI outputs) and SavedModel export."""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "predictor": ("Predictor", "predict_folder", "fuse_folder", "select_ids", "pretrained"),
    "fusion": ("FusionResult", "fuse", "keep_largest_component"),
    "postprocessing": ("select_postprocessing",),
    "segment": ("segment_folder",),
    "film_checks": ("degenerate_reason",),
    "quality": ("film_quality", "quality_rows", "QualityModel"),
    "dicom_seg_export": ("write_segmentation",),
    "nifti": ("write_label_map", "write_colour_tables"),
    "baselines": ("BASELINES", "predict_baseline_folder"),
    "export": ("export_run", "load_exported"),
})
