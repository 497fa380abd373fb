"""From trained runs (or classical baselines) to masks: prediction with flip TTA, fusion into a
label map, post-processing, folder inference (with DICOM SEG and NIfTI outputs), segmenting an archive
(`segment`: with a shipped model or trained runs) and SavedModel export."""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "predictor": ("Predictor", "predict_folder", "fuse_folder", "select_ids"),
    "fusion": ("FusionResult", "fuse", "keep_largest_component"),
    "postprocessing": ("select_postprocessing",),
    # segment() itself is seglib.segment: here `segment` names the module
    "segment": ("pretrained", "Segmentation", "segment_folder"),
    "film_checks": ("degenerate_reason",),
    "quality": ("film_quality", "quality_rows", "QualityModel"),
    "dicom_seg_writer": ("write_segmentation",),
    "nifti": ("write_label_map", "write_colour_tables"),
    "baselines": ("BASELINES", "predict_baseline_folder"),
    "saved_model": ("export_run", "load_exported"),
})
