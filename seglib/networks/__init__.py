"""Segmentation networks: the U-Net family (plain, residual, attention) in plain Keras layers, and applying a
trained one to a film (one pass or sliding windows; flip TTA; the chosen threshold; the film's size)."""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "unet": ("ARCHITECTURES", "UPSAMPLINGS", "DOWNSAMPLINGS", "build_model", "build_unet", "build_resunet", "build_attention_unet"),
    "film": ("network_maps", "film_maps", "calibrated"),
})
