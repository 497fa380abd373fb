"""Fine-tuning: a run that starts from the weights of a shipped model (seglib/data/pretrained/NAME) or of
an earlier run, rather than from random ones (RunConfig.init)."""

from __future__ import annotations

import numpy as np

from seglib.config import PRETRAINED_MODELS, RunConfig
from seglib.training.run_dir import RunDir, pretrained_run

# The options that shape the network: a run initialised from another takes these from it.
NETWORK_OPTIONS = ("architecture", "depth", "base_filters", "batch_norm", "upsampling", "downsampling",
                   "side_aware", "image_size")
OUTPUT_LAYER = "probabilities"  # seglib.networks.unet: one column per structure
# Fine-tuning moves trained weights a little: at a tenth of the profile's learning rate, 20 films of another look
# fine-tuned the shipped pelvis model to Dice 0.974 on held-out pelves, at the full rate to 0.972 (README,
# "Pretrained model").
FINE_TUNING_RATE = 0.1


def init_source(init: str) -> RunDir:
    """The run whose weights `init` names: a shipped model's name or a finished run directory."""
    run = pretrained_run(init) if init in PRETRAINED_MODELS else RunDir(init)
    if not run.config_path.is_file():
        raise FileNotFoundError(f"--init {init}: neither a shipped model ({', '.join(PRETRAINED_MODELS)}) "
                                "nor a run directory with a config.json")
    return run


def fine_tuning_defaults(init: str, profile_learning_rate: float) -> dict:
    """Defaults of a run that starts from `init`: the source's network-shaping options, and a tenth of the
    profile's learning rate."""
    source = init_source(init).config()
    return {**{name: getattr(source, name) for name in NETWORK_OPTIONS},
            "learning_rate": profile_learning_rate * FINE_TUNING_RATE}


def check_init(config: RunConfig) -> None:
    """Refuse, before anything is written, an init source that is missing or has a network of another shape
    (the working resolution may differ: the weights do not depend on it)."""
    source = init_source(config.init).config()
    differing = [f"--{name.replace('_', '-')} {getattr(config, name)} (it has {getattr(source, name)})"
                 for name in NETWORK_OPTIONS if name != "image_size" and getattr(config, name) != getattr(source, name)]
    if differing:
        raise ValueError(f"--init {config.init}: the network differs from the one it starts from: "
                         f"{', '.join(differing)}")


def load_initial_weights(model, config: RunConfig) -> None:
    """Copy the init source's weights into `model`, layer by layer. The output layer keeps, per structure of
    this run, the source's column of the same structure; a structure the source does not predict starts
    from the source's mean column (a shape prior, better than random)."""
    check_init(config)
    source_run = init_source(config.init)
    source, source_structures = source_run.load_model(), source_run.config().structures
    for layer in model.layers:
        if not layer.weights:
            continue
        weights = source.get_layer(layer.name).get_weights()
        if layer.name == OUTPUT_LAYER:
            weights = [_output_columns(w, source_structures, config.structures) for w in weights]
        layer.set_weights(weights)


def _output_columns(weight: np.ndarray, source_structures, structures) -> np.ndarray:
    """The last axis of an output-layer weight, re-ordered to `structures`."""
    mean = weight.mean(axis=-1)
    columns = [weight[..., source_structures.index(s)] if s in source_structures else mean for s in structures]
    return np.stack(columns, axis=-1)
