"""The models that ship with seglib. Each is a run folder of package data, NAME/ beside this file, read like
any trained run (seglib.training.run_dir: config.json, calibration.json, weights.float16.npz, quality.json),
with its held-out accuracy (heldout_accuracy.csv) and model card (MODEL_CARD.md): nothing is downloaded.

    pretrained_run("pelvis")    its run folder (a RunDir): goes wherever a trained run does
    fusion_options("pelvis")    how its structures become one label map (seglib.inference.fusion.fuse)

Using one: `seglib.pretrained("pelvis")` (a Predictor) and `seglib.segment(films, out, model="pelvis")`
(seglib.inference.segment); starting a run from one: `train --init pelvis` (seglib.training.transfer).
Their names are seglib.config.PRETRAINED_MODELS, where the command line's choices and the profiles' init
resolution read them; `python -m seglib pretrain` rebuilds the pelvis model (seglib.workflow.build_pelvis_model).
"""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "shipped": ("PRETRAINED_FUSION", "pretrained_run", "fusion_options"),
})
