"""Segmentation networks: the U-Net family (plain, residual, attention) in plain Keras layers."""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "unet": ("ARCHITECTURES", "UPSAMPLINGS", "DOWNSAMPLINGS", "build_model", "build_unet", "build_resunet", "build_attention_unet"),
})
