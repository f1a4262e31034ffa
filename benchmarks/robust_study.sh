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
# Every row trains in the precision `se_ref` trained in (mixed_bfloat16 on a CPU with native bf16): a row in another
# precision is not comparable, and a CPU without bf16 trains in float32 about 2.8 times slower (2026-12-02, AVX2 VM:
# 357 s of training steps per epoch against se_ref's 128), past a session. FORCE=1 trains anyway.
# shellcheck disable=SC2207
PRECISIONS=($("$PY" -c "
import json, pathlib
from fer_utils.hardware import resolve_precision
ref = pathlib.Path('$RESULTS/se_ref/run_info.json')
print(json.loads(ref.read_text())['precision'] if ref.is_file() else '-', resolve_precision('auto'))" 2>/dev/null))
REF_PRECISION=${PRECISIONS[0]:--}
HERE_PRECISION=${PRECISIONS[1]:-unknown}
if [ "$REF_PRECISION" != - ] && [ "$HERE_PRECISION" != "$REF_PRECISION" ] && [ "${FORCE:-0}" != 1 ]; then
  echo "error: this machine trains in $HERE_PRECISION, the study's reference row se_ref in $REF_PRECISION" \
       "($RESULTS/se_ref/run_info.json): rows would not be comparable (and float32 on a CPU is ~3x slower)." \
       "Run the study where $REF_PRECISION is native (a CPU with avx512_bf16 or amx_bf16 in /proc/cpuinfo, or a" \
       "GPU), or set FORCE=1." >&2
  exit 2
fi
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
