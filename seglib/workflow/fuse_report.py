"""The body of notebook 03: every method on the test split, fused, evaluated and reported. Each step
is one method, so the notebook still shows the sequence — the methods, their predictions, the
report, its tables and figures, the ablation, and a check that everything was written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from seglib.experiments.ablation import ablation_folders, run_ablation
from seglib.experiments.method_comparison import OURS, MethodPredictions, contemporary_runs, predict_methods
from seglib.reporting.document import FIGURES, REPORT_FILES, build_report
from seglib.workflow.demo_data import ensure_dataset
from seglib.workflow.environment import project_root
from seglib.workflow.parameters import wants_training

SUMMARY_COLUMNS = ["method", "structure", "n_images", "dice_mean", "dice_std", "iou_mean", "precision_mean",
                   "recall_mean", "hd95_mean", "hd95_std", "assd_mean", "surface_dice_mean"]


def names(setting: str) -> list[str]:
    """A comma-separated notebook setting ("otsu,random_walker") as a list; empty entries dropped."""
    return [name.strip() for name in str(setting).split(",") if name.strip()]


class FuseAndReport:
    """Notebook 03: `settings` from notebook_settings (left, right, tta, fusion, baselines,
    contemporary, train_contemporary, images, ablation)."""

    def __init__(self, settings: dict):
        self.settings = settings
        self.structures = [settings["left"], settings["right"]]
        self.reports = Path(settings["reports"])
        self.data = ensure_dataset(settings["data"], settings["profile"])
        self.runs = {OURS: [Path(settings["runs"]) / structure for structure in self.structures]}
        self.methods: MethodPredictions | None = None

    def find_methods(self) -> list[str]:
        """Our U-Net runs (notebooks 01 and 02) and each contemporary variant trained like them; missing
        variants are trained when train_contemporary asks for it, otherwise left out with the reason."""
        s = self.settings
        self.runs.update(contemporary_runs(self.runs[OURS], names(s["contemporary"]), s["runs"],
                                           train_missing=wants_training(s["train_contemporary"], s["profile"])))
        return list(self.runs)

    def predict(self) -> pd.DataFrame:
        """Every method on the test split; returns the validation Dice of each post-processing tried."""
        s = self.settings
        self.methods = predict_methods(self.data, self.runs, names(s["baselines"]), s["runs"], tta=s["tta"],
                                       strategy=s["fusion"])
        return self.methods.postprocessing.round(4)

    def build_report(self) -> Path:
        if self.methods is None:
            raise RuntimeError("predict the methods first (FuseAndReport.predict)")
        return build_report(self.reports, self.methods.folders, self.data, reference=OURS, runs=self.runs,
                            seconds_per_image=self.methods.seconds_per_image,
                            postprocessing=self.methods.postprocessing, show_images=self.settings["images"])

    def summary(self) -> pd.DataFrame:
        return pd.read_csv(self.reports / "metrics_summary.csv")[SUMMARY_COLUMNS].round(3)

    def margins(self) -> pd.DataFrame:
        return pd.read_csv(self.reports / "margins.csv").round(3)

    def figures(self) -> list:
        """The report's figures, for IPython's display."""
        from IPython.display import Image

        return [Image(self.reports / name) for name in FIGURES if (self.reports / name).exists()]

    def ablation(self) -> list:
        """With ablation=True, trains every symmetry configuration at the profile's budget on 100% and
        25% of the training images (long); returns the last results for display, if any."""
        from IPython.display import Image, Markdown

        out, work = ablation_folders(self.reports.name, project_root())
        if self.settings["ablation"]:
            run_ablation(self.data, self.structures, out, work, profile=self.settings["profile"])
        if not (out / "ablation.md").exists():
            print("no ablation results yet: set ablation=True (or SEGLIB_ABLATION=1)")
            return []
        return [Markdown((out / "ablation.md").read_text()), Image(out / "ablation.png")]

    def check_outputs(self) -> None:
        """Every method has a row for every test image and structure; prints which report files exist."""
        table = pd.read_csv(self.reports / "metrics.csv")
        test_images = table[table["method"] == OURS]["id"].nunique()
        rows = table.groupby("method").size()
        incomplete = rows[rows != len(self.structures) * test_images]
        if len(incomplete):
            raise AssertionError(f"{self.reports / 'metrics.csv'}: methods without a row for every test image "
                                 f"and structure: {incomplete.to_dict()}")
        print({name: (self.reports / name).exists() for name in REPORT_FILES})
        print(sorted(table["method"].unique()), list(table.columns[:8]))
