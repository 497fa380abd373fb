"""Export a trained run as a TensorFlow SavedModel for serving without seglib or Keras:

    RUN_DIR/saved_model/            the SavedModel (endpoint `serve`: images -> probabilities)
    RUN_DIR/saved_model/serving.json what the endpoint expects and returns, incl. preprocessing
"""

from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

from seglib.config import RunConfig
from seglib.data.io import write_text
from seglib.data.outputs import output_folder
from seglib.training.run_dir import RunDir


def export_run(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write the SavedModel (default RUN_DIR/saved_model) and return its path; never overwrites."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "saved_model"
    run = RunDir(run_dir)
    config, model = run.config(), run.load_model()
    model = getattr(model, "segmenter", model)  # a consistency-trained wrapper serves its plain segmenter
    # Export into a temporary sibling, renamed at the end: a failed export leaves nothing behind.
    with output_folder(out_dir, "export") as temporary:  # by default inside the run: not an input to guard
        model.export(str(temporary), format="tf_saved_model", verbose=False)
        write_text(temporary / "serving.json", json.dumps(serving_description(config, run), indent=2))
    return out_dir


def serving_description(config: RunConfig, run: RunDir) -> dict:
    """What a serving client must do before and after calling the `serve` endpoint
    (the steps of seglib.data.pipeline.working_image and model_input, and of seglib.networks.film)."""
    size, channels = config.image_size, 1 + config.side_aware
    side = (["channel 1: seglib.symmetry.midline.side_channel(shape, seglib.symmetry.midline.estimate_midline(grey)) of the "
             "resized grey image, not standardised"] if config.side_aware else [])
    return {
        "run": str(run),
        "endpoint": "serve",
        "input": {"shape": [None, size, size, channels], "dtype": "float32"},
        "output": {"shape": [None, size, size, len(config.structures)], "dtype": "float32",
                   "meaning": "sigmoid probability per pixel; channel i is structures[i]"},
        "image_size": size,
        "structures": list(config.structures),
        "thresholds": run.thresholds(),
        "preprocessing": [
            "read as 2D grey (RGB -> luminance), 8- or 16-bit",
            "scale to [0, 1]: divide by the dtype maximum (255 or 65535)",
            f"resize to {size} x {size}: area method, antialias",
            "per-image standardisation: (x - mean) / max(std, 1 / sqrt(number of pixels))",
            *side,
        ],
        "postprocessing": [
            "resize each probability map back to the original size: bilinear",
            "threshold channel i at thresholds[structures[i]] (0.5 where absent) for a binary mask: the threshold "
            "chosen on the validation split, which seglib applies too",
        ],
    }


def load_exported(path: str | Path):
    """The exported `serve` endpoint as a callable: float32 (N, S, S, 1) -> (N, S, S, K) tensor."""
    artifact = tf.saved_model.load(str(path))

    # The endpoint alone does not keep the loaded object alive, and once that is garbage
    # collected its variables are gone; the closure holds on to it.
    def serve(images):
        return artifact.serve(images)

    return serve
