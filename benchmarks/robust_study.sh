#!/usr/bin/env bash
# Regularisation and augmentation study (the robust-model issue): every row is one `python -m fer_utils train` run on
# the full FER2013 with PAPER_CONFIG (fer_utils.config) and the same fixed schedule (30 cosine epochs, seed 0,
# PublicTest chooses the checkpoint); the rows and the schedule are defined in benchmarks/robust_rows.sh. Rows run one
# at a time; a finished row's model is measured under the target perturbations (benchmarks/robustness.py), and its
# history, metrics, run info and robustness.csv are copied to benchmarks/results/robust/<row>/ (no weights; commit
# it at once), and a row already there is skipped. An interrupted row resumes from its backup when
# the same command runs again with the same RUNS folder.
#   bash benchmarks/robust_study.sh [ROW ...]      (default: every row; DATA=..., RUNS=..., PY=... override)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/fer2013/archive.zip}
RUNS=${RUNS:-runs/robust_study}
SEED=${SEED:-0}
RESULTS=${RESULTS:-benchmarks/results/robust}
PY=${PY:-.venv/bin/python}
# shellcheck source=benchmarks/robust_rows.sh
source benchmarks/robust_rows.sh  # ROWS, ORDER, STUDY_SCHEDULE
# shellcheck disable=SC2207
CONFIG=($("$PY" -c "
from fer_utils.config import PAPER_CONFIG as c
print('--filters', ','.join(map(str, c['filters'])), '--dense-units', c['dense_units'],
      '--dense-dropout', c['dense_dropout'], *(['--batch-norm'] if c['batch_norm'] else []))"))
for row in "${@:-${ORDER[@]}}"; do
  [ -n "${ROWS[$row]:-}" ] || { echo "unknown row: $row (rows: ${ORDER[*]})" >&2; exit 2; }
  name=$row
  if [ "$SEED" != 0 ]; then name=${row}_s$SEED; fi
  if [ -f "$RESULTS/$name/metrics.json" ]; then echo "$name: done already ($RESULTS/$name)"; continue; fi
  mkdir -p "$RUNS"
  echo "$(date -u +%FT%TZ) $name: training (log $RUNS/$name.log)"
  # shellcheck disable=SC2086  # the row's options and the schedule are word lists
  "$PY" -m fer_utils train "${CONFIG[@]}" ${ROWS[$row]} --data "$DATA" $STUDY_SCHEDULE --seed "$SEED" \
      --out "$RUNS/$name" > "$RUNS/$name.log" 2>&1
  mkdir -p "$RESULTS/$name"
  "$PY" benchmarks/robustness.py "$RUNS/$name" --data "$DATA"
  cp "$RUNS/$name"/{history.csv,robustness.csv,run_info.json,metrics.json} "$RESULTS/$name/"
  echo "$(date -u +%FT%TZ) $name: done"
done
