#!/usr/bin/env bash
# Generalisation to pelves the shape model never saw (issue #12 acceptance), reproducible:
#   bash reports/anatomy/heldout.sh [WORK_DIR] [PYTHON]
# EPOCHS=N shortens training (default: the demo profile's 30 epochs); the two bones train in parallel.
# 1. shape model from 25 of the 30 atlas subjects (5 held out);
# 2. demo data (200 images of 256 px) rendered from that model; left_hip and right_hip trained with
#    the demo profile (CLI defaults);
# 3. the 5 held-out subjects' REAL meshes rendered in 6 poses each (30 films), once with the default
#    look and once with another noise/contrast/blur range ("shifted");
# 4. prediction with flip TTA, evaluation (Dice, HD95 in px and mm), summary in WORK_DIR/runs*/summary.md.
set -euo pipefail
WORK=${1:-runs/heldout}
PY=${2:-python}
ATLAS=${ATLAS:-../shared/data/pelvis_atlas}
HELD_OUT="45 46 52 55 65"
mkdir -p "$WORK"
[ -f "$WORK/model25.npz" ] || $PY -m seglib atlas --atlas "$ATLAS" --exclude $HELD_OUT --out "$WORK/model25.npz"
[ -d "$WORK/data" ] || $PY -m seglib phantom --shape-model "$WORK/model25.npz" --out "$WORK/data" --n 200 --film-size 256 --seed 0
RUNS="$WORK/runs${EPOCHS:+_$EPOCHS}"
for bone in left_hip right_hip; do
  [ -f "$RUNS/$bone/summary.json" ] || $PY -m seglib train --data "$WORK/data" --structure $bone \
      --out "$RUNS/$bone" --profile demo ${EPOCHS:+--epochs $EPOCHS} --force > "$RUNS.$bone.log" 2>&1 &
done
wait
for look in default shifted; do
  [ -d "$WORK/heldout_$look" ] || $PY -m seglib render-atlas --atlas "$ATLAS" --ids $HELD_OUT --poses 6 \
      --film-size 256 --seed 1 --appearance $look --shape-model "$WORK/model25.npz" --out "$WORK/heldout_$look"
  [ -d "$RUNS/pred_$look" ] || $PY -m seglib predict --runs "$RUNS/left_hip" --runs "$RUNS/right_hip" \
      --images "$WORK/heldout_$look/images" --out "$RUNS/pred_$look" --tta
  $PY -m seglib evaluate --pred "$RUNS/pred_$look" --data "$WORK/heldout_$look" \
      --out "$RUNS/metrics_$look.csv" --method "$look" --force
done
$PY - "$RUNS" <<'PYTHON'
import sys, pandas as pd
work = sys.argv[1]
lines = ["| look | structure | images | Dice mean | Dice worst | HD95 px mean | HD95 px worst | HD95 mm mean | HD95 mm worst |",
         "|---|---|---|---|---|---|---|---|---|"]
for look in ("default", "shifted"):
    table = pd.read_csv(f"{work}/metrics_{look}.csv")
    for structure, rows in table.groupby("structure"):
        lines.append(f"| {look} | {structure} | {len(rows)} | {rows.dice.mean():.4f} | {rows.dice.min():.4f} | "
                     f"{rows.hd95.mean():.2f} | {rows.hd95.max():.2f} | {rows.hd95_mm.mean():.2f} | {rows.hd95_mm.max():.2f} |")
text = "\n".join(lines) + "\n"
open(f"{work}/summary.md", "w").write(text)
print(text)
PYTHON
