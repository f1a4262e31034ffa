#!/usr/bin/env bash
# Attention study (the attention issue, "Attention, compared"): every run is one `python -m fer_utils train` on the
# full FER2013 with PAPER_CONFIG (fer_utils.config) and the same fixed schedule (15 cosine epochs with flips, the width
# study's; PublicTest chooses the checkpoint); the rows, the reference row and the schedule are defined in
# benchmarks/attention_rows.sh. Each row trains once per seed in SEEDS (default "0 1"), one run at a time, every row's
# first seed before any row's second, so that a study cut short leaves whole seeds. A finished run's model is measured
# under the robustness targets (benchmarks/robustness.py), and its history, metrics, run info, robustness.csv and
# predicted.npz (the predicted class of each test image: benchmarks/attention_table.py --compact) are copied to
# benchmarks/results/attention/<row>/ (seed 0) or <row>_s<N>/ (seed N), no weights: commit it at once. A run already
# there is skipped; a run folder that finished training is not trained again; an interrupted run resumes from its
# backup when the same command runs again with the same RUNS folder.
#   bash benchmarks/attention_study.sh [ROW ...]      (default: every row; SEEDS="0 1", DATA=..., RUNS=..., PY=...)
#   .venv/bin/python benchmarks/attention_table.py    (the table, from the committed runs)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/fer2013/archive.zip}
RUNS=${RUNS:-runs/attention_study}
SEEDS=${SEEDS:-0 1}
RESULTS=${RESULTS:-benchmarks/results/attention}
PY=${PY:-.venv/bin/python}
# shellcheck source=benchmarks/attention_rows.sh
source benchmarks/attention_rows.sh  # ROWS, ORDER, REFERENCE, STUDY_SCHEDULE
for row in "${@:-${ORDER[@]}}"; do
  [ -n "${ROWS[$row]:-}" ] || { echo "unknown row: $row (rows: ${ORDER[*]})" >&2; exit 2; }
done
# shellcheck disable=SC2207
CONFIG=($("$PY" -c "
from fer_utils.config import PAPER_CONFIG as c
print('--filters', ','.join(map(str, c['filters'])), '--dense-units', c['dense_units'],
      '--dense-dropout', c['dense_dropout'], *(['--batch-norm'] if c['batch_norm'] else []))"))
for seed in $SEEDS; do
  for row in "${@:-${ORDER[@]}}"; do
    name=$row
    if [ "$seed" != 0 ]; then name=${row}_s$seed; fi
    if [ -f "$RESULTS/$name/metrics.json" ]; then echo "$name: done already ($RESULTS/$name)"; continue; fi
    mkdir -p "$RUNS"
    if [ -f "$RUNS/$name/run_info.json" ]; then
      echo "$(date -u +%FT%TZ) $name: trained already ($RUNS/$name), measuring and copying"
    else
      echo "$(date -u +%FT%TZ) $name: training (log $RUNS/$name.log)"
      # shellcheck disable=SC2086  # the row's options and the schedule are word lists
      "$PY" -m fer_utils train "${CONFIG[@]}" ${ROWS[$row]} --data "$DATA" $STUDY_SCHEDULE --seed "$seed" \
          --out "$RUNS/$name" > "$RUNS/$name.log" 2>&1
    fi
    mkdir -p "$RESULTS/$name"
    "$PY" benchmarks/robustness.py "$RUNS/$name" --data "$DATA"
    "$PY" benchmarks/attention_table.py --compact "$RUNS/$name" "$RESULTS/$name"
    cp "$RUNS/$name"/{history.csv,robustness.csv,run_info.json} "$RESULTS/$name/"
    cp "$RUNS/$name/metrics.json" "$RESULTS/$name/"  # last: its presence marks the run as done
    echo "$(date -u +%FT%TZ) $name: done"
  done
done
