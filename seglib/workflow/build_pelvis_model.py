"""Rebuild the pelvis model that ships with seglib (seglib/models/pelvis) from the CT atlas:

    python -m seglib pretrain --atlas ../shared/data/pelvis_atlas --work runs/pretrain \\
        --out seglib/models/pelvis --force

Each step writes into WORK and is skipped when its output is there and complete, so a rebuild that
was stopped continues where it stopped (the training itself with `train --resume`):

1. WORK/shape_model.npz     the shape model of the atlas pelves except the held-out ones
2. WORK/films/              films rendered from it in the wide look (default and shifted ranges spanned)
3. WORK/run/                one network for the five bones (seglib.training)
4. WORK/films_clinical/     films as they come from the clinic (implants, lead shields, processing, tight
                            fields: the clinical look), with wide-look films among them so the clean ones
                            are not forgotten
5. WORK/run_clinical/       the network of step 3 fine-tuned on them: the shipped network
6. WORK/heldout_<look>/     the REAL held-out pelves rendered in the default, shifted and clinical looks, and
   WORK/metrics_<look>.csv  the network's accuracy on them
7. OUT/                     the shipped run: config, thresholds, float16 weights, metrics, MODEL_CARD.md

`base` (`--base pelvis`, or a finished run folder) skips steps 2-3 and fine-tunes that network instead: the
clinical stage on top of a model already built, without repeating the first stage's hour of training.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pandas as pd

from seglib.config import PRETRAINED_MODELS, profile_config
from seglib.data.folders import DatasetDir
from seglib.data.io import DataError, write_text
from seglib.data.layout import join_datasets
from seglib.data.outputs import UnsafeOutput, check_output_path, check_replaceable, output_folder
from seglib.evaluation.folder import evaluate_folder
from seglib.inference.predictor import predict_folder
from seglib.phantom import shape_model
from seglib.phantom.dataset import write_atlas_renderings, write_phantom_dataset
from seglib.phantom.exposure import APPEARANCES
from seglib.training.fit import train
from seglib.training.run_dir import RunDir

STRUCTURES = ("left_hip", "right_hip", "sacrum", "left_femur", "right_femur")
# Five real pelves stay out of the shape model and the films, so the card's accuracy is on unseen anatomy.
HELD_OUT = ("45", "46", "52", "55", "65")
# The films: many, at the demo's film size, in the widest look the renderer has, and the wide intensity
# augmentation on top (the network must work on machines we do not know). The network: the demo's, at 192 px
# (2.25x the demo's pixels per step).
FILMS = dict(n=1200, size=256, seed=7)
NETWORK = dict(image_size=192, epochs=20, val_fraction=0.1, test_fraction=0.0, intensity_augmentation="wide")
HELD_OUT_FILMS = dict(poses=6, size=512, seed=1)
LOOKS = ("default", "shifted", "clinical")
# The clinical stage: films in the clinical look, and a third as many in the wide look again (fine-tuning on
# hardware and shields alone would trade the clean films for them), at a tenth of the first stage's rate.
CLINICAL_FILMS = dict(n=900, size=256, seed=10)
REFRESHER_FILMS = dict(n=300, size=256, seed=11)
FINE_TUNING = dict(epochs=8, learning_rate=1e-4)


def build_pretrained(atlas: Path, work: Path, out: Path, held_out=HELD_OUT, force: bool = False,
                     films: int = FILMS["n"], epochs: int = NETWORK["epochs"], base: str | None = None) -> Path:
    """Steps 1-7 of the module doc; returns OUT. `force` replaces an earlier pretrain output in OUT; `base`
    (a pretrained model's name or a finished run folder) is fine-tuned instead of training step 3."""
    check_start(atlas, work, out, held_out, force, base)
    work.mkdir(parents=True, exist_ok=True)
    model_path = work / "shape_model.npz"
    if not model_path.exists():
        shape_model.save_shape_model(shape_model.build_shape_model(
            shape_model.load_atlas(atlas, exclude=held_out)), model_path)
    first = base or str(_first_stage(work, model_path, films, epochs).path)
    if not (work / "films_clinical").exists():
        _write_clinical_films(work / "films_clinical", work, model_path)
    run = RunDir(work / "run_clinical")
    if not run.is_finished():
        config = profile_config("demo", data=str((work / "films_clinical").resolve()), structures=STRUCTURES,
                                **{**NETWORK, **FINE_TUNING, "init": first})
        train(config, run.path, resume=run.config_path.exists())
    metrics = {look: _held_out_metrics(atlas, work, run, look, held_out) for look in LOOKS}
    with output_folder(out, "pretrain", [atlas, work], force) as staging:
        manifest = pd.read_csv(DatasetDir(work / "heldout_clinical").manifest_path, dtype=str, keep_default_na=False)
        _write_shipped_run(run, RunDir(staging), metrics, condition_table(metrics["clinical"], manifest), held_out,
                           first)
    return out


def _first_stage(work: Path, model_path: Path, films: int, epochs: int) -> RunDir:
    """Steps 2-3: the network trained from random weights on wide-look films."""
    if not (work / "films").exists():
        write_phantom_dataset(work / "films", n=films, size=FILMS["size"], seed=FILMS["seed"],
                              appearance=APPEARANCES["wide"], model_path=model_path)
    run = RunDir(work / "run")
    if not run.is_finished():
        config = profile_config("demo", data=str((work / "films").resolve()), structures=STRUCTURES,
                                **{**NETWORK, "epochs": epochs, "init": "none"})  # not from the model it rebuilds
        train(config, run.path, resume=run.config_path.exists())
    return run


def _write_clinical_films(folder: Path, work: Path, model_path: Path) -> None:
    """Step 4: clinical-look films and wide-look refreshers in one dataset (ids `clinical_*`, `wide_*`),
    rendered apart and joined by hard links, so each keeps its own seed and manifest row."""
    parts = {"clinical": CLINICAL_FILMS, "wide": REFRESHER_FILMS}
    for look, films in parts.items():
        if not (work / f"films_{look}_part").exists():
            write_phantom_dataset(work / f"films_{look}_part", appearance=APPEARANCES[look], model_path=model_path,
                                  **films)
    join_datasets({look: work / f"films_{look}_part" for look in parts}, folder)


def check_start(atlas: Path, work: Path, out: Path, held_out=HELD_OUT, force: bool = False,
                base: str | None = None) -> None:
    """Everything the rebuild needs, before it creates anything: a refusal after an hour of training
    (or a WORK folder left by a mistyped --atlas) helps nobody."""
    if base is not None and base not in PRETRAINED_MODELS and not RunDir(Path(base)).is_finished():
        raise DataError(f"{base}: --base is a pretrained model ({', '.join(PRETRAINED_MODELS)}) or a finished run "
                        "folder (with summary.json)")
    if not atlas.is_dir():
        raise DataError(f"{atlas}: no such folder; --atlas is the CT atlas folder (left/, right/, sacrum/)")
    subjects = shape_model.load_atlas(atlas).ids  # every mesh read now: a damaged one is named before the work
    missing = [subject for subject in map(str, held_out) if subject not in subjects]
    if missing:
        raise DataError(f"{atlas}: the held-out subject(s) {', '.join(missing)} are not in the atlas "
                        f"(it has {', '.join(subjects)})")
    check_output_path(work, [atlas])
    if work.exists() and not work.is_dir():
        raise UnsafeOutput(f"{work}: is a file; --work is a folder (created if absent)")
    check_replaceable(out, "pretrain", [atlas, work], force)
    _writable(work, work.absolute())
    _writable(out, out.absolute().parent)  # OUT is written beside itself, then renamed (seglib.data.outputs)


def _writable(folder: Path, where: Path) -> None:
    place = next(parent for parent in (where, *where.parents) if parent.exists())
    if not os.access(place, os.W_OK | os.X_OK):
        raise UnsafeOutput(f"{folder}: cannot be written: no permission to write in {place}")


def _held_out_metrics(atlas: Path, work: Path, run: RunDir, look: str, held_out) -> pd.DataFrame:
    films, table = work / f"heldout_{look}", work / f"metrics_{look}.csv"
    if not films.exists():
        write_atlas_renderings(films, atlas, list(held_out), appearance=APPEARANCES[look],
                               model_path=work / "shape_model.npz", **HELD_OUT_FILMS)
    if not table.exists():
        predictions = predict_folder(run, DatasetDir(films).images_dir, work / f"predictions_{look}", force=True)
        write_text(table, evaluate_folder(predictions, films, method="pelvis").to_csv(index=False))
    return pd.read_csv(table)


def condition_table(table: pd.DataFrame, manifest: pd.DataFrame, structures=("left_hip", "right_hip")) -> pd.DataFrame:
    """Per condition of the films (the manifest's `conditions`, sides pooled: `tha_left` counts as `tha`; films
    without any as `none`): how many films, and the `structures`' mean and worst Dice and median HD95 (mm)."""
    named = manifest.set_index("id")["conditions"].fillna("")
    rows = table[table["structure"].isin(structures)].assign(
        condition=lambda t: t["id"].map(lambda i: sorted({_condition_kind(c) for c in named[i].split(";") if c})
                                        or ["none"]))
    rows = rows.explode("condition")
    return (rows.groupby("condition")
            .agg(films=("id", "nunique"), dice_mean=("dice", "mean"), dice_worst=("dice", "min"),
                 hd95_mm_median=("hd95_mm", "median"))
            .reset_index().sort_values("dice_mean"))


def _condition_kind(condition: str) -> str:
    """`tha_left` -> `tha`, `si_screw_right` -> `si_screw`; shields keep their kind (`shield_male`)."""
    return condition.rsplit("_", 1)[0] if condition.endswith(("_left", "_right")) else condition


def accuracy_table(metrics: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per look and structure: mean and worst Dice, median HD95 (mm), mean surface Dice."""
    rows = []
    for look, table in metrics.items():
        for structure in [s for s in STRUCTURES if s in set(table["structure"])]:
            group = table[table["structure"] == structure]
            rows.append({"look": look, "structure": structure, "films": len(group),
                         "dice_mean": group["dice"].mean(), "dice_worst": group["dice"].min(),
                         "hd95_mm_median": group["hd95_mm"].median(),
                         "surface_dice_mean": group["surface_dice"].mean()})
    return pd.DataFrame(rows)


def _write_shipped_run(run: RunDir, shipped: RunDir, metrics, conditions: pd.DataFrame, held_out, first: str) -> None:
    """The run as it ships: the network in float16, the thresholds, the config without the local data path
    or the first stage's folder, the held-out accuracy and the model card."""
    config = dataclasses.replace(run.config(), data="", init="")
    shipped.write(config)
    shipped.save_float16_weights(run.load_model())
    shutil.copy(run.calibration_path, shipped.calibration_path)
    table = accuracy_table(metrics)
    write_text(shipped.path / "heldout_accuracy.csv", table.to_csv(index=False, float_format="%.4f"))
    write_text(shipped.path / "heldout_conditions.csv", conditions.to_csv(index=False, float_format="%.4f"))
    summary = run.summary()
    write_text(shipped.path / "MODEL_CARD.md", MODEL_CARD.format(
        structures=", ".join(config.structures), image_size=config.image_size, depth=config.depth,
        base_filters=config.base_filters, films=_count_films(run), epochs=summary["epochs_run"],
        size_mb=shipped.float16_weights_path.stat().st_size / 1e6, held_out=", ".join(held_out),
        train_minutes=summary["train_seconds"] / 60, first=_first_stage_text(first),
        clinical=CLINICAL_FILMS["n"], refreshers=REFRESHER_FILMS["n"], accuracy=_markdown(table),
        by_condition=_condition_markdown(conditions)))


def _first_stage_text(first: str) -> str:
    if first in PRETRAINED_MODELS:  # --base pelvis: the first stage is the earlier shipped model's
        return (f"{FILMS['n']} wide-look films for {NETWORK['epochs']} epochs (about 75 minutes on a 2-core CPU; "
                f"this build started from the earlier shipped `{first}` model, which had been through that stage "
                "and a clinical stage on films of other seeds, and repeats the clinical stage on new films)")
    summary = RunDir(Path(first)).summary()
    return (f"{FILMS['n']} wide-look films for {summary['epochs_run']} epochs "
            f"({summary['train_seconds'] / 60:.0f} minutes on a 2-core CPU)")


def _count_films(run: RunDir) -> int:
    return sum(1 for split in run.split().values() if split in ("train", "val"))


def _condition_markdown(table: pd.DataFrame) -> str:
    lines = ["| condition | films | hips' Dice mean | worst | HD95 median (mm) |", "|" + "---|" * 5]
    lines += [f"| {r.condition} | {r.films} | {r.dice_mean:.3f} | {r.dice_worst:.3f} | {r.hd95_mm_median:.2f} |"
              for r in table.itertuples()]
    return "\n".join(lines)


def _markdown(table: pd.DataFrame) -> str:
    header = "| look | structure | films | Dice mean | Dice worst | HD95 median (mm) | surface Dice (1 px) |"
    lines = [header, "|" + "---|" * 7]
    lines += [f"| {r.look} | {r.structure} | {r.films} | {r.dice_mean:.3f} | {r.dice_worst:.3f} | "
              f"{r.hd95_mm_median:.2f} | {r.surface_dice_mean:.3f} |" for r in table.itertuples()]
    return "\n".join(lines)


MODEL_CARD = """# seglib pelvis model: model card

**For research and education only, not for clinical use.** It was trained on synthetic films only.

## What it is
One U-Net (seglib's strided U-Net: depth {depth}, {base_filters} filters at the first level, a side channel
with the position relative to the film's midline) that segments five bones on an anterior-posterior (AP)
pelvis radiograph: {structures}. Left and right are the patient's (the patient's left is on the
image's right). The film is resampled to {image_size} x {image_size} pixels, and each probability map back
to the film's own size before the threshold chosen on the validation films (calibration.json). Where the film
shows nothing at its edges (flat bands behind the collimator blades, a shutter or padding), no bone is drawn:
the network would continue a bone cut by a tight field into them (`seglib.inference.film_checks.unexposed`).

Weights: `weights.float16.npz`, {size_mb:.1f} MB, half precision (the network computes in float32). They
ship inside the package: nothing is downloaded at run time.

    python -m seglib segment --model pelvis --images FILMS --out OUT     # or seglib.pretrained("pelvis")
    python -m seglib train --init pelvis --data DATA --structure left_hip --out RUN   # fine-tuning

## Training data and attribution
Synthetic films (256 px) rendered by seglib's phantom renderer
(`seglib.phantom`: X-ray projection of bone meshes, soft tissue, femurs, detector chain) from a
statistical shape model of the pelvis surfaces of 25 of the 30 subjects of the **Open Source Atlas of
Pelvis Segmentations and Surgical Trajectories**, I-STAR Lab, Johns Hopkins University
(https://github.com/rhan93/Altas-of-Pelvis-Segmentation-and-Trajectory-Planning), CC BY 4.0; the CTs
come from TCIA's CT Lymph Nodes collection. Please cite: Han R, Uneri A, Silva T D, Ketcha M, Goerres J,
Vogt S, Kleinszig G, Osgood G, Siewerdsen J H. Atlas-based automatic planning and 3D-2D fluoroscopic
guidance in pelvic trauma surgery. Phys. Med. Biol. 64 (2019) 095022, doi:10.1088/1361-6560/ab1456.
These weights are derived from that atlas and are shared under the same licence, with this attribution.

Two stages. The first trains from random weights on {first}. Their look spans the renderer's default and "shifted"
ranges (photons, blur, scatter, contrast, gamma, edge enhancement, collimation, lead markers); poses, femur
positions and soft tissue are random. Then the clinical stage, fine-tuning at a tenth of the rate: {clinical}
films in the clinical look (the wide ranges plus, each with its own probability, hip arthroplasty, dynamic hip
screws, cannulated and sacroiliac screws, plates, gonadal lead shields, CR/DR processing, low dose, burned-in
text, tight fields that cut bones, poses beyond the usual ranges) and {refreshers} wide-look films among them,
so the clean films are not forgotten; {films} films in all (90 % training, 10 % validation), {epochs} epochs,
{train_minutes:.0f} minutes on a 2-core CPU. The truth masks are anatomical: a bone behind a shield or around
metal is still bone. Training adds random rotation, scale, shift, mirroring (each film is also an example of
the other side) and the wide intensity augmentation (gamma, noise, blur and edge enhancement). Rebuild:
`python -m seglib pretrain` (README, "Pretrained model").

## Accuracy on pelves it has never seen
The five held-out atlas subjects ({held_out}), their real bone surfaces rendered in 6 random poses each
at 512 px, in the default look, the shifted look (more noise and blur, flatter contrast; its ranges lie
inside the wide look the model was trained on, so it is a harder look, not an unseen one) and the clinical
look (implants, shields, processing, tight fields: new draws, not the training films). One model, no
test-time augmentation; HD95 at the detector (about 1.2x the anatomy):

{accuracy}

The clinical look by condition (a film with several counts under each; both hips pooled; `none`: a film with the
wide look's variation only; heldout_conditions.csv):

{by_condition}

## How far to trust each film
Every segmentation comes with `quality.csv`: per film and bone a predicted Dice and a flag (1: a person should
look), from measurements the inference already has (agreement of the plain and the mirrored pass, the outline's
soft Dice, the left/right area ratio, fragments, outline on the edge of what the film shows: its border or an
unexposed band, where the truth is cut too) and from the film itself (the share of the outline under opaque film:
lead or metal, the film's brightest flat level), through a least-squares fit made on rendered films whose truth
is known; its coefficients and flag threshold are `quality.json` beside the weights, refitted for this network by
`reports/quality/quality_study.py`. On the held-out films above (no TTA / TTA) predicted and true Dice correlate
at Spearman 0.81 / 0.79 over the hip rows; the flags catch 67 % / 86 % of the hip rows below Dice 0.95, and 55 % /
43 % of the flagged rows are below it (on 18 poses of the held-out pelves: 0.83 / 0.84, 67 % / 81 %, 64 % / 50 %).
A mask whose outline runs behind a shield or a prosthesis well enough that both passes agree is the one it still
misses. All numbers: `reports/quality/quality.md`, and the figure of predicted against true Dice:

![predicted against true Dice](../../../reports/quality/quality_vs_dice.png)

## Intended use
Research and teaching: a model that segments AP pelvis films without training, and a starting point for
fine-tuning on a user's own films (`train --init pelvis`; what it buys over training from scratch with the same
films and budget is measured in the README, "Pretrained model").

## Known limits
- Trained on rendered films only; real radiographs differ (contrast, bowel gas, clothing, positioning aids,
  hardware and processing of other makes than the renderer's). Check it on your own films before relying on
  it, and fine-tune.
- Adult pelves from 30 CTs: no children, no fractures, no severe deformity. Implants are drawn into these
  pelves by the renderer; bone resorption or remodelling around them is not.
- AP projection only, pelvis roughly centred; other views (inlet, outlet, Judet, lateral) are not handled.
- Behind a gonadal shield, plate or arthroplasty the hidden bone is drawn from the shape around it: outlines
  there can be off by 4-10 mm (HD95), the worst films of the clinical look (table above); quality.csv flags
  many of them (reports/quality/quality.md). A tight field's unexposed bands get no bone; a field whose edges are not flat (a collimator
  without an electronic shutter, scatter behind the blades) is not recognised as such.
- The sacrum is the atlas's S1-S3; the femurs are drawn by the renderer, not from CTs.
- At {image_size} px working resolution the outline of a 2000-3000 px film is off by a few film pixels.
"""
