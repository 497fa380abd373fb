"""Fit and check the shipped pelvis model's quality estimate (seglib.inference.quality), end to end:

    .venv/bin/python reports/quality/quality_study.py --atlas ../shared/data/pelvis_atlas --work runs/quality

1. WORK/shape_model.npz   the atlas's shape model WITHOUT the held-out pelves (seglib.workflow.build_pelvis_model.HELD_OUT)
2. films, rendered in memory, each segmented by the shipped model (WORK/cache/<film>.npz: the film at the working
   resolution as 8-bit levels and both flip passes, quantised; WORK/cache/<set>.csv: each row's true Dice, measured
   on the film-size masks):
   fit         shape-model samples, all looks, a third of them made hard on purpose (HARD)
   validation  the REAL pelves of training subjects, all looks as the renderer makes them: the flag's threshold
               is chosen here (films made hard lie far below any threshold, and would not inform it)
   evaluation  the REAL held-out pelves, as the model card renders them (6 poses, 512 px, seed 1) in the
               default, shifted and clinical looks; 12 more poses of them (evaluation_more); and the same
               pelves made hard (evaluation_hard)
3. the evidence (FEATURES) of every row computed from the cached npz files (a minute, no network), so a change of
   the features is measured without segmenting again
4. the regressor fitted on `fit` (both with and without TTA; a film made hard counts HARD_WEIGHT), the threshold
   on `validation`, written to seglib/models/pelvis/quality.json (--write-model); each feature's benefit is
   measured on `validation` alone (the regressor refitted without it)
5. reports/quality/quality.md and quality_vs_dice.png: Spearman and flag recall / precision on the evaluation films

Every step is cached in WORK: rerun after changing the features, and only the features, the fit and the report
are redone. Rerun the whole (delete WORK/cache) after the shipped model changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage, stats

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from seglib.inference.quality import (  # noqa: E402
    FEATURES,
    QUALITY_FILE,
    QualityModel,
    film_levels,
    fit_quality_model,
    flag_threshold,
    structure_features,
)
from seglib.inference.segment import pretrained  # noqa: E402
from seglib.models.shipped import pretrained_run  # noqa: E402
from seglib.networks.film import resized  # noqa: E402
from seglib.phantom import shape_model  # noqa: E402
from seglib.phantom.dataset import phantom_rng  # noqa: E402
from seglib.phantom.exposure import APPEARANCES  # noqa: E402
from seglib.phantom.render import cached_shape_model, make_pelvis  # noqa: E402
from seglib.workflow.build_pelvis_model import HELD_OUT, HELD_OUT_FILMS  # noqa: E402

HERE = Path(__file__).resolve().parent
STRUCTURES = ("left_hip", "right_hip", "sacrum", "left_femur", "right_femur")
HIPS = ("left_hip", "right_hip")
FIT_LOOKS = ("default", "shifted", "wide", "clinical")
EVAL_LOOKS = ("default", "shifted", "clinical")
SETS = {"fit": dict(n=300, seed=101), "validation": dict(n=240, seed=202), "evaluation_hard": dict(n=60, seed=303)}
# The held-out pelves in the renderer's looks: the model card's films, and more poses of them (more rows near 0.95)
HELD_OUT_SETS = {"evaluation": dict(poses=HELD_OUT_FILMS["poses"], seed=HELD_OUT_FILMS["seed"]),
                 "evaluation_more": dict(poses=12, seed=404)}
HARD_SHARE = 1 / 3
# A film made hard counts a quarter in the fit: such films are there so that broken films rank last, and at full
# weight their errors (tens of per cent) would set the slopes that matter near Dice 0.95 (chosen on validation)
HARD_WEIGHT = 0.25
GOOD = 0.95  # a row below this true Dice is one a person should look at (issue #31)


# --- Films made hard on purpose: what a real film may do that the renderer's looks do not -------------------

def _noise(image, masks, rng):
    sigma = rng.uniform(0.08, 0.35) * 65535
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 65535).astype(np.uint16), masks


def _cut(image, masks, rng):
    """A field (and its truth) cut to 45-85 % of each side, anywhere."""
    rows, columns = image.shape
    height, width = int(rows * rng.uniform(0.45, 0.85)), int(columns * rng.uniform(0.45, 0.85))
    top, left = rng.integers(0, rows - height + 1), rng.integers(0, columns - width + 1)
    window = np.s_[top:top + height, left:left + width]
    return image[window], {s: m[window] for s, m in masks.items()}


def _blur(image, masks, rng):
    sigma = rng.uniform(2, 6) * image.shape[0] / 512
    return ndimage.gaussian_filter(image.astype(np.float32), sigma).astype(np.uint16), masks


def _inverted(image, masks, rng):
    return (65535 - image).astype(np.uint16), masks


def _upside_down(image, masks, rng):
    return image[::-1].copy(), {s: m[::-1].copy() for s, m in masks.items()}


def _occluded(image, masks, rng):
    """A bright or dark block (lead, a positioning aid) over part of the pelvis; the truth stays anatomical."""
    rows, columns = image.shape
    height, width = int(rows * rng.uniform(0.15, 0.4)), int(columns * rng.uniform(0.15, 0.4))
    top, left = rng.integers(rows // 5, rows - height - rows // 5), rng.integers(columns // 5, columns - width - columns // 5)
    image = image.copy()
    image[top:top + height, left:left + width] = rng.choice([65535, 0])
    return image, masks


def _low_resolution(image, masks, rng):
    factor = int(rng.integers(4, 9))
    small = image[::factor, ::factor]
    return np.kron(small, np.ones((factor, factor), np.uint16))[:image.shape[0], :image.shape[1]], masks


def _gamma(image, masks, rng):
    power = rng.choice([rng.uniform(0.2, 0.4), rng.uniform(2.5, 4.0)])
    return np.round((image / 65535.0) ** power * 65535).astype(np.uint16), masks


HARD = {"noise": _noise, "cut": _cut, "blur": _blur, "inverted": _inverted, "upside_down": _upside_down,
        "occluded": _occluded, "low_resolution": _low_resolution, "gamma": _gamma}


# --- Rendering and segmenting ---------------------------------------------------------------------------------

def film_plan(set_name: str, index: int, pelves: list[tuple[str, object]] | None):
    """(rng, look, size, hard, subject) of film `index` of a set: random, reproducible."""
    rng = phantom_rng(SETS[set_name]["seed"], index)
    looks = EVAL_LOOKS if set_name.startswith("evaluation") else FIT_LOOKS
    look = looks[index % len(looks)]
    size = int(rng.choice([256, 384, 512])) if set_name == "fit" else 512 if set_name.startswith("eval") else int(
        rng.choice([256, 512]))
    hard_share = {"fit": HARD_SHARE, "validation": 0.0, "evaluation_hard": 1.0}[set_name]
    hard = str(rng.choice(sorted(HARD))) if rng.random() < hard_share else ""
    subject = None if pelves is None else pelves[int(rng.integers(len(pelves)))]
    return rng, look, size, hard, subject


def films(set_name: str, model, atlas: Path):
    """(film id, look, hard, subject, image, masks, conditions) of a set."""
    if set_name in HELD_OUT_SETS:
        pelves, plan = _real_pelves(model, atlas, HELD_OUT), HELD_OUT_SETS[set_name]
        for look in EVAL_LOOKS:
            for number, (subject, pelvis) in enumerate(pelves):
                for pose in range(plan["poses"]):  # as the model card's held-out films
                    rng = phantom_rng(plan["seed"], number * 1000 + pose)
                    sample = make_pelvis(rng, HELD_OUT_FILMS["size"], APPEARANCES[look], pelvis=pelvis)
                    # the set in the id: both held-out sets draw pose 0, 1, ... of the same pelves
                    yield f"{set_name}_{look}_atlas{subject}_{pose}", look, "", subject, sample.image, sample.masks, sample.conditions
        return
    pelves = None
    if set_name != "fit":
        held_out = set(HELD_OUT) if set_name == "evaluation_hard" else None
        subjects = sorted(held_out) if held_out else [s for s in shape_model.atlas_ids(atlas) if s not in HELD_OUT]
        pelves = _real_pelves(model, atlas, subjects)
    for index in range(SETS[set_name]["n"]):
        rng, look, size, hard, subject = film_plan(set_name, index, pelves)
        pelvis = None if subject is None else subject[1]
        sample = make_pelvis(rng, size, APPEARANCES[look], pelvis=pelvis, model_path=model.path)
        image, masks = sample.image, sample.masks
        if hard:
            image, masks = HARD[hard](image, masks, rng)
        yield (f"{set_name}_{index:04d}", look, hard, "model" if subject is None else subject[0], image, masks,
               sample.conditions)


class _Model:
    def __init__(self, path: Path):
        self.path = str(path)
        self.shapes = cached_shape_model(self.path)


def _real_pelves(model: _Model, atlas: Path, subjects) -> list:
    loaded = shape_model.load_atlas(atlas, ids=list(subjects))
    return [(s, model.shapes.pelvis(model.shapes.align(v))) for s, v in zip(loaded.ids, loaded.vertices)]


def segment_set(set_name: str, model: _Model, atlas: Path, cache: Path, predictor) -> pd.DataFrame:
    """One row per (film, structure, tta): the true Dice of the written mask (the film's passes in the cache)."""
    table = cache / f"{set_name}.csv"
    if table.exists():
        return pd.read_csv(table, keep_default_na=False)
    rows = []
    for film_id, look, hard, subject, image, masks, conditions in films(set_name, model, atlas):
        maps, passes = predictor.probabilities(image, passes=True, name=film_id)
        averaged = {s: (passes.plain[s] + passes.flipped[s]) / 2 for s in passes.plain}
        np.savez_compressed(cache / f"{film_id}.npz", working=film_levels(passes.film),
                            **{f"plain_{s}": _quantised(m) for s, m in passes.plain.items()},
                            **{f"flipped_{s}": _quantised(m) for s, m in passes.flipped.items()})
        for tta in (False, True):
            film_maps = {s: resized(m, image.shape) for s, m in averaged.items()} if tta else maps
            for structure in STRUCTURES:
                rows.append({"film": film_id, "set": set_name, "look": look, "hard": hard, "subject": subject,
                             "conditions": ";".join(conditions), "size": image.shape[0], "structure": structure,
                             "tta": int(tta), "dice": _dice(film_maps[structure] >= 0.5, masks[structure]),
                             "truth_px": int(masks[structure].sum())})
        print(set_name, film_id, look, hard, flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(table, index=False)
    return frame


def with_features(frame: pd.DataFrame, cache: Path) -> pd.DataFrame:
    """The rows with their evidence (FEATURES) computed from each film's cached passes and levels, as quality.csv
    computes it from the passes (the maps quantised to 1/255, which moves no feature by more than ~0.003)."""
    features = {}
    for film_id in frame["film"].unique():
        stored = np.load(cache / f"{film_id}.npz")
        plain, flipped = ({s: stored[f"{view}_{s}"] / np.float32(255) for s in STRUCTURES} for view in ("plain", "flipped"))
        averaged = {s: (plain[s] + flipped[s]) / 2 for s in STRUCTURES}
        for tta, final in ((0, plain), (1, averaged)):
            for structure, values in structure_features(plain, flipped, final, levels=stored["working"]).items():
                features[film_id, tta, structure] = values
    rows = [features[key] for key in zip(frame["film"], frame["tta"], frame["structure"])]
    return pd.concat([frame.drop(columns=[c for c in FEATURES if c in frame]),
                      pd.DataFrame(rows, index=frame.index)], axis=1)


def _quantised(probability: np.ndarray) -> np.ndarray:
    return np.round(np.clip(probability, 0, 1) * 255).astype(np.uint8)


def _dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    total = int(prediction.sum()) + int(truth.sum())
    return 1.0 if total == 0 else 2.0 * int((prediction & truth).sum()) / total


# --- Fit, check, report -----------------------------------------------------------------------------------------

def scored(frame: pd.DataFrame, model: QualityModel) -> pd.DataFrame:
    frame = frame.copy()
    frame["predicted_dice"] = [model.predicted_dice(r) for r in frame[list(FEATURES)].to_dict("records")]
    frame["flag"] = (frame["predicted_dice"] < model.threshold).astype(int)
    return frame


def acceptance(frame: pd.DataFrame) -> dict:
    """Issue #31's three numbers over the hip rows."""
    hips = frame[frame["structure"].isin(HIPS)]
    bad, flagged = hips["dice"] < GOOD, hips["flag"] == 1
    return {"hip rows": len(hips), "rows below 0.95": int(bad.sum()), "flagged": int(flagged.sum()),
            "spearman": stats.spearmanr(hips["predicted_dice"], hips["dice"]).statistic,
            "recall": (bad & flagged).sum() / max(bad.sum(), 1), "precision": (bad & flagged).sum() / max(flagged.sum(), 1)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atlas", type=Path, default=ROOT.parent / "shared" / "data" / "pelvis_atlas")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "quality")
    parser.add_argument("--write-model", action="store_true", help=f"write the fitted {QUALITY_FILE} beside the model")
    args = parser.parse_args(argv)
    cache = args.work / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    model_path = args.work / "shape_model.npz"
    if not model_path.exists():
        shape_model.save_shape_model(shape_model.build_shape_model(
            shape_model.load_atlas(args.atlas, exclude=HELD_OUT)), model_path)
    model, predictor = _Model(model_path), pretrained("pelvis")
    tables = {name: with_features(segment_set(name, model, args.atlas, cache, predictor), cache)
              for name in ("fit", "validation", "evaluation", "evaluation_more", "evaluation_hard")}
    quality = fitted(tables)
    if args.write_model:
        quality.save(pretrained_run("pelvis").path / QUALITY_FILE)
    models = {**{f"without {name}": fitted(tables, without=name) for name in NEW_FEATURES}, "all": quality}
    benefit = {name: scored(tables["validation"], m) for name, m in models.items()}
    report(quality, {name: scored(t, quality) for name, t in tables.items()}, benefit)


NEW_FEATURES = ("occluded", "edge_share")  # edge_share: along the unexposed bands too since the clinical look


def fitted(tables: dict[str, pd.DataFrame], without: str | None = None) -> QualityModel:
    """The regressor fitted on `fit` (films made hard at HARD_WEIGHT), its threshold chosen on `validation`."""
    fit = tables["fit"]
    quality = fit_quality_model(fit, fitted_on=FITTED_ON, weights=np.where(fit["hard"] != "", HARD_WEIGHT, 1.0),
                                features=[f for f in FEATURES if f != without])
    return flag_threshold(quality, tables["validation"])


FITTED_ON = ("reports/quality/quality_study.py: 300 films of shape-model pelves (atlas without the held-out subjects), "
             "looks default/shifted/wide/clinical, a third made hard (noise, cut, blur, inverted, upside down, "
             f"occluded, low resolution, gamma; weight {HARD_WEIGHT:g}); threshold on 240 films of the real training "
             "pelves")


def report(quality: QualityModel, tables: dict[str, pd.DataFrame], benefit: dict[str, pd.DataFrame]) -> None:
    from report_figure import quality_figure  # noqa: PLC0415  (beside this script)

    lines = ["# Quality estimate of the shipped pelvis model: predicted against true Dice", "",
             f"Regressor: log(1 - Dice) = {quality.intercept:.3f}"
             + "".join(f" {'-' if c < 0 else '+'} {abs(c):.3f} x term({f})" for f, c in quality.coefficients.items())
             + f"; flag below predicted Dice {quality.threshold:.3f} (chosen on the validation films).", "",
             "| films | tta | hip rows | rows below 0.95 | flagged | Spearman | flags catch | flagged below 0.95 |",
             "|---|---|---|---|---|---|---|---|"]
    looks = pd.concat([tables["evaluation"], tables["evaluation_more"]])
    pooled = {"model card's held-out films (default, shifted, clinical)": tables["evaluation"],
              "held-out, 18 poses (default, shifted, clinical)": looks,
              "held-out, 18 poses + made hard": pd.concat([looks, tables["evaluation_hard"]]),
              "validation": tables["validation"], "fit": tables["fit"]}
    for name, frame in pooled.items():
        for tta in (0, 1):
            a = acceptance(frame[frame["tta"] == tta])
            lines.append(f"| {name} | {'yes' if tta else 'no'} | {a['hip rows']} | {a['rows below 0.95']} | "
                         f"{a['flagged']} | {a['spearman']:.3f} | {a['recall']:.0%} | {a['precision']:.0%} |")
    lines += ["", "Per look (held-out pelves, 18 poses, no TTA):", "", "| look | hip rows | below 0.95 | flagged | Spearman |", "|---|---|---|---|---|"]
    evaluation = pd.concat([looks, tables["evaluation_hard"].assign(look="made hard")])
    for look, frame in evaluation[evaluation["tta"] == 0].groupby("look", sort=False):
        a = acceptance(frame)
        lines.append(f"| {look} | {a['hip rows']} | {a['rows below 0.95']} | {a['flagged']} | {a['spearman']:.3f} |")
    lines += ["", "Each new feature's benefit, on the validation films only (the regressor refitted without it, its "
              "threshold chosen again):", "",
              "| evidence | tta | Spearman | flags catch | flagged below 0.95 | flagged |", "|---|---|---|---|---|---|"]
    for name, frame in benefit.items():
        for tta in (0, 1):
            a = acceptance(frame[frame["tta"] == tta])
            lines.append(f"| {name} | {'yes' if tta else 'no'} | {a['spearman']:.3f} | {a['recall']:.0%} | "
                         f"{a['precision']:.0%} | {a['flagged']} |")
    lines += ["", "![predicted against true Dice](quality_vs_dice.png)", ""]
    (HERE / "quality.md").write_text("\n".join(lines))
    quality_figure(pooled["held-out, 18 poses + made hard"], quality.threshold, HERE / "quality_vs_dice.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
