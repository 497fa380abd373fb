#!/usr/bin/env bash
# seglib's default against MONAI's UNet on the real dev set (issue #13 acceptance), one after the other:
#   bash reports/benchmarks/dev_set_vs_monai.sh [WORK_DIR] [PYTHON] [PEER_PYTHON]
# PEER_PYTHON has torch + monai (../shared/peers/README.md). EPOCHS="12 30" lists the seglib budgets to try
# (default: the demo profile's); extra seglib train options go in SEGLIB_OPTIONS.
# Per lung: MONAI (30 epochs, its own split of ../shared/peers/split_dev.py), then seglib `train` with every
# budget on the same 20 test images. Both Dice figures are MONAI's protocol: threshold 0.5, no TTA, at 128 px.
# seglib's seconds are its `train` call's fit time (decoding, caching and validation included; MONAI's loop
# has none of these), read from summary.json. Nothing else should run meanwhile.
set -euo pipefail
WORK=${1:-runs/dev_vs_monai}
PY=${2:-python}
PEER_PY=${3:-/tmp/peerenv/bin/python}
SHARED=${SHARED:-../shared}
DATA=$SHARED/data/cxr_lungs_covid
if [ ! -d "$DATA" ] || [ ! -d "$SHARED/peers" ]; then echo "skipped: $SHARED (dev set and peers) not found"; exit 0; fi
mkdir -p "$WORK"
[ -d "$WORK/dev" ] || $PY "$SHARED/peers/split_dev.py" "$WORK/dev" > /dev/null
[ -f "$WORK/split.csv" ] || $PY -m seglib split --data "$DATA" --out "$WORK/split.csv" --test 20 --val 12 > /dev/null
for lung in left_lung right_lung; do
  $PEER_PY "$SHARED/peers/monai_unet.py" "$WORK/dev/train" "$WORK/dev/test" $lung 128 30
  for epochs in ${EPOCHS:-default}; do
    run="$WORK/seglib_$epochs/$lung"
    mkdir -p "$WORK/seglib_$epochs"  # train refuses an existing run folder: use a new WORK_DIR to measure again
    $PY -m seglib train --data "$DATA" --structure $lung --split-file "$WORK/split.csv" --out "$run" \
        $([ "$epochs" = default ] || echo --epochs $epochs) ${SEGLIB_OPTIONS:-} > "$run.log" 2>&1
    $PY - "$run" <<'EOF'
import sys
from seglib.data.layout import load_records
from seglib.data.splits import records_in
from seglib.experiments.bare_network_comparison import mean_test_dice
from seglib.training.run_dir import RunDir
run = RunDir(sys.argv[1]); config, summary = run.config(), run.summary()
records = load_records(config.data, config.structures)
test = records_in(records, run.split(), "test")
dice = mean_test_dice(run.load_model(), test, config, config.side_aware, standardised=True)
print(f"seglib {config.structures[0]} {config.downsampling} epochs {summary['epochs_run']}/{config.epochs}: "
      f"test dice mean {dice:.4f}; train {summary['train_seconds']:.0f}s")
EOF
  done
done
