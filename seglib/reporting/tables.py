"""Markdown tables for reports."""

from __future__ import annotations

import pandas as pd


def markdown_table(frame: pd.DataFrame, align: str | None = None) -> str:
    """A GitHub markdown table, the one writer of every table in seglib's reports (pandas'
    to_markdown needs the extra 'tabulate' package). Floats get 3 decimals; format other numbers
    before. `align`: one letter per column, "l" or "r" (right, for numbers); default all left."""
    align = align or "l" * len(frame.columns)
    if len(align) != len(frame.columns) or set(align) - {"l", "r"}:
        raise ValueError(f"align needs one of l/r per column ({len(frame.columns)}), got {align!r}")
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in align)
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _cell(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def metric_table(table: pd.DataFrame, metrics=("dice", "iou", "precision", "recall", "hd95", "assd", "surface_dice")
                 ) -> pd.DataFrame:
    """mean ± std (median) per method and structure, as strings for a report."""
    rows = []
    for (method, structure), group in table.groupby(["method", "structure"], sort=False):
        row = {"method": method, "structure": structure, "n": len(group)}
        for metric in metrics:
            values = group[metric].dropna()
            missing = len(group) - len(values)
            row[metric] = (f"{values.mean():.3f} ± {values.std():.3f} ({values.median():.3f})"
                           + (f" [{missing} undefined]" if missing else ""))
        rows.append(row)
    return pd.DataFrame(rows)
