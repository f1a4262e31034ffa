#!/usr/bin/env bash
# The whole remaining training study in one command on a lent GPU machine (JAX, no TensorFlow): every job below
# trains at once, as its own `python3 -m fer_utils train` process on the one GPU, within a time budget; then the
# results are packed into $OUT so that they come back through the device tool's limits.
#
#   bash benchmarks/gpu_study.sh [JOB ...]     train the jobs (default: all not done yet), then pack
#   bash benchmarks/gpu_study.sh --list [JOB ...]   print the jobs and their state; trains nothing, needs no data
#
# Procedure (benchmarks/README.md, "GPU path"): here, `bash benchmarks/gpu_pack.sh` splits FER2013's archive.zip into
# .gpu/ and prints the device calls; the last of them runs this script; `bash benchmarks/gpu_unpack.sh DIR` puts
# what comes back into benchmarks/results/ and runs/gpu/.
#
# Settings (environment):
#   GPU_STUDY_BUDGET=520   seconds for the whole script, packing included: at BUDGET - GPU_STUDY_RESERVE (60) every job
#                          still training gets SIGTERM (fer_utils stops at the next batch end, keeping its last
#                          complete epoch), SIGKILL 20 s later; what finished, and the partial histories, are packed
#   PAPER_FILTERS=32,64,128 PAPER_DENSE=512 PAPER_BN=--batch-norm   widths of the two full "paper profile" runs
#                          (the width study's best affordable row so far; PAPER_BN= (empty) trains without batch norm)
#   SEED_CONFIG=32-64-128_bn_d512   the study configuration (row name without its model) that gets seeds 1 and 2
#   GPU_STUDY_SKIP="JOB .."  leave these jobs out (e.g. rows a CPU machine is training right now)
#   GPU_STUDY_SMOKE=1      a smoke test anywhere: three jobs only, on the synthetic set (--subset 20, 1 epoch, or
#                          GPU_STUDY_SMOKE_EPOCHS); the archive is still reassembled and checked (fake parts will do)
#   GPU_DIR=.gpu  RUNS=runs/gpu  OUT=$RUNS/out  PY=python3  WHEELS=.whl   paths and the interpreter
# Exit status: 0 when every job trained to its end, 1 when any failed or was stopped (their results are packed all
# the same), 2 for a usage error or missing/corrupt data (nothing trained).
set -euo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS

# ---- settings ---------------------------------------------------------------------------------------------------
BUDGET=${GPU_STUDY_BUDGET:-520}
RESERVE=${GPU_STUDY_RESERVE:-60}    # stopping (GRACE) and packing (stripping two models, tar) must fit in this
GRACE=20
SMOKE=${GPU_STUDY_SMOKE:-0}
PAPER_FILTERS=${PAPER_FILTERS:-32,64,128}
PAPER_DENSE=${PAPER_DENSE:-512}
SEED_CONFIG=${SEED_CONFIG:-32-64-128_bn_d512}   # the configuration whose pair gets seeds 1 and 2
PAPER_BN=${PAPER_BN---batch-norm}
case "$PAPER_BN" in
  --batch-norm|"") ;;
  *) echo "PAPER_BN must be --batch-norm or empty, not '$PAPER_BN'" >&2; exit 2 ;;
esac
GPU_DIR=${GPU_DIR:-.gpu}
if [ "$SMOKE" = 1 ]; then RUNS=${RUNS:-runs/gpu_smoke}; else RUNS=${RUNS:-runs/gpu}; fi
OUT=${OUT:-$RUNS/out}
PY=${PY:-python3}
WHEELS=${WHEELS:-.whl}
STUDY=${STUDY_RESULTS:-benchmarks/results/study}    # rows with metrics.json here are done (width_study.sh's folders)
SEEDS=${SEEDS_RESULTS:-benchmarks/results/seeds}    # likewise for the seeds table's runs

# ---- the jobs ---------------------------------------------------------------------------------------------------
# job NAME KIND RUN_FOLDER TRAIN_OPTIONS. KIND says where gpu_unpack.sh files a finished job's results: study ->
# benchmarks/results/study/NAME/, seeds -> benchmarks/results/seeds/NAME/ (the names width_study.sh gives them),
# full -> runs/gpu/RUN_FOLDER/ only (outside git; its model.keras comes back too, without optimizer state).
# shellcheck source=benchmarks/study_rows.sh
source benchmarks/study_rows.sh   # ROWS, ORDER, STUDY_SCHEDULE: the same definitions width_study.sh trains
NAMES=(); declare -A KIND=() FOLDER=() OPTIONS=()
job() { NAMES+=("$1"); KIND[$1]=$2; FOLDER[$1]=$3; OPTIONS[$1]=$4; }
# (a) the width study's rows (those already in benchmarks/results/study/ are skipped below)
for row in "${ORDER[@]}"; do job "$row" study "$row" "${ROWS[$row]} $STUDY_SCHEDULE --seed 0"; done
# (b) seeds 1 and 2 of the pair at SEED_CONFIG, as `SEED=N bash benchmarks/width_study.sh ROW` trains them
for model in baseline se; do
  [ -n "${ROWS[${model}_$SEED_CONFIG]:-}" ] || { echo "SEED_CONFIG=$SEED_CONFIG: no row ${model}_$SEED_CONFIG" >&2; exit 2; }
done
for seed in 1 2; do
  for row in "baseline_$SEED_CONFIG" "se_$SEED_CONFIG"; do
    job "${row}_s$seed" seeds "${row}_s$seed" "${ROWS[$row]} $STUDY_SCHEDULE --seed $seed"
  done
done
# (c) the two full runs of the paper profile: 100 epochs, the paper's plateau schedule and early stopping, no flips
for model in baseline se; do
  job "paper_$model" full "paper/$model" \
      "--model $model --filters $PAPER_FILTERS --dense-units $PAPER_DENSE $PAPER_BN --dense-dropout 0 --epochs 100"
done

# ---- which jobs, in what state ----------------------------------------------------------------------------------
LIST=0
if [ "${1:-}" = --list ]; then LIST=1; shift; fi
for name in "$@"; do
  [ -n "${KIND[$name]:-}" ] || { echo "unknown job: $name (jobs: ${NAMES[*]})" >&2; exit 2; }
done
state() {  # done-in-repo | done | resume | todo
  local name=$1
  case ${KIND[$name]} in
    study) [ -f "$STUDY/$name/metrics.json" ] && { echo done-in-repo; return; } ;;
    seeds) [ -f "$SEEDS/$name/metrics.json" ] && { echo done-in-repo; return; } ;;
  esac
  local dir=$RUNS/${FOLDER[$name]}
  if [ -f "$dir/metrics.json" ] && [ ! -d "$dir/backup" ]; then echo done     # finished by an earlier call here
  elif [ -d "$dir/backup" ]; then echo resume                               # fer_utils resumes it from its backup
  else echo todo; fi
}
SELECTED=()
for name in "${@:-${NAMES[@]}}"; do
  [[ " ${GPU_STUDY_SKIP:-} " == *" $name "* ]] && continue
  SELECTED+=("$name")
done
if [ "$SMOKE" = 1 ] && [ $# = 0 ]; then  # one job of each kind: the first study row and seed run to do, and paper_se
  smoke=()
  for kind in study seeds; do
    for name in "${SELECTED[@]}"; do
      if [ "${KIND[$name]}" = "$kind" ] && [ "$(state "$name")" != done-in-repo ]; then smoke+=("$name"); break; fi
    done
  done
  SELECTED=("${smoke[@]}" paper_se)
fi
EXTRA=""
if [ "$SMOKE" = 1 ]; then EXTRA="--data synthetic --subset 20 --epochs ${GPU_STUDY_SMOKE_EPOCHS:-1}"; fi

TRAIN=(); PACKED=()   # jobs to train now; jobs whose run folder is packed (trained now or earlier on this machine)
for name in "${SELECTED[@]}"; do
  s=$(state "$name")
  case $s in
    done-in-repo) ;;
    done) PACKED+=("$name") ;;
    *) TRAIN+=("$name"); PACKED+=("$name") ;;
  esac
  if [ "$LIST" = 1 ]; then
    printf '%-30s %-5s %-12s %s\n' "$name" "${KIND[$name]}" "$s" "${OPTIONS[$name]}${EXTRA:+ $EXTRA}"
  fi
done
if [ "$LIST" = 1 ]; then exit 0; fi
echo "gpu_study: ${#TRAIN[@]} job(s) to train, budget ${BUDGET} s (jobs stopped at $((BUDGET - RESERVE)) s)"

# ---- the data: FER2013's archive.zip, reassembled from the parts gpu_pack.sh made -------------------------------
ARCHIVE=$GPU_DIR/archive.zip
verify_archive() { (cd "$GPU_DIR" && sha256sum --quiet -c archive.zip.sha256) >/dev/null 2>&1; }
if [ ! -f "$GPU_DIR/archive.zip.sha256" ]; then
  echo "error: no $GPU_DIR/archive.zip.sha256: send the parts first (bash benchmarks/gpu_pack.sh prints the calls)" >&2
  exit 2
fi
if [ -f "$ARCHIVE" ] && verify_archive; then
  echo "archive: $ARCHIVE already reassembled, sha256 matches"
else
  if [ ! -f "$GPU_DIR/parts.sha256" ]; then
    echo "error: no $GPU_DIR/parts.sha256 (the parts' list): re-run gpu_pack.sh" >&2; exit 2
  fi
  missing=$(cd "$GPU_DIR" && sha256sum -c parts.sha256 2>/dev/null | grep -v ': OK$' || true)
  if [ -n "$missing" ]; then
    echo "error: parts of the archive are missing or damaged in $GPU_DIR (a machine given back between two calls" \
         "loses the parts sent before; send them all again):" >&2
    echo "$missing" >&2
    exit 2
  fi
  # shellcheck disable=SC2046
  (cd "$GPU_DIR" && cat $(awk '{print $2}' parts.sha256)) > "$ARCHIVE.partial"
  mv "$ARCHIVE.partial" "$ARCHIVE"
  if ! verify_archive; then
    mv "$ARCHIVE" "$ARCHIVE.bad"
    echo "error: $ARCHIVE reassembled from $(wc -l < "$GPU_DIR/parts.sha256") part(s) but its sha256" \
         "($(sha256sum "$ARCHIVE.bad" | cut -d' ' -f1)) is not $(cut -d' ' -f1 "$GPU_DIR/archive.zip.sha256")" \
         "(kept as $ARCHIVE.bad)" >&2
    exit 2
  fi
  echo "archive: reassembled $ARCHIVE ($(stat -c %s "$ARCHIVE") bytes), sha256 matches"
fi
DATA=$ARCHIVE
if [ "$SMOKE" = 1 ]; then DATA=synthetic; fi

# ---- Python: the machine's JAX, plus Keras and its small needs from .whl/ --------------------------------------
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1  # several processes share the GPU
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$RUNS"
if ! "$PY" -c "import jax, keras; print('jax', jax.__version__, jax.devices(), '| keras', keras.__version__)" \
     > "$RUNS/environment.txt" 2>&1; then
  cat "$RUNS/environment.txt" >&2
  echo "error: $PY cannot import jax and keras (Keras travels as wheels in $WHEELS/: gpu_pack.sh fetches them)" >&2
  exit 2
fi
cat "$RUNS/environment.txt"
if [ "$SMOKE" != 1 ] && ! grep -qiE "cuda|gpu" "$RUNS/environment.txt"; then
  echo "error: JAX sees no GPU (above); not training the study on CPU cores (GPU_STUDY_SMOKE=1 to test)" >&2
  exit 2
fi
if command -v nvidia-smi >/dev/null; then nvidia-smi >> "$RUNS/environment.txt" 2>&1 || true; fi

# ---- train: every job at once, each with its own log, each stopped at the budget -------------------------------
epochs_done() {  # the epochs a job's history.csv holds so far
  local h=$RUNS/${FOLDER[$1]}/history.csv
  if [ -f "$h" ]; then echo $(($(wc -l < "$h") - 1)); else echo 0; fi
}
declare -A PID=() STATUS=()
stop_at=$((START + BUDGET - RESERVE))
for name in "${TRAIN[@]}"; do
  left=$((stop_at - SECONDS))
  if [ "$left" -le 0 ]; then STATUS[$name]=not-started; continue; fi
  mkdir -p "$RUNS/$(dirname "${FOLDER[$name]}")"
  # shellcheck disable=SC2086  # OPTIONS and EXTRA are lists of options
  timeout --signal=TERM --kill-after=$GRACE "$left" \
    "$PY" -m fer_utils train ${OPTIONS[$name]} --data "$DATA" ${EXTRA} --out "$RUNS/${FOLDER[$name]}" \
    > "$RUNS/$name.log" 2>&1 &
  PID[$name]=$!
done
echo "$(date -u +%T) started ${#PID[@]} process(es): ${!PID[*]}"
(  # a progress line a minute: epochs logged per job, and the GPU's load
  while sleep 60; do
    line="$(date -u +%T) +$((SECONDS - START))s epochs:"
    for name in "${!PID[@]}"; do line+=" $name=$(epochs_done "$name")"; done
    if command -v nvidia-smi >/dev/null; then
      line+=" | gpu $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null | head -1)"
    fi
    echo "$line"
  done
) &
progress=$!
for name in "${!PID[@]}"; do
  rc=0; wait "${PID[$name]}" || rc=$?
  STATUS[$name]=$rc
done
kill "$progress" 2>/dev/null || true; wait "$progress" 2>/dev/null || true

# ---- pack: histories, metrics, run info and logs of every job; the full runs' models without optimizer state -----
# Keras 3 (read in keras/src/saving/saving_api.py, 3.15.1): `model.save('x.keras')` always writes the optimizer's
# variables when the model has an optimizer; `include_optimizer=False` is honoured for legacy .h5 files only. A model
# loaded with `compile=False` has no optimizer (and no compile config), so saving it writes the architecture and the
# weights alone: reports/v1/se/model.keras went from 17.8 MB to 6.0 MB that way, reloaded with safe_mode=True, same
# weights and predictions (checked under JAX on the CPU). fer_utils.runfolder.save_without_optimizer does that and
# checks the same on every model it writes.
STRIP='import sys; from fer_utils.runfolder import save_without_optimizer as strip; strip(*sys.argv[1:3]); print(sys.argv[2], "written without optimizer state; reloads in safe mode with the same weights")'
pack_dir=$RUNS/.pack
rm -rf "$pack_dir"; mkdir -p "$pack_dir/gpu_study" "$OUT"
summary=$pack_dir/gpu_study/summary.tsv
printf 'job\tkind\tfolder\tstate\texit\tepochs\tbest_val_accuracy\n' > "$summary"
failed=0
for name in "${PACKED[@]}"; do
  src=$RUNS/${FOLDER[$name]}; dst=$pack_dir/gpu_study/${FOLDER[$name]}
  mkdir -p "$dst"
  rc=${STATUS[$name]:-earlier}
  if [ -f "$src/metrics.json" ] && [ ! -d "$src/backup" ]; then st=finished
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then st=stopped-at-budget; failed=1
  elif [ "$rc" = not-started ]; then st=not-started; failed=1
  else st=failed; failed=1; fi
  for f in history.csv metrics.json run_info.json; do if [ -f "$src/$f" ]; then cp "$src/$f" "$dst/"; fi; done
  if [ -f "$RUNS/$name.log" ]; then tail -c 1000000 "$RUNS/$name.log" > "$dst/train.log"; fi
  if [ "${KIND[$name]}" = full ]; then
    if [ -f "$src/predictions.npz" ]; then cp "$src/predictions.npz" "$dst/"; fi  # `fer_utils publish` needs it
    if [ -f "$src/model.keras" ]; then
      left=$((START + BUDGET - 10 - SECONDS))
      if [ "$left" -gt 5 ] && JAX_PLATFORMS=cpu timeout "$left" "$PY" -c "$STRIP" "$src/model.keras" \
           "$dst/model.keras" >> "$dst/strip.log" 2>&1; then :
      else echo "$name: model.keras not stripped (see strip.log); not packed"; rm -f "$dst/model.keras"; fi
    fi
  fi
  best=-
  if [ -f "$src/history.csv" ]; then  # the best PublicTest accuracy logged so far
    best=$(awk -F, 'NR==1{for(i=1;i<=NF;i++) if($i=="val_accuracy") c=i; next}
                    c && $c>b {b=$c} END{if(c && NR>1) printf "%.4f", b; else printf "-"}' "$src/history.csv")
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${KIND[$name]}" "${FOLDER[$name]}" "$st" "$rc" \
    "$(epochs_done "$name")" "$best" >> "$summary"
done
cp "$RUNS/environment.txt" "$pack_dir/gpu_study/" 2>/dev/null || true
# $OUT brings back at most 8 files of 16 MiB, 64 MiB in all: one tar.gz of at most 60 MiB in parts of 15 MiB (at most
# 4) and the summary
tarball=$pack_dir/gpu_study.tar.gz
tar -czf "$tarball" -C "$pack_dir" gpu_study
if [ "$(stat -c %s "$tarball")" -gt $((60 * 1024 * 1024)) ]; then
  echo "warning: $(stat -c %s "$tarball") bytes packed is over what \$OUT brings back: packing without model.keras"
  find "$pack_dir/gpu_study" -name model.keras -delete
  tar -czf "$tarball" -C "$pack_dir" gpu_study
fi
rm -f "$OUT"/gpu_study.tar.gz.part-*
split -b 15M -d -a 1 "$tarball" "$OUT/gpu_study.tar.gz.part-"
column -t -s $'\t' "$summary" > "$OUT/gpu_study_summary.txt" 2>/dev/null || cp "$summary" "$OUT/gpu_study_summary.txt"
cat "$OUT/gpu_study_summary.txt"
echo "packed: $(ls "$OUT" | tr '\n' ' ')($(du -cb "$OUT"/* | tail -1 | cut -f1) bytes) in $((SECONDS - START)) s;" \
     "here: bash benchmarks/gpu_unpack.sh FILES_AT"
exit "$failed"
