"""Fine-tuning: a run that starts from the weights of a shipped model (seglib.models) or of an earlier run,
rather than from random ones (RunConfig.init)."""

from __future__ import annotations

import numpy as np

from seglib.config import WEIGHT_SHAPING_OPTIONS, RunConfig, init_folder
from seglib.training.run_dir import RunDir

OUTPUT_LAYER = "probabilities"  # seglib.networks.unet: one column per structure


def init_source(init: str) -> RunDir:
    """The run whose weights `init` names: a shipped model's name or a finished run directory (the profiles'
    rule, seglib.config.init_folder)."""
    return RunDir(init_folder(init))


def check_init(config: RunConfig) -> None:
    """Refuse, before anything is written, an init source that is missing or has a network of another shape."""
    source = init_source(config.init).config()
    differing = [f"--{name.replace('_', '-')} {getattr(config, name)} (it has {getattr(source, name)})"
                 for name in WEIGHT_SHAPING_OPTIONS if getattr(config, name) != getattr(source, name)]
    if differing:
        raise ValueError(f"--init {config.init}: the network differs from the one it starts from: "
                         f"{', '.join(differing)}")


def untrained_structures(config: RunConfig) -> list[str]:
    """The run's structures its init source does not predict: their output columns start fresh."""
    source_structures = init_source(config.init).config().structures
    return [s for s in config.structures if s not in source_structures]


def load_initial_weights(model, config: RunConfig) -> None:
    """Copy the init source's weights into `model`, layer by layer: encoder, decoder and side channel. The output
    layer keeps, per structure of this run, the source's column of the same structure; a structure the source does
    not predict (a lung from the pelvis model) keeps the fresh column `model` was built with: the source's columns
    detect other shapes. `train` has run check_init."""
    source_run = init_source(config.init)
    source, source_structures = source_run.load_model(), source_run.config().structures
    for layer in model.layers:
        if not layer.weights:
            continue
        weights = source.get_layer(layer.name).get_weights()
        if layer.name == OUTPUT_LAYER:
            weights = [_output_columns(trained, fresh, source_structures, config.structures)
                       for trained, fresh in zip(weights, layer.get_weights())]
        layer.set_weights(weights)


def _output_columns(trained: np.ndarray, fresh: np.ndarray, source_structures, structures) -> np.ndarray:
    """An output-layer weight whose last axis follows `structures`: the source's trained column where it predicts
    the structure, else the fresh one."""
    columns = [trained[..., source_structures.index(s)] if s in source_structures else fresh[..., i]
               for i, s in enumerate(structures)]
    return np.stack(columns, axis=-1)
