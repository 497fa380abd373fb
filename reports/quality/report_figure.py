"""The model card's quality figure: predicted against true Dice of the hip rows (quality_study.py)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

GOOD = 0.95
COLOURS = {"default": "tab:blue", "shifted": "tab:orange", "clinical": "tab:green"}


def quality_figure(frame: pd.DataFrame, threshold: float, out: Path) -> Path:
    """Two panels (all rows, and the 0.85-1 corner where most films lie): each hip row of held-out films,
    coloured by look (hard films as crosses), with the flag's threshold and the 0.95 line."""
    hips = frame[frame["structure"].isin(("left_hip", "right_hip")) & (frame["tta"] == 0)]
    figure, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, low in zip(axes, (0.0, 0.85)):
        for look, colour in COLOURS.items():
            for hard, marker in ((False, "o"), (True, "x")):
                rows = hips[(hips["look"] == look) & ((hips["hard"] != "") == hard)]
                label = f"{look}{', made hard' if hard else ''} ({len(rows)})"
                ax.scatter(rows["dice"], rows["predicted_dice"], s=14, c=colour, marker=marker, alpha=0.7, label=label)
        ax.axvline(GOOD, color="grey", lw=0.8, ls="--")
        ax.axhline(threshold, color="red", lw=0.8, ls="--")
        ax.plot([low, 1], [low, 1], color="black", lw=0.5)
        ax.set(xlim=(low, 1.0), ylim=(low, 1.0), xlabel="true Dice", ylabel="predicted_dice")
        ax.text(low + 0.01 * (1 - low), threshold, f"flag below {threshold:.3f}", color="red", va="bottom", fontsize=8)
    axes[0].set_title("held-out pelves, hip rows")
    axes[1].set_title("the same, 0.85 to 1")
    axes[0].legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out
