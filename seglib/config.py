"""One dataclass describes a training run; profiles size it for CI, a laptop CPU or a GPU."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path

from seglib.data.io import resolved
from seglib.data.names import checked_names

PROFILES = ("smoke", "demo", "full")
ARCHITECTURES = ("unet", "resunet", "attention_unet")  # seglib.networks builds each
UPSAMPLINGS = ("transpose", "bilinear")
DOWNSAMPLINGS = ("maxpool", "strided")
DISTRIBUTION_STRATEGIES = ("auto", "mirrored", "multi_worker", "tpu", "default")  # seglib.training.hardware
LR_SCHEDULES = ("cosine", "plateau")
INTENSITY_AUGMENTATIONS = ("standard", "wide")  # seglib.data.pipeline.INTENSITY_RANGES


def option(default, help: str, **argparse_options):
    """A RunConfig field that `python -m seglib train` offers as --NAME: its help text (and choices)
    live here, beside the type and default, so the command line cannot drift from the config."""
    return field(default=default, metadata={"help": help, **argparse_options})


@dataclass
class RunConfig:
    """Everything that decides a run's result. Saved as config.json in the run directory."""

    data: str = ""
    structures: tuple[str, ...] = ("left_hip",)
    profile: str = "demo"
    seed: int = option(0, "random seed of the split, initial weights and augmentation")
    # Input
    # The working resolution: every film is resampled to image_size x image_size (training and inference).
    image_size: int = option(128, "working resolution: the side in pixels every film is resampled to")
    # Patch training (nnU-Net): the network trains on patch_size crops of the working-resolution image and
    # is applied to the whole image, so the working resolution can grow without the cost of a step growing.
    patch_size: int = option(0, "side of the crops the network trains on (0: the whole image)")
    # A share of the crops is centred on a pixel of the structure, so small structures are seen often enough
    # (nnU-Net oversamples foreground for a third of its patches); the others are drawn uniformly.
    foreground_crops: float = option(1 / 3, "share of training crops forced to contain the structure")
    augment: bool = option(True, "geometric and intensity augmentation")
    # The intensity ranges (seglib.data.pipeline.INTENSITY_RANGES). standard: measured best on the real chest
    # films, where wide lost 0.004 / 0.010 Dice (reports/benchmarks.md); wide adds blur and edge enhancement and
    # stretches gamma and noise, for a model meant for films from machines nobody has seen (the shipped pelvis model).
    intensity_augmentation: str = option("standard", "intensity augmentation ranges: standard, or wide (more gamma "
                                         "and noise, blur and edge enhancement)", choices=INTENSITY_AUGMENTATIONS)
    # A horizontal flip turns the image into its mirror twin: the target then becomes the
    # flipped mask of the partner structure (left_hip <-> right_hip). Doubles the examples.
    mirror_flip: bool = option(True, "mirrored examples (off for structures without a mirror partner)")
    # Extra input channel: signed position relative to the image's estimated midline. On by default:
    # with mirrored examples it was the best per-bone combination in the ablation (README).
    side_aware: bool = option(True, "an input channel with the signed position relative to the estimated midline")
    # For a model predicting both partners: weight of the mirror-consistency term (0: off).
    consistency_weight: float = option(0.0, "mirror-consistency loss weight; needs both partners as --structure "
                                                 "and --no-side-aware")
    # Transfer learning: start from the weights of a model that ships with seglib (PRETRAINED_MODELS) or of
    # an earlier run, not from random ones. profile_config takes the network's shape from it; "auto" (the demo
    # profile's) picks the shipped model, fine-tuned for structures it predicts and transferred to others.
    init: str = option("", "start from trained weights: auto (the shipped model of the run's network), a shipped "
                           "model by name, as segment --model takes it (pelvis), a run directory, or none; the "
                           "network's shape follows them; structures they predict are fine-tuned at their working "
                           "size and a tenth of the learning rate, others get a fresh output layer; the demo "
                           "profile's is auto")
    # Model
    architecture: str = option("unet", "network builder", choices=ARCHITECTURES)
    depth: int = option(4, "number of down-samplings")
    base_filters: int = option(16, "filters at the first level (doubling per level)")
    batch_norm: bool = True
    dropout: float = option(0.1, "dropout rate in the bottleneck and decoder")
    upsampling: str = "transpose"
    # maxpool: the classic U-Net (the full profile's); strided: MONAI-style stride-2 convolutions
    # (seglib.networks.unet), the smoke and demo profiles' choice.
    downsampling: str = option("maxpool", "strided: MONAI-style stride-2 convolutions, about 3x fewer operations",
                               choices=DOWNSAMPLINGS)
    # Optimisation
    loss: str = option("bce_dice", "bce_dice, dice, focal, tversky, focal_tversky, unified_focal_sym, "
                                   "unified_focal_asym, or a weighted sum in quotes, e.g. '0.5*bce_dice+0.5*focal_tversky'")
    epochs: int = option(30, "maximum number of epochs (early stopping may end sooner)")
    batch_size: int = option(8, "images per batch (per replica on several GPUs)")
    learning_rate: float = option(1e-3, "initial learning rate of Adam")
    # cosine: decay to ~0 over the epochs, right for a fixed budget (a constant rate let late
    # epochs spike and lose the model); plateau: halve on a validation-loss plateau.
    lr_schedule: str = option("cosine", "cosine decay over the epochs, or halve on a validation plateau",
                              choices=LR_SCHEDULES)
    early_stopping_patience: int = 15
    # Write model.keras and the resume backup at most this often (0: every epoch): each write costs
    # more than a short epoch; a killed run repeats at most this much training.
    checkpoint_seconds: float = option(60.0, "write model.keras and the resume backup at most this often (0: every epoch)")
    # Split: fractions of patients; a split file (id,split) or a manifest 'split' column wins.
    val_fraction: float = option(0.15, "fraction of patients for validation (seeded split)")
    test_fraction: float = option(0.15, "fraction of patients for testing (seeded split)")
    split_file: str | None = option(None, "CSV id,split (train/val/test) to use instead of a seeded split")
    # Hardware: "auto" picks what the machine has (see seglib.training.hardware). batch_size is per replica.
    strategy: str = option("auto", "tf.distribute strategy: auto (all GPUs mirrored), mirrored, multi_worker "
                                   "(reads TF_CONFIG), default", choices=DISTRIBUTION_STRATEGIES)
    mixed_precision: bool | str = "auto"
    jit_compile: bool | str = "auto"
    # Deterministic ops make a run repeatable on the same machine; XLA is off while they are on.
    deterministic: bool = True

    def __post_init__(self):
        # The bounds hold for a config built in Python too, not only for the command line and config.json.
        for name in VALUE_RULES:
            if name in _FIELDS:  # the threshold is no RunConfig field
                checked_option(name, getattr(self, name))

    def validate(self) -> RunConfig:
        """Refuse option combinations that cannot work, before any file is written."""
        if self.consistency_weight and self.side_aware:
            # The consistency term flips the input plainly, which would leave the side channel pointing the wrong way.
            raise ValueError("consistency_weight and side_aware cannot be combined; turn side_aware off "
                             "(--no-side-aware)")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; choose {' or '.join(LR_SCHEDULES)}")
        if not self.structures:
            raise ValueError("a run needs at least one structure")
        if self.image_size % 2**self.depth:
            raise ValueError(f"image size {self.image_size} is not divisible by 2**depth = {2**self.depth}")
        if not 0 <= self.patch_size <= self.image_size or self.crop_size % 2**self.depth:
            raise ValueError(f"patch size {self.patch_size} must be 0 (the whole image) or at most the image size "
                             f"{self.image_size} and divisible by 2**depth = {2**self.depth}")
        if not 0.0 <= self.foreground_crops <= 1.0:
            raise ValueError(f"foreground_crops {self.foreground_crops} must be a share between 0 and 1")
        if self.consistency_weight:
            from seglib.symmetry.partners import partner_of  # config stays importable without the rest

            missing = [s for s in self.structures if partner_of(s) not in self.structures]
            if missing:
                raise ValueError(f"consistency_weight needs the mirror partner of {', '.join(missing)} "
                                 "among the structures (one model predicting both sides)")
        return self

    @property
    def crop_size(self) -> int:
        """The side of the network's training input: the patch, or the whole working-resolution image."""
        return self.patch_size or self.image_size

    @property
    def patch_training(self) -> bool:
        return self.crop_size < self.image_size

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        """The config of `values` (option -> value), each option checked by checked_option."""
        if not isinstance(values, dict):
            raise ValueError(f"expected an object of option: value pairs, got {json.dumps(values, default=str)[:40]}")
        values = dict(values)
        if values.get("extra") == {}:  # runs saved by seglib 0.1 carry an empty, unused "extra"
            del values["extra"]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**{name: checked_option(name, value) for name, value in values.items()})

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        try:
            values = json.loads(path.read_text())
            if isinstance(values, dict) and "side_aware" not in values:
                # Saved before the side channel existed (seglib before b245dd6): its networks took the film alone.
                # The field's default became True later; a run without it still means False.
                values = {**values, "side_aware": False}
            return cls.from_dict(values)
        except (OSError, json.JSONDecodeError, ValueError) as error:
            raise ValueError(f"{path}: cannot read run config: {error}") from error


def _one_of(choices) -> tuple:
    return (lambda value: value in choices), "one of " + ", ".join(map(str, choices))


# The values an option may take beyond its type, for every source: the command line while it parses
# (seglib.cli.commands), profile_config and a run's config.json (RunConfig.from_dict), calibration.json and the
# thresholds of inference (checked_threshold). An impossible value is refused before any file is read or written;
# the upper bound of a size keeps a typo (200000 px) from a run out of memory.
MAX_IMAGE_SIZE = 4096
VALUE_RULES = {
    "profile": _one_of(PROFILES),
    "seed": (lambda v: 0 <= v < 2**32, "from 0 to 2**32 - 1 (NumPy's seeds)"),
    "image_size": (lambda v: 1 <= v <= MAX_IMAGE_SIZE, f"a number of pixels from 1 to {MAX_IMAGE_SIZE}"),
    "patch_size": (lambda v: 0 <= v <= MAX_IMAGE_SIZE, f"0 (the whole image) or pixels up to {MAX_IMAGE_SIZE}"),
    "foreground_crops": (lambda v: 0 <= v <= 1, "a share from 0 to 1"),
    "epochs": (lambda v: v >= 1, "at least 1 (0 epochs would train nothing)"),
    "depth": (lambda v: v >= 1, "at least 1"),
    "base_filters": (lambda v: v >= 1, "at least 1"),
    "upsampling": _one_of(UPSAMPLINGS),
    "batch_size": (lambda v: v >= 1, "at least 1"),
    "learning_rate": (lambda v: v > 0, "a positive number"),
    "dropout": (lambda v: 0 <= v < 1, "a rate from 0 up to (not including) 1"),
    "consistency_weight": (lambda v: v >= 0, "0 (off) or a positive weight"),
    "early_stopping_patience": (lambda v: v >= 0, "a number of epochs, 0 or more"),
    "checkpoint_seconds": (lambda v: v >= 0, "0 (every epoch) or a positive number of seconds"),
    "val_fraction": (lambda v: 0 <= v < 1, "a fraction from 0 up to (not including) 1"),
    "test_fraction": (lambda v: 0 <= v < 1, "a fraction from 0 up to (not including) 1"),
    "mixed_precision": (lambda v: v in (True, False, "auto"), 'true, false or "auto"'),
    "jit_compile": (lambda v: v in (True, False, "auto"), 'true, false or "auto"'),
    # A pixel belongs to a structure when its probability is >= the threshold: at 0 every pixel would, at 1 only a
    # saturated one, and calibration (seglib.training.calibration) divides by both t and 1 - t.
    "threshold": (lambda v: 0 < v < 1, "a probability between 0 and 1, both excluded"),
}
# The JSON types each RunConfig annotation takes, and how a message names them (bool is no number here).
_TYPES = {"int": (Integral, "a whole number"), "float": (Real, "a number"), "bool": (bool, "true or false"),
          "str": (str, "a string"), "str | None": ((str, type(None)), "a string or null"),
          "bool | str": ((bool, str), 'true, false or "auto"')}
_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}


def checked_option(name: str, value):
    """`value` of RunConfig option `name`, if it has the option's type and is within its rule (VALUE_RULES, the
    option's choices); otherwise a ValueError naming the option."""
    field_ = _FIELDS[name]
    if field_.type == "tuple[str, ...]":  # the structures: they become folder names (seglib.data.names)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} {value!r} is not a list of structure names")
        return checked_names(value, name)
    kind, described = _TYPES[field_.type]
    if not isinstance(value, kind) or (isinstance(value, bool) and "bool" not in field_.type):
        raise ValueError(f"{name} {value!r} is not {described}")
    if isinstance(value, Real) and not isinstance(value, bool) and not math.isfinite(value):
        raise ValueError(f"{name} {value!r} is not a finite number")
    choices = field_.metadata.get("choices")
    valid, expected = VALUE_RULES.get(name) or (_one_of(choices) if choices else (lambda v: True, ""))
    if not valid(value):
        raise ValueError(f"{name} {value!r} is not allowed; expected {expected}")
    return value


def checked_threshold(value, where: str) -> float:
    """A probability threshold from the command line, calibration.json or the Python API, as a float; a
    ValueError naming `where` (a file and structure, a parameter) for anything else: NaN, 1.0, true, "0.5"."""
    valid, expected = VALUE_RULES["threshold"]
    if isinstance(value, bool) or not isinstance(value, Real) or not valid(value):  # NaN fails valid too
        raise ValueError(f"{where}: {value!r} is not allowed; expected {expected}")
    return float(value)


# The demo profile must train one bone in about 5 minutes on 2 CPU cores;
# full is sized for a 16 GB GPU.
_PROFILE_SETTINGS = {
    # smoke must still learn, so that CI tells a model that learns from one that does not: at 2 epochs of batch 8
    # (10 steps) the left hip's validation Dice was 0.22, as with a learning rate of 0 (0.20); 20 epochs of
    # batch 4 at 3e-3 reach ~0.8 in ~30 s (tests/training/test_learning.py, the notebooks' floor check).
    "smoke": dict(image_size=64, depth=3, base_filters=8, epochs=20, batch_size=4, learning_rate=3e-3,
                  early_stopping_patience=4, downsampling="strided"),
    # Strided with 24 base filters: on the real lungs as accurate as the max-pool U-Net in less time, where
    # 16 filters lose accuracy; 30 epochs, since 12 stop short of it; early stopping ends a run whose second
    # half is flat (patience 8). The measurements: reports/benchmarks.md.
    # Hip bones, sacrum and femurs start from the shipped pelvis model (init auto; seglib.training.transfer):
    # on pelves it never saw, 12 epochs of fine-tuning at its 192 px reach Dice 0.983 / HD95 2.3 mm where 30 epochs
    # from random weights at 128 px, in the same time, reach 0.963 / 4.7 mm (reports/benchmarks.md, issue #23).
    # Every other structure starts from its encoder and decoder too, with a fresh output layer (TRANSFER below).
    "demo": dict(image_size=128, depth=4, base_filters=24, downsampling="strided", epochs=30, batch_size=8,
                 early_stopping_patience=8, init="auto"),
    # full keeps the max-pool U-Net: a GPU runs its extra full-resolution operations cheaply, and on the
    # rendered pelves it was a little ahead of the strided one (reports/benchmarks.md). It works at 512 px
    # (~0.85 mm per pixel at the detector) and trains on 256 px patches, so a step costs what a whole 256 px
    # image did; validation and inference see the whole 512 px image.
    "full": dict(image_size=512, patch_size=256, depth=5, base_filters=32, epochs=150, batch_size=16,
                 early_stopping_patience=30, deterministic=False),
}

# How much phantom data each profile generates (images, pixels).
PHANTOM_SIZES = {"smoke": (24, 64), "demo": (200, 256), "full": (1000, 512)}


def profile_config(profile: str, **overrides) -> RunConfig:
    """The run config of a profile, with explicit overrides (None values are ignored)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    given = {key: value for key, value in overrides.items() if value is not None}
    config = RunConfig.from_dict({**_PROFILE_SETTINGS[profile], "profile": profile, **given})
    return _starting_from(config, given) if config.init else config


# Starting from trained weights (RunConfig.init; the weights are copied by seglib.training.transfer).
# The options that shape the network's weights: a run started from another must have the same ones. It takes them
# from it, and, fine-tuning, its working resolution too, which the weights do not depend on.
WEIGHT_SHAPING_OPTIONS = ("architecture", "depth", "base_filters", "batch_norm", "upsampling", "downsampling",
                          "side_aware")
# Fine-tuning moves trained weights a little: at a tenth of the profile's learning rate, 20 films of another look
# fine-tuned the shipped pelvis model to Dice 0.974 on held-out pelves, at the full rate to 0.972 (README,
# "Pretrained model").
FINE_TUNING_RATE = 0.1
# Epochs of a run that starts from trained weights, where the profile sets them apart from its own: the demo's 12
# at the pelvis model's 192 px cost about what 30 from random weights at 128 px do.
FINE_TUNING_EPOCHS = {"demo": 12}
# Transfer: a run of structures the source does not predict (lungs from the pelvis model) takes its encoder, decoder
# and side channel, with a fresh output layer (seglib.training.transfer), at the profile's working size, learning rate
# and epochs. On the real chest films, against random weights, it reached MONAI's Dice sooner and ended higher
# (reports/benchmarks.md, "Time to accuracy against MONAI"): init auto does it.
TRANSFER_BY_DEFAULT = True
PRETRAINED_FOLDER = Path(__file__).parent / "models"  # NAME/: a shipped model's run folder (seglib.models)
RUN_CONFIG_FILE = "config.json"  # the resolved RunConfig in every run folder (seglib.training.run_dir)


def init_folder(init: str) -> Path:
    """The run folder whose weights `init` names: a shipped model's name or a finished run directory."""
    if init in PRETRAINED_MODELS:
        folder = PRETRAINED_FOLDER / init
        if not (folder / RUN_CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{folder}: the pretrained {init} model is not in this installation; rebuild "
                                    "it with python -m seglib pretrain (README, Pretrained model)")
        return folder
    if not (Path(init) / RUN_CONFIG_FILE).is_file():
        raise FileNotFoundError(f"--init {init}: neither a shipped model ({', '.join(PRETRAINED_MODELS)}) "
                                f"nor a run directory with a {RUN_CONFIG_FILE}")
    return Path(init)


def _starting_from(config: RunConfig, given: dict) -> RunConfig:
    """`config` (a profile's settings with the options `given` explicitly) as a run that starts from the weights
    its init names: the source's network-shaping options; when the source predicts every structure (fine-tuning),
    its working size too, a tenth of the learning rate and the profile's fine-tuning epochs; all unless given.
    init auto becomes the shipped model it picks, or "" (random weights)."""
    init = _resolved_init(config, given)
    if not init:
        return dataclasses.replace(config, init="")
    source = RunConfig.load(init_folder(init) / RUN_CONFIG_FILE)
    tuned = {name: getattr(source, name) for name in WEIGHT_SHAPING_OPTIONS}
    if set(config.structures) <= set(source.structures):  # fine-tuning; else transfer: the profile's size and rate
        tuned.update(image_size=source.image_size, learning_rate=config.learning_rate * FINE_TUNING_RATE,
                     epochs=FINE_TUNING_EPOCHS.get(config.profile, config.epochs))
    return RunConfig.from_dict({**dataclasses.asdict(config), **tuned, **given, "init": init})


def _resolved_init(config: RunConfig, given: dict) -> str:
    """A shipped model's name, an absolute run directory, or "" for random weights."""
    if config.init == "none":
        return ""
    if config.init != "auto":
        return config.init if config.init in PRETRAINED_MODELS else str(resolved(config.init))
    for name in PRETRAINED_MODELS:  # unless another network was asked for
        source = RunConfig.load(init_folder(name) / RUN_CONFIG_FILE)
        other_network = any(option in given and given[option] != getattr(source, option)
                            for option in WEIGHT_SHAPING_OPTIONS)
        if not other_network and (set(config.structures) <= set(source.structures) or TRANSFER_BY_DEFAULT):
            return name
    return ""


# The command line's choice lists. They live here, in a light module, so `python -m seglib --help`
# builds its parser without importing what implements them (scikit-image, scipy, pandas,
# matplotlib); tests/cli/test_help.py checks each against its implementation.
FUSION_STRATEGIES = ("argmax", "priority", "multilabel")              # seglib.inference.fusion
SEGMENT_FORMATS = ("png", "nifti", "dicom-seg")                        # seglib.inference.segment_formats
OVERLAY_CHOICES = ("all", "flagged", "none")                           # segment --overlays (inference.archive)
IMPORT_FORMATS = ("labels", "uwmgi", "sides", "dicom", "dicom-seg")    # seglib.data.adapters.FORMATS
SIDE_CONVENTIONS = ("patient", "image")                                # seglib.data.adapters
APPEARANCE_NAMES = ("default", "shifted", "wide", "clinical")         # seglib.phantom.exposure.APPEARANCES
PRETRAINED_MODELS = ("pelvis",)                                       # seglib/models/NAME (seglib.models)
BASELINE_METHODS = ("otsu", "random_walker", "chan_vese")              # seglib.inference.baselines
ABLATION_CONFIGURATIONS = ("plain", "mirror", "mirror+tta", "mirror+tta+side", "mirror+tta+unified_focal",
                           "mirror+tta+consistency")                   # seglib.experiments.ablation
