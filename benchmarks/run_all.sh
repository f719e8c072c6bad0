#!/usr/bin/env bash
# Reproduce the committed results in benchmarks/results/ on this machine (2-core CPU, no GPU).
# Needs ../shared/data (vehicles, vehicles-newfootage, videos); takes about 35 minutes, plus an
# hour for the training-recipe experiments (GEN=0 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=../shared/data
OUT=benchmarks/results
WORK=${WORK:-/tmp/edge-tl-bench}
mkdir -p "$OUT" "$WORK"
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824

# training: the two presets, each scored on new footage it never trained on (--test), then the
# recipe experiments of training-generalization.md (about an hour; GEN=0 skips them)
TEST=$DATA/vehicles-newfootage
/usr/bin/time -v $BIN/edge-tl train $DATA/vehicles -o $WORK/lite2 --test $TEST --overwrite --json > $OUT/train-preset-default.json 2> $WORK/train.time
/usr/bin/time -v $BIN/edge-tl train $DATA/vehicles -o $WORK/lite0 --preset fast --test $TEST --overwrite --json > $OUT/train-preset-fast.json 2> $WORK/train-fast.time
if [ "${GEN:-1}" = 1 ]; then $BIN/python benchmarks/generalization.py --run all --table > $WORK/generalization.md; fi

# export (fp32, fp16, int8) with accuracy per precision; INT8 calibration sweep
/usr/bin/time -v $BIN/edge-tl export $WORK/lite0 --json > $OUT/export-vehicles.json 2> $WORK/export.time
$BIN/python benchmarks/int8_sweep.py $WORK/lite0 $OUT/int8-calibration-sweep.json

# TensorRT-RTX ahead-of-time engines (no GPU needed)
for p in fp32 fp16 int8; do $BIN/edge-tl build $WORK/lite0 --precision $p --target sm86 --json; done > $OUT/tensorrt-rtx-aot.jsonl

# model-level matrix and stream-level results
$BIN/edge-tl bench $WORK/lite0 --precision fp32,fp16,int8 --batch-size 1,8,32 --iters 50 --out $OUT --name cpu-lite0-matrix --json > /dev/null
$BIN/python benchmarks/stream_bench.py $WORK/lite0 $DATA/videos/highway-720p.mp4 $OUT/stream-cpu --minutes 5

# counting on the two shared clips with the default preset (issue 14; counting.md), and on the
# clips made into other cameras: turned, 15 / 10 fps, half size, dim (about 5 minutes together)
$BIN/edge-tl export $WORK/lite2 --precision fp32 > /dev/null
$BIN/python benchmarks/counting.py --bundle $WORK/lite2 --name run-all
$BIN/python benchmarks/counting_variants.py --bundle $WORK/lite2 --name run-all
