"""The body of notebook 00: segment a folder of AP pelvis films with the model that ships with seglib,
without training anything. Without a folder of the user's, it renders a few example films (with truth
masks, so the notebook can also show how well the model does on them)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from seglib.data.folders import DatasetDir
from seglib.data.layout import available_structures
from seglib.evaluation.folder import evaluate_folder
from seglib.inference.predictor import predict_folder
from seglib.inference.segment import Segmentation, segment
from seglib.models.shipped import pretrained_run
from seglib.reporting.display import InlineFigure as Figure
from seglib.reporting.figures import show_overlays
from seglib.workflow.environment import project_root

EXAMPLE_FILMS = dict(n=6, size=512, seed=2024)  # rendered from the shipped shape model, default look
# The mean Dice of each hip bone the examples must reach (the card states ~0.97 on unseen pelves).
FLOOR = 0.9


class PretrainedSegmentation:
    """Notebook 00: `settings` from notebook_settings (films: a folder of films, or empty for examples;
    out: the output folder, or empty for the notebook's own under reports/; replace: whether an existing
    `out` may be replaced)."""

    def __init__(self, settings: dict, model: str = "pelvis"):
        self.model, self.run = model, pretrained_run(model)
        self.films = Path(settings["films"]) if settings["films"] else example_films()
        self.out = Path(settings["out"] or project_root() / "reports" / settings["profile"] / f"pretrained_{model}")
        self.tta = settings["tta"]
        # The command line's rule: a folder the user named is replaced only when asked. The notebook's own
        # folder is regenerated on every run, as notebook 03 regenerates its report. Either way only an
        # earlier segment output is replaced (seglib.data.outputs), never a folder of anything else.
        self.replace = bool(settings.get("replace")) or not settings["out"]

    def segment(self) -> Path:
        """Label maps, overlays, areas.csv and quality.csv in OUT: seglib.segment, as `python -m seglib segment
        --model pelvis` writes them."""
        if self.out.exists() and not self.replace:
            raise FileExistsError(f"{self.out}: exists; choose another out, or set replace=True (SEGLIB_REPLACE=1) "
                                  "to replace an earlier segment output there")
        films = DatasetDir(self.films).images_dir  # a dataset's films, or a plain folder of films
        images = films if films.is_dir() else self.films
        return segment(images, self.out, model=self.model, tta=self.tta, force=self.replace).path

    def show_overlays(self, n: int = 6) -> Figure:
        return show_overlays(self.out, n)

    def areas(self) -> pd.DataFrame:
        return Segmentation(self.out).areas()

    def quality(self) -> pd.DataFrame:
        """quality.csv, the films to look at first: flagged rows, then by predicted Dice, lowest first."""
        return Segmentation(self.out).quality()

    def accuracy(self) -> pd.DataFrame | None:
        """Mean Dice and median HD95 per structure against the films' truth masks; None without them."""
        truth = [s for s in available_structures(self.films) if s in self.run.config().structures]
        if not truth:
            return None
        # The per-structure masks are only a step to the table: written to a temporary folder, not beside OUT.
        with tempfile.TemporaryDirectory(prefix="seglib-accuracy-") as work:
            predictions = predict_folder(self.run, DatasetDir(self.films).images_dir, Path(work) / "predictions",
                                         tta=self.tta)
            table = evaluate_folder(predictions, self.films, structures=truth, method=self.model)
        return table.groupby("structure", sort=False)[["dice", "hd95"]].agg({"dice": "mean", "hd95": "median"})

    def check_accuracy(self, table: pd.DataFrame | None) -> bool | None:
        """Prints whether the hip bones with truth masks reach FLOOR (the example films have both)."""
        if table is None:
            print("no truth masks: accuracy not measured")
            return None
        hips = [s for s in ("left_hip", "right_hip") if s in table.index]
        passed = bool((table.loc[hips, "dice"] >= FLOOR).all())
        print(f"{' and '.join(hips)} at mean Dice >= {FLOOR}: {passed}")
        return passed


def example_films() -> Path:
    """A few films rendered from the shipped shape model (generated on first use, then reused)."""
    from seglib.phantom.dataset import write_phantom_dataset

    folder = project_root() / "data" / "pelvis_examples"
    return folder if DatasetDir(folder).images_dir.is_dir() else write_phantom_dataset(folder, **EXAMPLE_FILMS)
