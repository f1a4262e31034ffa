#!/usr/bin/env bash
# Width study (Table 1 issue): every row is one `python -m fer_utils train` run on the full FER2013 with the same short
# fixed schedule (15 cosine epochs, flips, seed 0, PublicTest chooses the checkpoint). Rows run one at a time, in the
# order of ORDER in benchmarks/study_rows.sh (the rows, their order and the schedule are defined there, for this script
# and gpu_study.sh; the order says how they were chosen: benchmarks/README.md, "Width study"); a finished row's history,
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
# shellcheck source=benchmarks/study_rows.sh
source benchmarks/study_rows.sh  # ROWS, ORDER, STUDY_SCHEDULE (gpu_study.sh reads the same file)
for row in "${@:-${ORDER[@]}}"; do
  [ -n "${ROWS[$row]:-}" ] || { echo "unknown row: $row (rows: ${ORDER[*]})" >&2; exit 2; }
  name=$row$SUFFIX
  if [ -f "$RESULTS/$name/metrics.json" ]; then echo "$name: done already ($RESULTS/$name)"; continue; fi
  mkdir -p "$RUNS"
  echo "$(date -u +%FT%TZ) $name: training (log $RUNS/$name.log)"
  # shellcheck disable=SC2086
  "$PY" -m fer_utils train ${ROWS[$row]} --data "$DATA" $STUDY_SCHEDULE --seed "$SEED" \
      --out "$RUNS/$name" > "$RUNS/$name.log" 2>&1
  mkdir -p "$RESULTS/$name"
  cp "$RUNS/$name"/{history.csv,metrics.json,run_info.json} "$RESULTS/$name/"
  echo "$(date -u +%FT%TZ) $name: done"
done
