"""Statistics over a metrics table: mean/std/median per method and structure, and paired margins of
each method against a reference (with a Wilcoxon signed-rank p-value)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seglib.evaluation.metrics import DISTANCE_METRICS, METRIC_NAMES


def summarise(table: pd.DataFrame, by=("method", "structure")) -> pd.DataFrame:
    """Mean, std and median per group; `n_nan_*` counts images where a distance was undefined
    (one mask empty), so failures are not averaged away silently."""
    metrics = [m for m in table.columns if m in METRIC_NAMES or m.endswith("_mm") or m == "uwmgi_score"]
    grouped = table.groupby(list(by), sort=False)  # methods in the order they were compared
    summary = grouped[metrics].agg(["mean", "std", "median"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    for metric in DISTANCE_METRICS:
        if metric in table.columns:
            summary[f"n_nan_{metric}"] = grouped[metric].apply(lambda v: int(np.isnan(v).sum()))
    summary["n_images"] = grouped.size()
    return summary.reset_index()


def margins_over(table: pd.DataFrame, reference: str, metrics=("dice", "hd95")) -> pd.DataFrame:
    """By how much `reference` beats every other method, paired per image and structure.

    For each metric: the mean and std of the per-image improvement (Dice: reference − other;
    distances: other − reference, so positive always means the reference is better), the number
    of images where the reference is better, and the two-sided Wilcoxon signed-rank p-value.
    Images where a distance is undefined for either method are left out of that metric (n_*)."""
    from scipy.stats import wilcoxon

    _check_one_row_per_image(table)
    keyed = table.set_index(["method", "structure", "id"]).sort_index()
    methods = list(table["method"].unique())
    if reference not in methods:
        raise ValueError(f"no rows of the reference method {reference!r} in the table; methods: {', '.join(methods)}")
    rows = []
    for method in (m for m in methods if m != reference):
        for structure in table.loc[table["method"] == reference, "structure"].unique():
            row = {"method": method, "structure": structure}
            for metric in metrics:
                paired = pd.concat([_values(keyed, reference, structure, metric),
                                    _values(keyed, method, structure, metric)], axis=1, join="inner").dropna()
                sign = -1.0 if metric.removesuffix("_mm") in DISTANCE_METRICS else 1.0
                gain = sign * (paired.iloc[:, 0] - paired.iloc[:, 1])
                row.update({f"{metric}_gain_mean": gain.mean(), f"{metric}_gain_std": gain.std(),
                            f"{metric}_better": int((gain > 0).sum()), f"n_{metric}": len(gain),
                            f"{metric}_wilcoxon_p": _wilcoxon_p(gain, wilcoxon)})
            rows.append(row)
    return pd.DataFrame(rows)


def _check_one_row_per_image(table: pd.DataFrame) -> None:
    # Two metrics tables with the same method name (evaluate's default is "model") would pair
    # an image with itself or another run's result.
    repeated = table[table.duplicated(["method", "structure", "id"], keep=False)]
    if not repeated.empty:
        first = repeated.iloc[0]
        raise ValueError(f"method {first['method']!r} has {len(repeated)} repeated rows (e.g. {first['structure']} of "
                         f"{first['id']!r}); give each metrics table its own method name")


def _values(keyed: pd.DataFrame, method: str, structure: str, metric: str) -> pd.Series:
    try:
        return keyed.loc[(method, structure), metric]
    except KeyError:
        raise ValueError(f"method {method!r} has no {structure} rows to compare") from None


def _wilcoxon_p(gain: pd.Series, wilcoxon) -> float:
    # The test is undefined when every pair ties (e.g. two identical methods): report nan, not 1 or 0.
    if len(gain) == 0 or (gain == 0).all():
        return float("nan")
    return float(wilcoxon(gain).pvalue)
