#!/usr/bin/env bash
# Working resolution and patch size on pelves the shape model never saw (issue #23), reproducible:
#   bash reports/benchmarks/resolution.sh [WORK_DIR] [PYTHON]
# 1. shape model from 25 of the 30 atlas pelves (45 46 52 55 65 held out), 200 demo films of 256 px from it;
# 2. each configuration below trains left_hip with the demo profile plus its options (one after the other, so
#    their seconds compare; the demo profile starts the hips from the shipped pelvis model, trained on films of
#    the same 25 pelves);
# 3. the 5 held-out pelves' REAL meshes rendered in 6 poses at 512 px, default and shifted look; predicted
#    (one model, no TTA: the bone alone) and evaluated at 512 px; one table row per configuration and look.
set -euo pipefail
WORK=${1:-runs/resolution}
PY=${2:-python}
ATLAS=${ATLAS:-../shared/data/pelvis_atlas}
[ -d "$ATLAS" ] || { echo "pelvis atlas not found at $ATLAS (only in the team's workspace); nothing measured"; exit 0; }
HELD_OUT="45 46 52 55 65"
# scratch_*: from random weights (--init none); pelvis_*: from the shipped pelvis model; demo: the profile as it is
CONFIGS=${CONFIGS:-"scratch_128:--init none --image-size 128
scratch_256_patch128:--init none --image-size 256 --patch-size 128
scratch_256_depth5:--init none --image-size 256 --depth 5 --base-filters 12
demo:
pelvis_128_30epochs:--image-size 128 --epochs 30
pelvis_192_wide:--intensity-augmentation wide
pelvis_256_7epochs:--image-size 256 --epochs 7
pelvis_256_patch192:--image-size 256 --patch-size 192 --epochs 12"}
mkdir -p "$WORK/runs"
[ -f "$WORK/model25.npz" ] || $PY -m seglib atlas --atlas "$ATLAS" --exclude $HELD_OUT --out "$WORK/model25.npz"
[ -d "$WORK/data" ] || $PY -m seglib phantom --shape-model "$WORK/model25.npz" --out "$WORK/data" --n 200 --film-size 256 --seed 0
for look in default shifted; do
  [ -d "$WORK/heldout512_$look" ] || $PY -m seglib render-atlas --atlas "$ATLAS" --ids $HELD_OUT --poses 6 \
      --film-size 512 --seed 1 --appearance $look --shape-model "$WORK/model25.npz" --out "$WORK/heldout512_$look"
done
while IFS=: read -r name options; do
  run="$WORK/runs/$name"
  # shellcheck disable=SC2086
  [ -f "$run/left_hip/summary.json" ] || $PY -m seglib train --data "$WORK/data" --structure left_hip \
      --out "$run/left_hip" --profile demo $options > "$run.log" 2>&1
  for look in default shifted; do
    [ -d "$run/pred_$look" ] || $PY -m seglib predict --runs "$run/left_hip" --images "$WORK/heldout512_$look/images" \
        --out "$run/pred_$look" --quiet
    [ -f "$run/metrics_$look.csv" ] || $PY -m seglib evaluate --pred "$run/pred_$look" --data "$WORK/heldout512_$look" \
        --out "$run/metrics_$look.csv" --method "$name" --quiet
  done
done <<< "$CONFIGS"
$PY - "$WORK" <<'PYTHON'
import json, sys
from pathlib import Path
import pandas as pd
work = Path(sys.argv[1])
lines = ["| configuration | look | train s | Dice mean | Dice worst | HD95 mm median | surface Dice (1 px) | precision | recall |",
         "|---|---|---|---|---|---|---|---|---|"]
for run in sorted((work / "runs").iterdir()):
    if not (run / "left_hip" / "summary.json").is_file():
        continue
    seconds = json.loads((run / "left_hip" / "summary.json").read_text()).get("train_seconds", float("nan"))
    for look in ("default", "shifted"):
        t = pd.read_csv(run / f"metrics_{look}.csv")
        t = t[t.structure == "left_hip"]
        lines.append(f"| {run.name} | {look} | {seconds:.0f} | {t.dice.mean():.4f} | {t.dice.min():.4f} | "
                     f"{t.hd95_mm.median():.2f} | {t.surface_dice.mean():.3f} | {t.precision.mean():.4f} | {t.recall.mean():.4f} |")
text = "\n".join(lines) + "\n"
(work / "summary.md").write_text(text)
print(text)
PYTHON
