"""Flip TTA with thresholds chosen under flip TTA, against the run's plain thresholds, on held-out films (issue #30).

Copies RUN (the shipped pelvis model's training run) into WORK twice, adds the flip-TTA thresholds to one copy
(seglib.training.calibration.recalibrate: the run's model on its validation films, which config.json's data folder
holds), predicts every held-out set through both copies with tta=True, and once without TTA for reference
(seglib.inference.predictor.predict_folder), and scores the masks against the sets' own
(seglib.evaluation.folder.evaluate_folder). Nothing is written outside WORK, which must not exist yet.

    .venv/bin/python reports/benchmarks/tta_thresholds.py --work /tmp/tta_thresholds --run RUN --heldout SET [SET ...]

RUN: the shipped model's training run (`pretrain`'s WORK/run_clinical); SET: held-out film folders with their masks
(`pretrain`'s WORK/heldout_default, WORK/heldout_clinical).

Prints the thresholds per structure (RUN's own; the copy's plain ones, chosen again; those chosen under TTA), then
a markdown table: mean Dice and mean HD95 (mm) per held-out set, structure and setting (no TTA; TTA with the plain
thresholds; TTA with the TTA ones), and any mask without an HD95 (empty), which the means leave out.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd

from seglib.evaluation.folder import evaluate_folder
from seglib.inference.predictor import predict_folder
from seglib.reporting.tables import markdown_table
from seglib.training.calibration import recalibrate
from seglib.training.run_dir import RunDir

# setting -> (run copy, tta)
SETTINGS = {"no TTA": ("run_plain", False), "TTA, plain thresholds": ("run_plain", True),
            "TTA, TTA thresholds": ("run_tta", True)}


def _plain_thresholds_only(run: RunDir) -> None:
    """Leave the run only the thresholds chosen without TTA, as runs calibrated before TTA thresholds existed."""
    calibration = json.loads(run.calibration_path.read_text())
    for key in ("threshold_tta", "mean_dice_tta"):
        calibration.pop(key, None)
    run.calibration_path.write_text(json.dumps(calibration, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder to create")
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--heldout", type=Path, nargs="+", required=True)
    args = parser.parse_args()
    args.work.mkdir(parents=True)
    for copy in ("run_plain", "run_tta"):
        shutil.copytree(args.run, args.work / copy)
    _plain_thresholds_only(RunDir(args.work / "run_plain"))  # a run calibrated since has its TTA ones too
    recalibrate(args.work / "run_tta")
    run = RunDir(args.work / "run_tta")
    thresholds = pd.DataFrame({"RUN": RunDir(args.run).thresholds(), "plain": run.thresholds(),
                               "TTA": run.thresholds(tta=True)}).rename_axis("structure").reset_index()
    print(markdown_table(thresholds, "lrrr"), "\n")
    rows = []
    for heldout in args.heldout:
        for setting, (copy, tta) in SETTINGS.items():
            out = args.work / f"{heldout.name}_{copy}_{tta}"
            predict_folder(args.work / copy, heldout / "images", out, tta)
            table = evaluate_folder(out, heldout)
            missing = table[table["hd95_mm"].isna()]  # an empty mask has no distance: said, not averaged away
            if len(missing):
                print(f"{heldout.name}, {setting}: no HD95 for {len(missing)} mask(s) of {', '.join(missing['id'])}")
            means = table.groupby("structure")[["dice", "hd95_mm"]].mean()
            rows += [{"set": heldout.name, "structure": s, "setting": setting, **m} for s, m in means.iterrows()]
    summary = pd.DataFrame(rows).pivot_table(index=["set", "structure"], columns="setting", values=["dice", "hd95_mm"])
    table = pd.DataFrame({f"{name} {setting}": summary[(metric, setting)].map(f"{{:.{digits}f}}".format)
                          for metric, name, digits in (("dice", "Dice", 4), ("hd95_mm", "HD95 mm", 2))
                          for setting in SETTINGS}).reset_index()
    print(markdown_table(table, "ll" + "r" * (len(table.columns) - 2)))


if __name__ == "__main__":
    main()
