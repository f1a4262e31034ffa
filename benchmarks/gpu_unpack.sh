#!/usr/bin/env bash
# Here, on the CPU machine: unpack what benchmarks/gpu_study.sh packed into $OUT on the GPU machine.
#
#   bash benchmarks/gpu_unpack.sh FILES_DIR     (the folder holding gpu_study.tar.gz.part-*: the run's files_at)
#
# Every job's folder (history.csv, metrics.json, run_info.json, train.log; the full runs' model.keras without optimizer
# state and predictions.npz) goes to runs/gpu/ (outside git): runs/gpu/<row>/, runs/gpu/<row>_s<N>/ and
# runs/gpu/paper/{baseline,se}/ (a folder `python -m fer_utils publish runs/gpu/paper` takes once both finished).
# A finished width-study row is then filed as width_study.sh files it, history.csv, metrics.json and run_info.json in
# benchmarks/results/study/<row>/, and a finished seed run in benchmarks/results/seeds/<row>_s<N>/; a folder already
# there is left alone. Runs that were stopped or failed are only in runs/gpu/ (their history.csv is partial).
# RUNS=runs/gpu, STUDY_RESULTS=benchmarks/results/study, SEEDS_RESULTS=benchmarks/results/seeds override the paths.
set -euo pipefail
files=$(cd "${1:?usage: gpu_unpack.sh FILES_DIR}" && pwd)
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/gpu}
STUDY=${STUDY_RESULTS:-benchmarks/results/study}
SEEDS=${SEEDS_RESULTS:-benchmarks/results/seeds}
if ! compgen -G "$files/gpu_study.tar.gz.part-*" >/dev/null; then
  echo "error: no gpu_study.tar.gz.part-* in $files" >&2; exit 2
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# the parts in order (split -d numbers them 0, 1, ...), into one stream
mapfile -t parts < <(printf '%s\n' "$files"/gpu_study.tar.gz.part-* | sort -V)
cat "${parts[@]}" | tar -xz -C "$tmp"
summary=$tmp/gpu_study/summary.tsv
if [ ! -f "$summary" ]; then echo "error: the archive holds no gpu_study/summary.tsv" >&2; exit 2; fi
mkdir -p "$RUNS"
cp "$summary" "$RUNS/summary.tsv"
if [ -f "$tmp/gpu_study/environment.txt" ]; then cp "$tmp/gpu_study/environment.txt" "$RUNS/"; fi
filed=0
while IFS=$'\t' read -r job kind folder state rc epochs best; do
  [ "$job" = job ] && continue   # the header
  src=$tmp/gpu_study/$folder
  mkdir -p "$RUNS/$folder"
  cp -r "$src/." "$RUNS/$folder/"
  where="$RUNS/$folder"
  case $kind in study) results=$STUDY ;; seeds) results=$SEEDS ;; *) results="" ;; esac
  if [ -n "$results" ] && [ "$state" = finished ]; then
    if [ -f "$results/$job/metrics.json" ]; then
      where+=" (not filed: $results/$job/ exists)"
    else
      mkdir -p "$results/$job"
      cp "$src"/{history.csv,metrics.json,run_info.json} "$results/$job/"
      where+=" and $results/$job/"
      filed=$((filed + 1))
    fi
  fi
  printf '%-30s %-18s epochs %-4s best val %-7s -> %s\n' "$job" "$state" "$epochs" "$best" "$where"
done < "$summary"
echo "$filed finished run(s) filed in $STUDY/ and $SEEDS/; next: .venv/bin/python benchmarks/study_table.py" \
     "&& .venv/bin/python benchmarks/seeds_table.py"
