"""U-Net builders (Ronneberger et al. 2015) in plain Keras 3 layers, so saved models load with
safe_mode on and need no custom objects."""

from __future__ import annotations

import keras
from keras import layers


def build_unet(image_size: int | None = 128, channels: int = 1, n_outputs: int = 1, depth: int = 4,
               base_filters: int = 16, batch_norm: bool = True, dropout: float = 0.1,
               upsampling: str = "transpose", name: str = "unet") -> keras.Model:
    """A U-Net with one sigmoid output channel per structure (structures may overlap).

    depth: number of 2x down-samplings; the input side must be divisible by 2**depth.
    Filters double at every level from `base_filters`; dropout is applied at the bottleneck
    and, at half the rate, in the decoder. The output is float32 even under mixed precision."""
    if upsampling not in ("transpose", "bilinear"):
        raise ValueError(f"upsampling must be 'transpose' or 'bilinear', got {upsampling!r}")
    if image_size is not None and image_size % 2**depth:
        raise ValueError(f"image size {image_size} is not divisible by 2**depth = {2**depth}")
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = _conv_block(x, base_filters * 2**level, batch_norm, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(name=f"down{level}_pool")(x)
    x = _conv_block(x, base_filters * 2**depth, batch_norm, "bottleneck")
    x = layers.SpatialDropout2D(dropout, name="bottleneck_dropout")(x) if dropout else x
    for level in reversed(range(depth)):
        x = _upsample(x, base_filters * 2**level, upsampling, f"up{level}")
        x = layers.Concatenate(name=f"up{level}_skip")([x, skips[level]])
        x = layers.SpatialDropout2D(dropout / 2, name=f"up{level}_dropout")(x) if dropout else x
        x = _conv_block(x, base_filters * 2**level, batch_norm, f"up{level}")
    outputs = layers.Conv2D(n_outputs, 1, activation="sigmoid", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def _conv_block(x, filters: int, batch_norm: bool, name: str):
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm,
                          kernel_initializer="he_normal", name=f"{name}_conv{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def _upsample(x, filters: int, upsampling: str, name: str):
    if upsampling == "transpose":
        return layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"{name}_transpose")(x)
    x = layers.UpSampling2D(interpolation="bilinear", name=f"{name}_upsample")(x)
    return layers.Conv2D(filters, 1, name=f"{name}_project")(x)


def build_model(config, channels: int = 1) -> keras.Model:
    """The model a run config asks for."""
    builders = {"unet": build_unet}
    if config.architecture not in builders:
        raise ValueError(f"unknown architecture {config.architecture!r}; choose one of {', '.join(builders)}")
    return builders[config.architecture](
        image_size=config.image_size, channels=channels, n_outputs=len(config.structures), depth=config.depth,
        base_filters=config.base_filters, batch_norm=config.batch_norm, dropout=config.dropout,
        upsampling=config.upsampling, name=f"unet_{'_'.join(config.structures)}")
