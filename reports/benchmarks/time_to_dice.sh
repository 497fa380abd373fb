#!/usr/bin/env bash
# Time to accuracy against MONAI on the real dev set (issue #33), one after the other:
#   bash reports/benchmarks/time_to_dice.sh WORK_DIR PYTHON PEER_PYTHON [VARIANT ...]
# Per lung (LUNGS="left_lung right_lung"): MONAI's UNet (30 epochs, ../shared/peers/monai_unet.py, the reference split
# of split_dev.py), then one seglib run per VARIANT on the same 20 test images: a VARIANT is a space-separated list of
# RunConfig options over the demo profile's ("init=none epochs=12"; "" or "default": the default). Each seglib run
# prints the test Dice after every epoch against its training seconds, when it first reached MONAI's Dice, and the
# test Dice of the model it keeps (time_to_dice.py). Nothing else should run meanwhile.
set -euo pipefail
WORK=$1; PY=${2:-python}; PEER_PY=${3:-/tmp/peerenv/bin/python}; shift 3 || true
[ $# -gt 0 ] || set -- default
SHARED=${SHARED:-../shared}
DATA=$SHARED/data/cxr_lungs_covid
if [ ! -d "$DATA" ] || [ ! -d "$SHARED/peers" ]; then echo "skipped: $SHARED (dev set and peers) not found"; exit 0; fi
mkdir -p "$WORK"
[ -d "$WORK/dev" ] || $PY "$SHARED/peers/split_dev.py" "$WORK/dev" > /dev/null
[ -f "$WORK/split.csv" ] || $PY -m seglib split --data "$DATA" --out "$WORK/split.csv" --test 20 --val 12 > /dev/null
for lung in ${LUNGS:-left_lung right_lung}; do
  monai=$($PEER_PY "$SHARED/peers/monai_unet.py" "$WORK/dev/train" "$WORK/dev/test" $lung 128 30)
  echo "$monai"
  dice=$(echo "$monai" | sed -n 's/.*test dice mean \([0-9.]*\).*/\1/p')
  n=0
  for variant in "$@"; do
    n=$((n + 1)); run="$WORK/$lung.$n"  # train refuses an existing run folder: use a new WORK_DIR to measure again
    [ "$variant" = default ] && variant=""
    $PY reports/benchmarks/time_to_dice.py "$(realpath "$DATA")" $lung "$WORK/split.csv" "$run" "$dice" $variant \
        > "$run.log" 2>&1 || { echo "failed: $run.log"; tail -3 "$run.log"; continue; }
    grep -v "^  epoch" "$run.log" | grep -v "^start:\|^\[\|^warning" || true
  done
done
