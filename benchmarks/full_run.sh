#!/usr/bin/env bash
# A profile's full training run on this machine, one model at a time: `python -m fer_utils train --profile PROFILE`
# (the settings of `run --profile PROFILE`, fer_utils.config.PROFILES: paper = the paper's recipe with PAPER_CONFIG;
# robust = PAPER_CONFIG with the robust recipe). A finished run is staged at once, so that it survives the session:
# its history, metrics, run info and predictions, and its model without optimizer state, are copied to
# reports/pending/PROFILE/<model>/ (commit that folder); once both models are there,
# `python -m fer_utils publish reports/pending/PROFILE --out OUT` publishes them (OUT: reports for paper).
#   bash benchmarks/full_run.sh PROFILE MODEL [MODEL ...]   (MODEL: baseline or se; DATA, RUNS, STAGE, PY override)
# An interrupted run resumes from its backup when the same command runs again in the same RUNS folder.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/fer2013/archive.zip}
PY=${PY:-.venv/bin/python}
usage="usage: bash benchmarks/full_run.sh PROFILE MODEL [MODEL ...]  (PROFILE: paper, robust, ...; MODEL: baseline, se)"
[ $# -gt 1 ] || { echo "$usage" >&2; exit 2; }
profile=$1; shift
"$PY" -c "import sys; from fer_utils.config import PROFILES; sys.exit(sys.argv[1] not in PROFILES)" "$profile" \
  || { echo "unknown profile: $profile" >&2; echo "$usage" >&2; exit 2; }
for model in "$@"; do
  case $model in baseline|se) ;; *) echo "unknown model: $model (baseline, se)" >&2; exit 2 ;; esac
done
RUNS=${RUNS:-runs/full_$profile}
STAGE=${STAGE:-reports/pending/$profile}
for model in "$@"; do
  if [ -f "$STAGE/$model/metrics.json" ]; then echo "$model: staged already ($STAGE/$model)"; continue; fi
  mkdir -p "$RUNS"
  echo "$(date -u +%FT%TZ) $profile $model: training (log $RUNS/$model.log)"
  "$PY" -m fer_utils train --model "$model" --profile "$profile" --data "$DATA" --out "$RUNS/$model" \
      > "$RUNS/$model.log" 2>&1
  mkdir -p "$STAGE/$model"
  cp "$RUNS/$model"/{history.csv,run_info.json,predictions.npz} "$STAGE/$model/"
  "$PY" -c "import sys; from fer_utils.runfolder import save_without_optimizer as s; s(sys.argv[1], sys.argv[2])" \
      "$RUNS/$model/model.keras" "$STAGE/$model/model.keras"
  cp "$RUNS/$model/metrics.json" "$STAGE/$model/"   # last: it marks a staged run as complete
  echo "$(date -u +%FT%TZ) $profile $model: done; staged in $STAGE/$model (git add $STAGE/$model && git commit)"
done
