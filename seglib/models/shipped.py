"""The registry of the models that ship with seglib: each one's run folder, and what using it takes beyond
the run (the fusion of its structures into one label map)."""

from __future__ import annotations

import copy

from seglib.config import PRETRAINED_MODELS, init_folder
from seglib.training.run_dir import RunDir

# fuse() options of each model's label maps, where the default (argmax) is not what it needs. The pelvis model's
# bones overlap in projection (the femoral heads in the acetabula, the ilia behind the sacrum); its label maps
# draw the hip bones, its first concern, over the others.
PRETRAINED_FUSION = {"pelvis": {"strategy": "priority", "priority": ["left_hip", "right_hip"]}}


def pretrained_run(name: str) -> RunDir:
    """The run folder of a model that ships with seglib (seglib.config.PRETRAINED_MODELS), e.g. "pelvis"."""
    return RunDir(init_folder(_shipped(name)))


def fusion_options(name: str) -> dict:
    """The fuse() options of a shipped model's label maps (a copy: the caller may add to it)."""
    return copy.deepcopy(PRETRAINED_FUSION.get(_shipped(name), {}))


def _shipped(name: str) -> str:
    if name not in PRETRAINED_MODELS:
        raise ValueError(f"unknown pretrained model {name!r}; seglib ships {', '.join(PRETRAINED_MODELS)}")
    return name
