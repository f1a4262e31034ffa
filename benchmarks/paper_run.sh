#!/usr/bin/env bash
# The paper's full recipe (up to 100 epochs, plateau schedule, EarlyStopping 16, PublicTest choosing, no flips) with
# the configuration the width study chose (fer_utils.config.PAPER_CONFIG), one model at a time, on this machine.
# A finished run is staged at once, so that it survives the session: its history, metrics, run info and predictions,
# and its model without optimizer state, are copied to reports/pending/<model>/ (commit that folder); once both
# models are there, `python -m fer_utils publish reports/pending --out reports` publishes them.
#   bash benchmarks/paper_run.sh MODEL [MODEL ...]     (MODEL: baseline or se; DATA=..., RUNS=..., PY=... override)
# An interrupted run resumes from its backup when the same command runs again in the same RUNS folder.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/fer2013/archive.zip}
RUNS=${RUNS:-runs/paper_v2}
PY=${PY:-.venv/bin/python}
STAGE=reports/pending
[ $# -gt 0 ] || { echo "usage: bash benchmarks/paper_run.sh MODEL [MODEL ...]  (baseline, se)" >&2; exit 2; }
for model in "$@"; do
  case $model in baseline|se) ;; *) echo "unknown model: $model (baseline, se)" >&2; exit 2 ;; esac
done
# shellcheck disable=SC2207
OPTIONS=($("$PY" -c "
from fer_utils.config import PAPER_CONFIG as c
print('--filters', ','.join(map(str, c['filters'])), '--dense-units', c['dense_units'],
      '--dense-dropout', c['dense_dropout'], *(['--batch-norm'] if c['batch_norm'] else []))"))
for model in "$@"; do
  if [ -f "$STAGE/$model/metrics.json" ]; then echo "$model: staged already ($STAGE/$model)"; continue; fi
  mkdir -p "$RUNS"
  echo "$(date -u +%FT%TZ) $model: training ${OPTIONS[*]} (log $RUNS/$model.log)"
  "$PY" -m fer_utils train --model "$model" "${OPTIONS[@]}" --epochs 100 --data "$DATA" --out "$RUNS/$model" \
      > "$RUNS/$model.log" 2>&1
  mkdir -p "$STAGE/$model"
  cp "$RUNS/$model"/{history.csv,run_info.json,predictions.npz} "$STAGE/$model/"
  "$PY" -c "import sys; from fer_utils.runfolder import save_without_optimizer as s; s(sys.argv[1], sys.argv[2])" \
      "$RUNS/$model/model.keras" "$STAGE/$model/model.keras"
  cp "$RUNS/$model/metrics.json" "$STAGE/$model/"   # last: it marks a staged run as complete
  echo "$(date -u +%FT%TZ) $model: done; staged in $STAGE/$model (git add $STAGE/$model && git commit)"
done
