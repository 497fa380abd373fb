"""One dataclass describes a training run; profiles size it for CI, a laptop CPU or a GPU."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

PROFILES = ("smoke", "demo", "full")


@dataclass
class RunConfig:
    """Everything that decides a run's result. Saved as config.json in the run directory."""

    data: str = ""
    structures: tuple[str, ...] = ("left_hip",)
    profile: str = "demo"
    seed: int = 0
    # Input
    image_size: int = 128
    augment: bool = True
    # A horizontal flip turns the image into its mirror twin: the target then becomes the
    # flipped mask of the partner structure (left_hip <-> right_hip). Doubles the examples.
    mirror_flip: bool = True
    # Extra input channel: signed position relative to the image's estimated midline. On by default:
    # with mirrored examples it was the best per-bone combination in the ablation (README).
    side_aware: bool = True
    # For a model predicting both partners: weight of the mirror-consistency term (0: off).
    consistency_weight: float = 0.0
    # Model
    architecture: str = "unet"
    depth: int = 4
    base_filters: int = 16
    batch_norm: bool = True
    dropout: float = 0.1
    upsampling: str = "transpose"
    # maxpool: the classic U-Net; strided: MONAI-style stride-2 convolutions (seglib.networks.unet), the
    # smoke profile's choice. maxpool here, so a config.json written before the option reads right.
    downsampling: str = "maxpool"
    # Optimisation
    loss: str = "bce_dice"
    epochs: int = 30
    batch_size: int = 8
    learning_rate: float = 1e-3
    # cosine: decay to ~0 over the epochs, right for a fixed budget (a constant rate let late
    # epochs spike and lose the model); plateau: halve on a validation-loss plateau.
    lr_schedule: str = "cosine"
    early_stopping_patience: int = 15
    # Write model.keras and the resume backup at most this often (0: every epoch): each write costs
    # more than a short epoch; a killed run repeats at most this much training.
    checkpoint_seconds: float = 60.0
    # Split: fractions of patients; a split file (id,split) or a manifest 'split' column wins.
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_file: str | None = None
    # Hardware: "auto" picks what the machine has (see seglib.accelerate). batch_size is per replica.
    strategy: str = "auto"
    mixed_precision: bool | str = "auto"
    jit_compile: bool | str = "auto"
    # Deterministic ops make a run repeatable on the same machine; XLA is off while they are on.
    deterministic: bool = True
    extra: dict = field(default_factory=dict)

    def validate(self) -> RunConfig:
        """Refuse option combinations that cannot work, before any file is written."""
        if self.consistency_weight and self.side_aware:
            # The consistency term flips the input plainly, which would leave the side channel pointing the wrong way.
            raise ValueError("consistency_weight and side_aware cannot be combined; turn side_aware off "
                             "(--no-side-aware)")
        if self.lr_schedule not in ("cosine", "plateau"):
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; choose cosine or plateau")
        if not self.structures:
            raise ValueError("a run needs at least one structure")
        if self.image_size % 2**self.depth:
            raise ValueError(f"image size {self.image_size} is not divisible by 2**depth = {2**self.depth}")
        if self.consistency_weight:
            from seglib.symmetry.partners import partner_of  # config stays importable without the rest

            missing = [s for s in self.structures if partner_of(s) not in self.structures]
            if missing:
                raise ValueError(f"consistency_weight needs the mirror partner of {', '.join(missing)} "
                                 "among the structures (one model predicting both sides)")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(values)
        if "structures" in values:
            values["structures"] = tuple(values["structures"])
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError, ValueError) as error:
            raise ValueError(f"{path}: cannot read run config: {error}") from error


# The demo profile must train one bone in about 5 minutes on 2 CPU cores;
# full is sized for a 16 GB GPU.
_PROFILE_SETTINGS = {
    "smoke": dict(image_size=64, depth=3, base_filters=8, epochs=2, batch_size=8,
                  early_stopping_patience=2, downsampling="strided"),
    # maxpool until the strided U-Net's test Dice on the real lungs is confirmed (README, Speed: one
    # lung measured so far). 30 epochs: on the real lungs the validation Dice flattens after ~24;
    # patience 8 stops earlier where it flattens sooner (easy data).
    "demo": dict(image_size=128, depth=4, base_filters=16, epochs=30, batch_size=8, early_stopping_patience=8),
    "full": dict(image_size=256, depth=5, base_filters=32, epochs=150, batch_size=16,
                 early_stopping_patience=30, deterministic=False),
}

# How much phantom data each profile generates (images, pixels).
PHANTOM_SIZES = {"smoke": (24, 64), "demo": (200, 256), "full": (1000, 512)}


def profile_config(profile: str, **overrides) -> RunConfig:
    """The run config of a profile, with explicit overrides (None values are ignored)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    values = dict(_PROFILE_SETTINGS[profile], profile=profile)
    values.update({key: value for key, value in overrides.items() if value is not None})
    return RunConfig.from_dict(values)
