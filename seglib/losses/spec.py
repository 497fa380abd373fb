"""Losses by name: `get_loss(spec)` turns the name a config or the command line uses, or a weighted
sum such as ``"0.5*bce_dice+0.5*focal_tversky"``, into a Keras loss."""

from __future__ import annotations

import math

import keras

from seglib.losses.dice import BCEDiceLoss, DiceLoss
from seglib.losses.focal import (
    AsymmetricUnifiedFocalLoss,
    FocalLoss,
    FocalTverskyLoss,
    SymmetricUnifiedFocalLoss,
    TverskyLoss,
    mean_per_image,
)


@keras.saving.register_keras_serializable(package="seglib")
class WeightedSum(keras.losses.Loss):
    """sum_i weights[i] * losses[i], per image.

    Each member's unreduced value (its `call`) is averaged over all but the batch axis, so members
    that return per-pixel values (e.g. keras.losses.BinaryCrossentropy) mix with per-image ones;
    the members' own reduction settings are not used, this loss's reduction applies to the sum."""

    def __init__(self, losses: list, weights: list, name: str = "weighted_sum_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if not losses or len(losses) != len(weights):
            raise ValueError(f"WeightedSum needs one weight per loss and at least one loss; got {len(losses)} "
                             f"loss(es) and {len(weights)} weight(s)")
        not_losses = [repr(loss) for loss in losses if not isinstance(loss, keras.losses.Loss)]
        if not_losses:
            raise TypeError(f"WeightedSum members must be keras.losses.Loss instances (use get_loss for names); "
                            f"got {', '.join(not_losses)}")
        self.losses = list(losses)
        self.weights = [float(weight) for weight in weights]

    def call(self, y_true, y_pred):
        return sum(weight * mean_per_image(loss.call(y_true, y_pred))
                   for weight, loss in zip(self.weights, self.losses))

    def get_config(self):
        return {**super().get_config(), "weights": self.weights,
                "losses": [keras.saving.serialize_keras_object(loss) for loss in self.losses]}

    @classmethod
    def from_config(cls, config):
        losses = [keras.saving.deserialize_keras_object(loss) for loss in config.pop("losses")]
        return cls(losses=losses, **config)


LOSSES = {
    "dice": DiceLoss,
    "bce_dice": BCEDiceLoss,
    "focal": FocalLoss,
    "tversky": TverskyLoss,
    "focal_tversky": FocalTverskyLoss,
    "unified_focal_sym": SymmetricUnifiedFocalLoss,
    "unified_focal_asym": AsymmetricUnifiedFocalLoss,
}


def get_loss(spec: str) -> keras.losses.Loss:
    """The loss a config or command line names, with default parameters.

    spec is a name from LOSSES, or a weighted sum of names: terms joined by "+", each "NAME" or
    "WEIGHT*NAME" with a positive number as WEIGHT, spaces allowed, e.g.
    "0.5*bce_dice + 0.5*focal_tversky" (a WeightedSum)."""
    terms = spec.split("+")
    if len(terms) == 1 and "*" not in spec:
        return _named_loss(spec)
    weights, losses = zip(*(_weighted_term(term, spec) for term in terms))
    return WeightedSum(list(losses), list(weights))


def _named_loss(name: str) -> keras.losses.Loss:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(sorted(LOSSES))}, "
                         "or a weighted sum such as '0.5*bce_dice+0.5*focal_tversky'")
    return LOSSES[name]()


def _weighted_term(term: str, spec: str) -> tuple[float, keras.losses.Loss]:
    weight_text, _, name = term.rpartition("*")
    weight = _positive_weight(weight_text, spec) if weight_text.strip() else 1.0
    return weight, _named_loss(name.strip())


def _positive_weight(text: str, spec: str) -> float:
    try:
        weight = float(text)
    except ValueError:
        weight = math.nan
    if not (math.isfinite(weight) and weight > 0):
        raise ValueError(f"loss spec {spec!r}: weight {text.strip()!r} is not a positive number; "
                         "write terms as WEIGHT*NAME, e.g. '0.5*bce_dice+0.5*focal_tversky'")
    return weight
