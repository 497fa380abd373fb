"""The body of the per-bone training notebooks (01 left hip, 02 right hip): one source, so the two
notebooks differ only in the bone they name. Each step is one method, so a notebook still shows the
sequence — data, training, curves, validation predictions, the run directory."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from seglib.config import profile_config
from seglib.data.folders import DatasetDir
from seglib.data.layout import available_structures
from seglib.inference.predictor import predict_folder
from seglib.reporting.figures import plot_history, show_predictions, show_samples
from seglib.training.fit import train
from seglib.training.run_dir import RunDir
from seglib.workflow.demo_data import ensure_dataset

# The best validation Dice a run must reach to count as learnt, per profile: far above an untrained model's or
# one that learnt the wrong side or both sides, below what the profile reaches on the embedded phantoms (both
# measured: reports/benchmarks.md, "Times and floors the code refers to").
LEARNING_FLOORS = {"smoke": 0.7, "demo": 0.9, "full": 0.9}


class BoneTraining:
    """One bone's notebook: `settings` from notebook_settings, `structure` the bone it trains."""

    def __init__(self, settings: dict, structure: str):
        self.settings, self.structure = settings, structure
        self.data = DatasetDir(ensure_dataset(settings["data"], settings["profile"]))
        self.run = RunDir(Path(settings["runs"]) / structure)
        self.run_dir = self.run.path

    def show_data(self, n: int = 8) -> Figure:
        """The first films with their masks, shown here only: the report folder is notebook 03's output (its
        report writes samples.png itself, and leaves it out when the data's licence keeps images private)."""
        return show_samples(self.data, available_structures(self.data), n=n)

    def train(self) -> Path:
        """Trains the bone's U-Net; re-running the notebook retrains and replaces the run directory."""
        s = self.settings
        config = profile_config(s["profile"], data=str(self.data), structures=(self.structure,), seed=s["seed"],
                                epochs=s["epochs"] or None, image_size=s["image_size"] or None,
                                init=s.get("init") or None)
        return train(config, self.run_dir, force=True, verbose=2)

    def plot_history(self) -> Figure:
        return plot_history([self.run_dir])

    def show_validation(self, n: int = 4) -> Figure:
        """The validation images' ground truth beside the prediction."""
        predictions = predict_folder(self.run_dir, self.data.images_dir,
                                     Path(self.settings["runs"]) / f"{self.structure}_val_predictions",
                                     subset="val", force=True)
        return show_predictions(predictions, self.data, [self.structure], n=n)

    def describe_run(self) -> None:
        """Prints what the run directory holds; the model loads with safe_mode on, no custom objects."""
        model = self.run.load_model()  # keras.saving.load_model with safe_mode=True
        print(sorted(p.name for p in self.run_dir.iterdir() if not p.name.startswith(".")))  # not the output marker
        print(sorted(set(self.run.split().values())))
        print(type(model).__name__, "outputs:", model.output_shape[-1], list(self.run.config().structures))

    def check_learning(self) -> bool:
        """Prints whether the run's best validation Dice reached its profile's floor (nbval checks the line)."""
        floor = LEARNING_FLOORS[self.settings["profile"]]
        passed = self.summary()["best_val_dice"] >= floor
        print(f"validation Dice above its floor ({floor}): {passed}")
        return passed

    def summary(self) -> dict:
        return self.run.summary()
