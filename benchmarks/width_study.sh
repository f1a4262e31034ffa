#!/usr/bin/env bash
# Width study (Table 1 issue): every row is one `python -m fer_utils train` run on the full FER2013 with the same short
# fixed schedule (15 cosine epochs, flips, seed 0, PublicTest chooses the checkpoint). Rows run one at a time, in the
# order below (the order says how they were chosen: benchmarks/README.md, "Width study"); a finished row's history,
# metrics and run info are copied to benchmarks/results/study/<row>/ (no weights), and a row already there is skipped.
#   bash benchmarks/width_study.sh [ROW ...]      (default: every row; DATA=..., RUNS=... override the paths)
# SEED=N (default 0) trains the rows with another seed, for the seeds table: its results go to
# benchmarks/results/seeds/<row>_s<N>/ instead (seed 0 is the study row itself).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/fer2013/archive.zip}
RUNS=${RUNS:-runs/study}
SEED=${SEED:-0}
RESULTS=benchmarks/results/study
SUFFIX=""
if [ "$SEED" != 0 ]; then RESULTS=benchmarks/results/seeds; SUFFIX="_s$SEED"; fi
PY=${PY:-.venv/bin/python}
declare -A ROWS=(
  [se_32-64-128_d256]="--model se --filters 32,64,128 --dense-units 256 --dense-dropout 0"
  [se_32-64-128_bn_d512]="--model se --filters 32,64,128 --batch-norm --dense-units 512 --dense-dropout 0"
  [se_32-64-128_bn_d1024_dd05]="--model se --filters 32,64,128 --batch-norm --dense-units 1024 --dense-dropout 0.5"
  [baseline_32-64-128_d256]="--model baseline --filters 32,64,128 --dense-units 256 --dense-dropout 0"
  [se_32-64-128_bn_d256]="--model se --filters 32,64,128 --batch-norm --dense-units 256 --dense-dropout 0"
  [se_64-128-256_bn_d256]="--model se --filters 64,128,256 --batch-norm --dense-units 256 --dense-dropout 0"
  [se_48-96-192_bn_d256]="--model se --filters 48,96,192 --batch-norm --dense-units 256 --dense-dropout 0"
  [se_64-128-256_d256]="--model se --filters 64,128,256 --dense-units 256 --dense-dropout 0"
  [se_64-128-256_bn_d1024_dd05]="--model se --filters 64,128,256 --batch-norm --dense-units 1024 --dense-dropout 0.5"
  [baseline_64-128-256_bn_d256]="--model baseline --filters 64,128,256 --batch-norm --dense-units 256 --dense-dropout 0"
  [baseline_32-64-128_bn_d256]="--model baseline --filters 32,64,128 --batch-norm --dense-units 256 --dense-dropout 0"
  [baseline_48-96-192_bn_d256]="--model baseline --filters 48,96,192 --batch-norm --dense-units 256 --dense-dropout 0"
)
ORDER=(se_32-64-128_bn_d256 se_48-96-192_bn_d256 baseline_32-64-128_bn_d256 se_32-64-128_d256 se_32-64-128_bn_d512
       se_32-64-128_bn_d1024_dd05 baseline_32-64-128_d256 baseline_48-96-192_bn_d256 se_64-128-256_bn_d256
       se_64-128-256_d256 se_64-128-256_bn_d1024_dd05 baseline_64-128-256_bn_d256)
for row in "${@:-${ORDER[@]}}"; do
  [ -n "${ROWS[$row]:-}" ] || { echo "unknown row: $row (rows: ${ORDER[*]})" >&2; exit 2; }
  name=$row$SUFFIX
  if [ -f "$RESULTS/$name/metrics.json" ]; then echo "$name: done already ($RESULTS/$name)"; continue; fi
  mkdir -p "$RUNS"
  echo "$(date -u +%FT%TZ) $name: training (log $RUNS/$name.log)"
  # shellcheck disable=SC2086
  "$PY" -m fer_utils train ${ROWS[$row]} --data "$DATA" --epochs 15 --schedule cosine --flip --seed "$SEED" \
      --out "$RUNS/$name" > "$RUNS/$name.log" 2>&1
  mkdir -p "$RESULTS/$name"
  cp "$RUNS/$name"/{history.csv,metrics.json,run_info.json} "$RESULTS/$name/"
  echo "$(date -u +%FT%TZ) $name: done"
done
