"""Fine-tuning: a run that starts from the weights of a shipped model (seglib/data/pretrained/NAME) or of
an earlier run, rather than from random ones (RunConfig.init)."""

from __future__ import annotations

import numpy as np

from seglib.config import PRETRAINED_MODELS, WEIGHT_SHAPING_OPTIONS, RunConfig, init_folder
from seglib.training.run_dir import RunDir, pretrained_run

OUTPUT_LAYER = "probabilities"  # seglib.networks.unet: one column per structure


def init_source(init: str) -> RunDir:
    """The run whose weights `init` names: a shipped model's name or a finished run directory."""
    return pretrained_run(init) if init in PRETRAINED_MODELS else RunDir(init_folder(init))


def check_init(config: RunConfig) -> None:
    """Refuse, before anything is written, an init source that is missing or has a network of another shape."""
    source = init_source(config.init).config()
    differing = [f"--{name.replace('_', '-')} {getattr(config, name)} (it has {getattr(source, name)})"
                 for name in WEIGHT_SHAPING_OPTIONS if getattr(config, name) != getattr(source, name)]
    if differing:
        raise ValueError(f"--init {config.init}: the network differs from the one it starts from: "
                         f"{', '.join(differing)}")


def load_initial_weights(model, config: RunConfig) -> None:
    """Copy the init source's weights into `model`, layer by layer. The output layer keeps, per structure of
    this run, the source's column of the same structure; a structure the source does not predict starts
    from the source's mean column (a shape prior, better than random). `train` has run check_init."""
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
