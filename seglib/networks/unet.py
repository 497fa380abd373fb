"""U-Net family builders in plain Keras 3 layers, so saved models load with safe_mode on and
need no custom objects (no Lambda layers, no custom layers).

- ``unet``: the U-Net of Ronneberger et al. 2015 (two 3x3 conv + BN + ReLU per level).
- ``resunet``: a residual U-Net (Zhang et al. 2018, "Road extraction by deep residual U-Net"),
  with post-activation residual blocks (He et al. 2016) and a 1x1 projection shortcut wherever
  the channel count changes.
- ``attention_unet``: the Attention U-Net of Oktay et al. 2018: additive attention gates,
  driven by the coarser decoder level, re-weight every skip connection before concatenation.

All three share one encoder/decoder skeleton (`_build_skeleton`); they differ only in the conv
block and in whether the skips are gated.

Down-sampling (`downsampling`):
- ``maxpool``: the classic U-Net: two convolutions at every resolution, then 2x2 max pooling.
- ``strided``: as MONAI's UNet: every level's first convolution has stride 2, so level l works at
  1/2**(l+1) of the input with base_filters * 2**l filters. The full resolution sees only the first
  convolution's input and one convolution after the last up-sampling, which gets the input image
  as a skip: about a third of the multiply-adds of ``maxpool`` at the same depth and filters."""

from __future__ import annotations

import keras
from keras import layers

from seglib.config import ARCHITECTURES, DOWNSAMPLINGS, UPSAMPLINGS


def build_unet(image_size: int | None = 128, channels: int = 1, n_outputs: int = 1, depth: int = 4,
               base_filters: int = 16, batch_norm: bool = True, dropout: float = 0.1,
               upsampling: str = "transpose", name: str = "unet", downsampling: str = "maxpool") -> keras.Model:
    """A U-Net with one sigmoid output channel per structure (structures may overlap).

    depth: number of 2x down-samplings; the input side must be divisible by 2**depth.
    Filters double at every level from `base_filters`; dropout is applied at the bottleneck
    and, at half the rate, in the decoder. The output is float32 even under mixed precision."""
    return _build_skeleton(image_size, channels, n_outputs, depth, base_filters, batch_norm, dropout,
                           upsampling, name, block=_conv_block, gate=None,
                           downsampling=downsampling)


def build_resunet(image_size: int | None = 128, channels: int = 1, n_outputs: int = 1, depth: int = 4,
                  base_filters: int = 16, batch_norm: bool = True, dropout: float = 0.1,
                  upsampling: str = "transpose", name: str = "resunet", downsampling: str = "maxpool") -> keras.Model:
    """The U-Net of `build_unet` with residual conv blocks (same options and skeleton).

    Each block is conv3x3-BN-ReLU-conv3x3-BN, added to the block input (through a 1x1 conv + BN
    projection when the channel count changes), then ReLU."""
    return _build_skeleton(image_size, channels, n_outputs, depth, base_filters, batch_norm, dropout,
                           upsampling, name, block=_residual_block, gate=None,
                           downsampling=downsampling)


def build_attention_unet(image_size: int | None = 128, channels: int = 1, n_outputs: int = 1, depth: int = 4,
                         base_filters: int = 16, batch_norm: bool = True, dropout: float = 0.1,
                         upsampling: str = "transpose", name: str = "attention_unet", downsampling: str = "maxpool") -> keras.Model:
    """The U-Net of `build_unet` with an additive attention gate on every skip (Oktay et al. 2018).

    The gate compares the skip with the gating signal from the next-coarser decoder level,
    computes one attention coefficient in [0, 1] per skip pixel and multiplies the skip by it."""
    return _build_skeleton(image_size, channels, n_outputs, depth, base_filters, batch_norm, dropout,
                           upsampling, name, block=_conv_block, gate=_attention_gate,
                           downsampling=downsampling)


def _build_skeleton(image_size, channels, n_outputs, depth, base_filters, batch_norm, dropout, upsampling,
                    name, block, gate, downsampling="maxpool") -> keras.Model:
    """The shared encoder/decoder. block(x, filters, batch_norm, name, strides) builds a level's conv
    block; gate(skip, gating, name), if given, re-weights a skip using the coarser decoder
    features before up-sampling."""
    if upsampling not in UPSAMPLINGS:
        raise ValueError(f"upsampling must be 'transpose' or 'bilinear', got {upsampling!r}")
    if downsampling not in DOWNSAMPLINGS:
        raise ValueError(f"downsampling must be 'maxpool' or 'strided', got {downsampling!r}")
    if image_size is not None and image_size % 2**depth:
        raise ValueError(f"image size {image_size} is not divisible by 2**depth = {2**depth}")
    strided = downsampling == "strided"
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = block(x, base_filters * 2**level, batch_norm, f"down{level}", strides=2 if strided else 1)
        skips.append(x)
        x = x if strided else layers.MaxPooling2D(name=f"down{level}_pool")(x)
    if strided:
        skips.pop()  # the deepest level already works at the bottleneck's resolution
    x = block(x, base_filters * 2**depth, batch_norm, "bottleneck")
    x = layers.SpatialDropout2D(dropout, name="bottleneck_dropout")(x) if dropout else x
    for level in reversed(range(len(skips))):
        skip = gate(skips[level], x, f"up{level}_gate") if gate else skips[level]
        x = _upsample(x, base_filters * 2**level, upsampling, f"up{level}")
        x = layers.Concatenate(name=f"up{level}_skip")([x, skip])
        x = layers.SpatialDropout2D(dropout / 2, name=f"up{level}_dropout")(x) if dropout else x
        x = block(x, base_filters * 2**level, batch_norm, f"up{level}")
    if strided:  # back to full resolution: one up-sampling and a single convolution there, which also
        # sees the input itself: the only full-resolution detail the encoder's strided first layer keeps.
        x = _upsample(x, base_filters, upsampling, "full")
        x = layers.Concatenate(name="full_skip")([x, inputs])
        x = _conv_bn_relu(x, base_filters, batch_norm, "full", 1)
    outputs = layers.Conv2D(n_outputs, 1, activation="sigmoid", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


# Keras's default momentum (0.99) makes the moving mean and variance, which validation and inference use,
# average over ~100 steps: on a training set of a few hundred images that is 10+ epochs of weights that
# have since changed, so the validation Dice lags the training Dice for half a demo run. 0.9 (PyTorch's
# and so MONAI's default) follows the weights within about an epoch.
BATCH_NORM_MOMENTUM = 0.9


def _conv_bn_relu(x, filters: int, batch_norm: bool, name: str, index: int, strides: int = 1, relu: bool = True):
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=not batch_norm,
                      kernel_initializer="he_normal", name=f"{name}_conv{index}")(x)
    if batch_norm:
        x = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"{name}_bn{index}")(x)
    return layers.Activation("relu", name=f"{name}_relu{index}")(x) if relu else x


def _conv_block(x, filters: int, batch_norm: bool, name: str, strides: int = 1):
    x = _conv_bn_relu(x, filters, batch_norm, name, 1, strides)
    return _conv_bn_relu(x, filters, batch_norm, name, 2)


def _residual_block(x, filters: int, batch_norm: bool, name: str, strides: int = 1):
    shortcut = x
    if x.shape[-1] != filters or strides != 1:
        # A 2x2 stride-2 kernel when down-sampling, so the shortcut sees every input pixel.
        shortcut = layers.Conv2D(filters, strides, strides=strides, use_bias=not batch_norm,
                                 kernel_initializer="he_normal", name=f"{name}_shortcut")(x)
        if batch_norm:
            shortcut = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"{name}_shortcut_bn")(shortcut)
    x = _conv_bn_relu(x, filters, batch_norm, name, 1, strides)
    x = _conv_bn_relu(x, filters, batch_norm, name, 2, relu=False)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.Activation("relu", name=f"{name}_relu2")(x)


def _attention_gate(skip, gating, name: str):
    """Additive attention gate (Oktay et al. 2018, Fig. 2), computed at the gating resolution.

    theta: the skip projected and halved to the gating resolution by a 2x2 stride-2 conv (the
    reference implementation's choice; a strided 1x1 would ignore 3 of every 4 skip pixels);
    phi: a 1x1 conv of the gating signal; ReLU(theta + phi) -> 1x1 conv to one channel ->
    sigmoid -> bilinear up-sampling to the skip resolution -> multiplies every skip channel."""
    inter = max(skip.shape[-1] // 2, 1)
    theta = layers.Conv2D(inter, 2, strides=2, use_bias=False, kernel_initializer="he_normal",
                          name=f"{name}_theta")(skip)
    phi = layers.Conv2D(inter, 1, kernel_initializer="he_normal", name=f"{name}_phi")(gating)
    f = layers.Add(name=f"{name}_add")([theta, phi])
    f = layers.Activation("relu", name=f"{name}_relu")(f)
    alpha = layers.Conv2D(1, 1, name=f"{name}_psi")(f)
    alpha = layers.Activation("sigmoid", name=f"{name}_sigmoid")(alpha)
    alpha = layers.UpSampling2D(interpolation="bilinear", name=f"{name}_resample")(alpha)
    return layers.Multiply(name=f"{name}_multiply")([skip, alpha])


def _upsample(x, filters: int, upsampling: str, name: str):
    if upsampling == "transpose":
        return layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"{name}_transpose")(x)
    x = layers.UpSampling2D(interpolation="bilinear", name=f"{name}_upsample")(x)
    return layers.Conv2D(filters, 1, name=f"{name}_project")(x)


_BUILDERS = {"unet": build_unet, "resunet": build_resunet, "attention_unet": build_attention_unet}


def build_model(config, channels: int = 1) -> keras.Model:
    """The model a run config asks for (config.architecture is one of ARCHITECTURES)."""
    if config.architecture not in _BUILDERS:
        raise ValueError(f"unknown architecture {config.architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    return _BUILDERS[config.architecture](
        # A patch-trained model takes any size (fully convolutional): whole images for validation and inference.
        image_size=None if config.patch_training else config.image_size, channels=channels, n_outputs=len(config.structures), depth=config.depth,
        base_filters=config.base_filters, batch_norm=config.batch_norm, dropout=config.dropout,
        upsampling=config.upsampling, downsampling=config.downsampling,
        name=f"{config.architecture}_{'_'.join(config.structures)}")
