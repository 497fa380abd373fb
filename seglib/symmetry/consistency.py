"""Bilateral consistency: a model that predicts both mirror partners (e.g. [left_hip, right_hip])
should give the same answer on an image and on its mirror image, once the mirrored prediction is
flipped back and the partner channels are swapped:

    f(x)  ==  swap(flip(f(flip(x))))

where flip reverses the width axis and swap puts each structure's channel where its partner's
was. The squared difference between the two sides is an unsupervised penalty: it needs no labels
and ties the left and right outputs together.

Design: `BilateralConsistencyModel` wraps a segmentation model and overrides `compute_loss`, the
Keras 3 hook every backend's train_step and test_step call with (x, y, y_pred). It adds
`weight * consistency` to whatever loss the model was compiled with and logs the term as
"consistency" (and "val_consistency"). Overriding compute_loss rather than train_step keeps the
wrapper backend-neutral and leaves optimisers, metrics and callbacks untouched; `call` returns
the wrapped model's output, so predict() and __call__ give the plain segmentation.

Inputs are assumed to be image channels only: a side-aware input channel (signed distance to the
midline) would have to be negated after a flip, which this wrapper does not do.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from seglib.symmetry.partners import partner_of


def partner_indices(structures) -> list[int]:
    """For each output channel, the index of its mirror partner's channel within `structures`."""
    structures = list(structures)
    indices = []
    for structure in structures:
        partner = partner_of(structure)
        if partner is None or partner not in structures:
            raise ValueError(f"{structure!r} needs its mirror partner {partner or '(none declared)'} among the "
                             f"outputs {structures} for a bilateral consistency term")
        indices.append(structures.index(partner))
    return indices


def swap_partner_channels(y, structures):
    """y (..., channels) with each structure's channel replaced by its partner's channel."""
    return ops.take(y, partner_indices(structures), axis=-1)


def flip_width(x):
    """Mirror a channels-last batch (batch, H, W, C) left to right."""
    return ops.flip(x, axis=2)


def mirrored_prediction(model_or_fn, x, structures):
    """swap(flip(f(flip(x)))): the prediction on the mirror image, brought back to x's frame."""
    return swap_partner_channels(flip_width(model_or_fn(flip_width(x))), structures)


def consistency_term(model_or_fn, x, structures, prediction=None):
    """Mean squared difference between f(x) and swap(flip(f(flip(x)))); `prediction` = f(x) when
    already computed (saves a forward pass)."""
    prediction = model_or_fn(x) if prediction is None else prediction
    return ops.mean(ops.square(prediction - mirrored_prediction(model_or_fn, x, structures)))


@keras.saving.register_keras_serializable(package="seglib")
class BilateralConsistencyModel(keras.Model):
    """Wraps `segmenter` (outputs = `structures`, in order) and, in fit/evaluate, adds
    `weight * consistency_term` to the compiled loss.

    The mirrored forward pass runs in the same training mode as the plain one (dropout and batch
    statistics active in fit), so the term also penalises sensitivity to dropout noise, like a
    Pi-model consistency loss. Save with model.save(...): the segmenter is stored inside, and
    `.segmenter` gives the plain model back for deployment."""

    def __init__(self, segmenter: keras.Model, structures, weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        partner_indices(structures)  # fail now, not at the first training step
        self.segmenter = segmenter
        self.structures = list(structures)
        self.weight = float(weight)
        self.consistency_tracker = keras.metrics.Mean(name="consistency")

    def build(self, input_shape=None):
        # The segmenter is built when wrapped; there is nothing else to create.
        self.built = True

    def call(self, inputs, training=None):
        return self.segmenter(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        consistency = consistency_term(lambda images: self.segmenter(images, training=training), x,
                                       self.structures, prediction=y_pred)
        self.consistency_tracker.update_state(consistency)
        # Keras divides the compiled loss by the number of replicas (gradients are summed across
        # them); the added term must be scaled alike or its weight grows with the GPU count.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return loss + self.weight * consistency / replicas

    def get_config(self):
        return {**super().get_config(), "segmenter": keras.saving.serialize_keras_object(self.segmenter),
                "structures": self.structures, "weight": self.weight}

    @classmethod
    def from_config(cls, config):
        segmenter = keras.saving.deserialize_keras_object(config.pop("segmenter"))
        return cls(segmenter=segmenter, **config)
