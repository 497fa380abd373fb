"""Synthetic AP pelvis radiographs with bone masks, the embedded default dataset: a statistical
shape model of real pelves (shape_model), simple solids for what the atlas lacks (meshes), divergent-
beam projection (projector), soft tissue and the detector chain (exposure), one film (render), and
the phantoms written in the standard dataset layout (dataset)."""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "render": ("make_pelvis", "PelvisSample", "Pose"),
    "exposure": ("Appearance", "APPEARANCES"),
    "dataset": ("write_phantom_dataset", "write_atlas_renderings", "phantom_rng"),
})
