#!/usr/bin/env bash
# What fine-tuning the shipped pelvis model buys (issue #21), reproducible:
#   bash reports/benchmarks/finetune.sh [WORK_DIR] [PYTHON]
# 1. 10 and 20 films in the shifted look (more noise and blur, flat contrast) from the shape model of the 25
#    atlas pelves the shipped model's training used (45 46 52 55 65 held out);
# 2. left_hip trained on each, from the shipped weights (--init pelvis: a tenth of the learning rate) and from
#    random weights (the profile's rate), the same network
#    (the shipped model's), the same budget (EPOCHS epochs), one after the other;
# 3. the 5 held-out pelves' REAL meshes rendered in 6 poses at 512 px in the shifted look; every run, and the
#    shipped model as it is, predicted (one model, no TTA) and evaluated at 512 px.
set -euo pipefail
WORK=${1:-runs/finetune}
PY=${2:-python}
ATLAS=${ATLAS:-../shared/data/pelvis_atlas}
EPOCHS=${EPOCHS:-60}
[ -d "$ATLAS" ] || { echo "pelvis atlas not found at $ATLAS (only in the team's workspace); nothing measured"; exit 0; }
HELD_OUT="45 46 52 55 65"
SHIPPED=$($PY -c "from seglib.training.run_dir import pretrained_run; print(pretrained_run('pelvis').path)")
mkdir -p "$WORK/runs"
[ -f "$WORK/model25.npz" ] || $PY -m seglib atlas --atlas "$ATLAS" --exclude $HELD_OUT --out "$WORK/model25.npz"
[ -d "$WORK/heldout512_shifted" ] || $PY -m seglib render-atlas --atlas "$ATLAS" --ids $HELD_OUT --poses 6 \
    --film-size 512 --seed 1 --appearance shifted --shape-model "$WORK/model25.npz" --out "$WORK/heldout512_shifted"
evaluate() {  # evaluate RUN_DIR NAME
  [ -d "$WORK/runs/pred_$2" ] || $PY -m seglib predict --runs "$1" --images "$WORK/heldout512_shifted/images" \
      --out "$WORK/runs/pred_$2" --quiet
  [ -f "$WORK/runs/metrics_$2.csv" ] || $PY -m seglib evaluate --pred "$WORK/runs/pred_$2" \
      --data "$WORK/heldout512_shifted" --out "$WORK/runs/metrics_$2.csv" --method "$2" --quiet
}
evaluate "$SHIPPED" shipped_as_is
for n in 10 20; do
  [ -d "$WORK/films$n" ] || $PY -m seglib phantom --shape-model "$WORK/model25.npz" --out "$WORK/films$n" --n $n --film-size 256 \
      --seed 11 --appearance shifted --quiet
  for start in init scratch; do
    name="${start}_$n"
    options=(--init pelvis)
    [ $start = scratch ] && options=(--init none --image-size 192)
    [ -f "$WORK/runs/$name/summary.json" ] || $PY -m seglib train --data "$WORK/films$n" --structure left_hip \
        --out "$WORK/runs/$name" --profile demo --epochs "$EPOCHS" --val-fraction 0.2 --test-fraction 0 "${options[@]}" \
        > "$WORK/runs/$name.log" 2>&1
    evaluate "$WORK/runs/$name" "$name"
  done
done
$PY - "$WORK" <<'PYTHON'
import json, sys
from pathlib import Path
import pandas as pd
work = Path(sys.argv[1]) / "runs"
lines = ["| left hip model | films | train s | Dice mean | Dice worst | HD95 mm median |", "|---|---|---|---|---|---|"]
for name in ("shipped_as_is", "scratch_10", "init_10", "scratch_20", "init_20"):
    t = pd.read_csv(work / f"metrics_{name}.csv")
    t = t[t.structure == "left_hip"]
    summary = work / name / "summary.json"
    seconds = f"{json.loads(summary.read_text())['train_seconds']:.0f}" if summary.exists() else "-"
    films = name.split("_")[-1] if "_" in name and name[-1].isdigit() else "-"
    lines.append(f"| {name} | {films} | {seconds} | {t.dice.mean():.4f} | {t.dice.min():.4f} | {t.hd95_mm.median():.2f} |")
text = "\n".join(lines) + "\n"
(work.parent / "summary.md").write_text(text)
print(text)
PYTHON
