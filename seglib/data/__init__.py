"""Datasets in the standard layout: reading and writing files, records, splits, validation,
importers from other formats, and the tf.data input pipeline. Knows nothing of models."""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "io": ("DataError", "IMAGE_SUFFIXES", "read_image", "read_mask", "write_png", "write_text"),
    "folders": ("DatasetDir", "PredictionDir"),
    "layout": ("Record", "list_images", "read_manifest", "available_structures", "load_records"),
    "splits": ("SPLITS", "split_records", "read_split", "write_split", "fixed_count_split",
               "write_fixed_count_split", "records_in"),
    "validation": ("Problem", "check_dataset", "has_errors"),
    "adapters": ("import_dataset",),
    "dicom_seg": ("read_segmentation",),
    "pipeline": ("training_dataset", "evaluation_dataset", "working_image", "model_input"),
})
