"""How far to trust each segmentation: a predicted Dice and a flag per (film, structure), quality.csv.

The evidence is what inference already has (seglib.inference.predictor.TTAPasses: the passes and the
film), measured at the model's working resolution, so it does not depend on the film's pixel count:

    tta_dice        Dice between the plain pass's mask and the flipped pass's (mirrored, partner-swapped)
                    mask: two views of the same film that disagree cannot both be right (empty when a
                    structure's mirror partner has no model: no flipped pass)
    soft_dice       the Dice the mask would score against its own probabilities: low where a wide band of
                    the outline is uncertain
    pair_log_ratio  |log(area / partner's area)| for a left/right structure (0 without a partner): real
                    pelves are nearly symmetric, a mask twice its partner's size is not
    fragments       share of the mask outside its largest connected component
    edge_share      share of the outline on the edge of what the film shows: its border, or an unexposed band
                    (seglib.inference.film_checks.unexposed; the mask cut there as the written one is). The
                    truth stops there too, so this part of the outline is exact (the fit gives it a negative
                    weight), unless a mask leaks to the border
    occluded        share of the outline lying under opaque film or within OCCLUSION_PX of it: lead (a
                    gonadal shield) and metal (arthroplasty, plates) show as the film's brightest level, flat,
                    in regions far larger than text (OPAQUE_*). Bone behind them is still bone, but its outline
                    there is the network's guess; a stem inside a femur hides none of the femur's outline

A small regressor, fitted on rendered films whose truth is known (reports/quality/quality_study.py),
maps them to predicted_dice: log(1 - Dice) is linear in log(1 - tta_dice), log(1 - soft_dice) and the
others (a second set of coefficients without tta_dice serves runs without a flipped pass). Its
coefficients and the flag's threshold (chosen on validation films) are stored beside the model
(QUALITY_FILE: seglib/models/pelvis/quality.json). A run without one gets the shipped pelvis
model's, and its rows say so in the `estimator` column. A film that cannot be segmented
(seglib.inference.film_checks) gets predicted_dice 0 and flag 1; so does an empty mask.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from seglib.data.io import DataError, spreadsheet_safe
from seglib.inference.film_checks import degenerate_reason, unexposed
from seglib.symmetry.partners import partner_of

QUALITY_FILE = "quality.json"
FEATURES = ("tta_dice", "soft_dice", "pair_log_ratio", "fragments", "edge_share", "occluded")
QUALITY_COLUMNS = ["id", "structure", "predicted_dice", "flag", *FEATURES, "estimator", "warning"]
GOOD = 0.95  # a mask whose Dice is below this is one a person should look at (issue #31)
RECALL, PRECISION = 0.8, 0.5  # the flags must catch 80 % of those, and half the flagged must be one (issue #31)
_FLOOR = 1e-3  # 1 - Dice below this is "perfect": a log's floor
# Opaque film, on the working image as 8-bit levels (film_levels): within OPAQUE_LEVELS of its brightest level
# outside the unexposed bands, in regions that survive a 3 x 3 opening and cover OPAQUE_AREA of the image (a
# 28 mm prosthetic head does; letters of burnt-in text, thin at the working size, do not). Bone saturates
# in speckles (noise), lead and metal in solid plateaus. OCCLUSION_PX: the outline near them is hidden too
# (the film's halo around metal, about 4 mm at the pelvis model's working size).
OPAQUE_LEVELS, OPAQUE_AREA, OCCLUSION_PX = 1, 0.002, 2


@dataclass(frozen=True)
class QualityModel:
    """log(1 - predicted Dice) = intercept + sum(coefficients[f] * design_terms[f]); `single_pass`: the same
    without tta_dice, {"intercept": ..., "coefficients": ...}; flag where predicted Dice < threshold."""

    intercept: float
    coefficients: dict[str, float]
    single_pass: dict
    threshold: float
    fitted_on: str = ""
    name: str = "pelvis"

    def predicted_dice(self, features: dict[str, float | None]) -> float:
        """A feature without a coefficient (a model fitted before that evidence existed) has no weight."""
        terms = design_terms(features)
        intercept, coefficients = ((self.intercept, self.coefficients) if features["tta_dice"] is not None
                                   else (self.single_pass["intercept"], self.single_pass["coefficients"]))
        error = np.exp(intercept + sum(c * terms[f] for f, c in coefficients.items()))
        return float(np.clip(1.0 - error, 0.0, 1.0))

    def save(self, path: str | Path) -> Path:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> QualityModel:
        """The model stored at `path`; a DataError naming the file and the field for anything else."""
        try:
            values = json.loads(Path(path).read_text())
            if not isinstance(values, dict) or set(values) - _FIELDS or {"intercept", "coefficients"} - set(values):
                raise ValueError(f"expected an object with the fields {', '.join(sorted(_FIELDS))}")
            _check_terms(values, "", with_tta=True)
            _check_terms(values.get("single_pass"), "single_pass.", with_tta=False)
            if not _finite(values.get("threshold")) or not 0 < values["threshold"] < 1:
                raise ValueError(f"threshold {values.get('threshold')!r} is not a predicted Dice between 0 and 1")
            return cls(**values)
        except (OSError, ValueError) as error:
            raise DataError(f"{path}: cannot read the quality model: {error}") from None


_FIELDS = {"intercept", "coefficients", "single_pass", "threshold", "fitted_on", "name"}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def _check_terms(values, prefix: str, with_tta: bool) -> None:
    """An intercept and coefficients of FEATURES (tta_dice only `with_tta`), all finite numbers. A feature
    may lack one (a model fitted before it existed still predicts, from the evidence it knew); one this
    version does not compute makes the model unusable."""
    if not isinstance(values, dict) or not isinstance(values.get("coefficients"), dict):
        raise ValueError(f"{prefix}coefficients: expected an object of feature: number")
    known = set(FEATURES) - ({"tta_dice"} if not with_tta else set())
    given = values["coefficients"]
    if set(given) - known:
        raise ValueError(f"{prefix}coefficients: {', '.join(sorted(set(given) - known))} is not evidence this "
                         f"version computes ({', '.join(sorted(known))})")
    for name, value in {"intercept": values.get("intercept"), **given}.items():
        if not _finite(value):
            raise ValueError(f"{prefix}{name} {value!r} is not a finite number")


def design_terms(features: dict[str, float | None]) -> dict[str, float]:
    """The regressor's terms: the agreements as the log of their shortfall (a mask's error grows with its
    passes' disagreement, on a ratio scale), the others as they are."""
    terms = {f: float(features[f]) for f in FEATURES if f not in ("tta_dice", "soft_dice")}
    terms["soft_dice"] = _log_shortfall(features["soft_dice"])
    if features["tta_dice"] is not None:
        terms["tta_dice"] = _log_shortfall(features["tta_dice"])
    return terms


def _log_shortfall(agreement: float) -> float:
    return float(np.log(max(1.0 - float(agreement), _FLOOR)))


def structure_features(plain: dict[str, np.ndarray], flipped: dict[str, np.ndarray] | None,
                       final: dict[str, np.ndarray], threshold: float = 0.5,
                       levels: np.ndarray | None = None) -> dict[str, dict[str, float | None]]:
    """structure -> FEATURES, from the two passes (flipped: None when there is none), the final maps (plain,
    or their mean with tta) and the film as 8-bit levels (film_levels; None: no unexposed band and nothing
    opaque known), all at the working resolution."""
    masks = {s: m >= threshold for s, m in final.items()}
    areas = {s: int(m.sum()) for s, m in masks.items()}
    return {structure: {
        "tta_dice": None if flipped is None else _dice(plain[structure] >= threshold, flipped[structure] >= threshold),
        "soft_dice": _soft_dice(final[structure], mask),
        "pair_log_ratio": _pair_log_ratio(areas[structure], areas.get(partner_of(structure))),
        "fragments": _fragments(mask), **_outline_features(mask, levels)} for structure, mask in masks.items()}


def film_levels(working: np.ndarray) -> np.ndarray:
    """The film at the working resolution (seglib.data.pipeline.working_image, (S, S) or (S, S, 1)) as 8-bit
    levels: what the occlusion and the unexposed bands are read from (and what reports/quality caches)."""
    return np.round(np.clip(np.squeeze(working), 0, 1) * 255).astype(np.uint8)


def _outline_features(mask: np.ndarray, levels: np.ndarray | None) -> dict[str, float]:
    """edge_share and occluded of one mask, its film's `levels` brought to the mask's size."""
    if levels is not None and levels.shape != mask.shape:  # a run of another working size: nearest levels
        rows, columns = (np.arange(n) * levels.shape[i] // n for i, n in enumerate(mask.shape))
        levels = levels[np.ix_(rows, columns)]
    outside = np.zeros(mask.shape, bool) if levels is None else _unexposed(levels)
    shown = mask & ~outside  # the mask as written: cut at the unexposed bands
    outline = shown & ~ndimage.binary_erosion(shown)  # a mask pixel on the film's border is outline
    total = int(outline.sum())
    if total == 0:
        return {"edge_share": 0.0, "occluded": 0.0}
    edge = ndimage.binary_dilation(outside)
    edge[0], edge[-1], edge[:, 0], edge[:, -1] = True, True, True, True
    hidden = np.zeros(mask.shape, bool) if levels is None else _near_opaque(levels, outside)
    return {"edge_share": float((outline & edge).sum()) / total, "occluded": float((outline & hidden).sum()) / total}


def _unexposed(levels: np.ndarray) -> np.ndarray:
    outside = unexposed(levels)
    return np.zeros(levels.shape, bool) if outside is None else outside


def _near_opaque(levels: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """Where the film is opaque (OPAQUE_*), grown by OCCLUSION_PX."""
    if outside.all():
        return np.zeros(levels.shape, bool)
    bright = ndimage.binary_opening((levels >= int(levels[~outside].max()) - OPAQUE_LEVELS) & ~outside)
    labelled, count = ndimage.label(bright)
    if count == 0:
        return bright
    large = np.bincount(labelled.ravel()) >= OPAQUE_AREA * levels.size
    large[0] = False
    return ndimage.binary_dilation(large[labelled], iterations=OCCLUSION_PX)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def _soft_dice(probability: np.ndarray, mask: np.ndarray) -> float:
    total = float(probability.sum()) + float(mask.sum())
    return 1.0 if total == 0 else 2.0 * float(probability[mask].sum()) / total


def _pair_log_ratio(area: int, partner_area: int | None) -> float:
    if partner_area is None or area == 0 or partner_area == 0:
        return 0.0
    return float(abs(np.log(area / partner_area)))


def _fragments(mask: np.ndarray) -> float:
    labelled, count = ndimage.label(mask)
    if count <= 1:
        return 0.0
    sizes = np.bincount(labelled.ravel())[1:]
    return float(1.0 - sizes.max() / sizes.sum())


# --- Rows of quality.csv -----------------------------------------------------------------------------------

def quality_model(run_dirs) -> tuple[QualityModel, str]:
    """The quality model of the runs, and the `estimator` column's words: the run's own QUALITY_FILE when
    there is one run and it has one, else the shipped pelvis model's coefficients (a documented default)."""
    runs = [Path(d) for d in ([run_dirs] if isinstance(run_dirs, (str, os.PathLike)) else run_dirs)]
    if len(runs) == 1 and (runs[0] / QUALITY_FILE).is_file():
        model = QualityModel.load(runs[0] / QUALITY_FILE)
        return model, f"fitted ({model.name})"
    from seglib.models.shipped import pretrained_run

    return QualityModel.load(pretrained_run("pelvis").path / QUALITY_FILE), "default (pelvis coefficients)"


def quality_rows(image_id: str, structures, passes, model: QualityModel, estimator: str,
                 threshold: float = 0.5, warning: str | None = None) -> list[dict]:
    """One QUALITY_COLUMNS row per structure of a film. `passes`: seglib.inference.predictor.TTAPasses, None
    for a film that was not segmented (`warning` says why): predicted Dice 0, flagged."""
    if passes is None:
        return [{"id": image_id, "structure": s, "predicted_dice": 0.0, "flag": 1, **dict.fromkeys(FEATURES, ""),
                 "estimator": estimator, "warning": warning or "not segmented"} for s in structures]
    averaged = passes.averaged and passes.flipped is not None
    final = {s: (passes.plain[s] + passes.flipped[s]) / 2 for s in passes.plain} if averaged else passes.plain
    levels = None if passes.film is None else film_levels(passes.film)
    features = structure_features(passes.plain, passes.flipped, final, threshold, levels)
    rows = []
    for structure in structures:
        empty = not (final[structure] >= threshold).any()  # nothing to trust, or the bone is not in the film
        predicted = 0.0 if empty else model.predicted_dice(features[structure])
        rows.append({"id": image_id, "structure": structure, "predicted_dice": round(predicted, 4),
                     "flag": int(predicted < model.threshold),
                     **{f: "" if v is None else round(v, 4) for f, v in features[structure].items()},
                     "estimator": estimator + ("" if passes.flipped is not None else ", single pass"),
                     "warning": "empty mask" if empty else (warning or "")})
    return rows


class QualityTable:
    """The quality.csv of a folder inference: add each film's passes, write once at the end."""

    def __init__(self, predictor, threshold: float = 0.5):
        self.model, self.estimator = quality_model(predictor.run_dirs)
        self.structures, self.threshold, self.rows = predictor.structures, threshold, []

    def add(self, image_id: str, image: np.ndarray, passes) -> list[dict]:
        warning = degenerate_reason(image) if passes is None else None
        rows = quality_rows(spreadsheet_safe(image_id), self.structures, passes, self.model, self.estimator,
                            self.threshold, warning)
        self.rows += rows
        return rows

    def write(self, path: str | Path) -> Path:
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=QUALITY_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        return Path(path)


def film_quality(predictor, image, tta: bool = False, threshold: float = 0.5, image_id: str = "film"):
    """(structure -> probability map, quality rows) of one film: `predictor.probabilities` with its
    quality.csv rows, e.g. `maps, rows = film_quality(seglib.pretrained("pelvis"), film)`."""
    maps, passes = predictor.probabilities(image, tta=tta, name=image_id, passes=True)
    return maps, QualityTable(predictor, threshold).add(image_id, image, passes)


# --- Fitting (reports/quality/quality_study.py) ---------------------------------------------------------------

def fit_quality_model(table, fitted_on: str = "", name: str = "pelvis", weights=None,
                      features=FEATURES) -> QualityModel:
    """Weighted least squares of log(1 - Dice) on design_terms over the rows of `table` (FEATURES and the true
    `dice`) whose structure is both in the film and in the mask (the others are scored 0 by rule). `weights`:
    one per row of `table` (None: all 1); `features`: the evidence used (the others get no coefficient)."""
    kept = ((table["truth_px"] > 0) & (table["soft_dice"] > 0)).to_numpy()
    rows = table[kept]
    weight = np.sqrt(np.ones(len(rows)) if weights is None else np.asarray(weights, float)[kept])
    records = rows[list(FEATURES)].to_dict("records")
    target = np.log(np.maximum(1.0 - rows["dice"].to_numpy(float), _FLOOR))
    both = _least_squares([design_terms(r) for r in records], target, weight, features)
    single = _least_squares([design_terms({**r, "tta_dice": None}) for r in records], target, weight, features)
    return QualityModel(both["intercept"], both["coefficients"], single, threshold=GOOD, fitted_on=fitted_on, name=name)


def _least_squares(terms: list[dict[str, float]], target: np.ndarray, weight: np.ndarray, features) -> dict:
    names = [n for n in terms[0] if n in features]
    design = np.column_stack([np.ones(len(terms)), [[t[n] for n in names] for t in terms]])
    solution, *_ = np.linalg.lstsq(design * weight[:, None], target * weight, rcond=None)
    return {"intercept": float(solution[0]), "coefficients": {n: float(c) for n, c in zip(names, solution[1:])}}


def flag_threshold(model: QualityModel, table, structures=("left_hip", "right_hip")) -> QualityModel:
    """The model with the flag's threshold chosen on `table` (validation films, FEATURES and true `dice`): the
    one that meets issue #31's two targets over the `structures` rows with the widest margin, i.e. the largest
    min(recall - RECALL, precision - PRECISION) of the flags against the rows whose Dice is below GOOD."""
    rows = table[table["structure"].isin(structures)]
    predicted = np.array([model.predicted_dice(r) for r in rows[list(FEATURES)].to_dict("records")])
    bad = rows["dice"].to_numpy(float) < GOOD
    best, best_margin = GOOD, -np.inf
    for threshold in np.unique(np.round(predicted, 4)) + 1e-4:
        flagged = predicted < threshold
        caught = int((flagged & bad).sum())
        margin = min(caught / max(int(bad.sum()), 1) - RECALL, caught / max(int(flagged.sum()), 1) - PRECISION)
        if margin > best_margin:
            best, best_margin = float(threshold), margin
    return QualityModel(model.intercept, model.coefficients, model.single_pass, round(best, 4), model.fitted_on,
                        model.name)
