#!/usr/bin/env bash
# Here, on the CPU machine: get FER2013 and Keras ready to travel to a lent GPU machine, and print the device calls
# that send them and run benchmarks/gpu_study.sh there (benchmarks/README.md, "GPU path").
#
#   bash benchmarks/gpu_pack.sh [--keep-reports]     split the archive into .gpu/, fetch wheels into .whl/, print calls
#   bash benchmarks/gpu_pack.sh --plan TREE ARCHIVE EXTRA   the split arithmetic alone, for sizes in bytes (tests)
#
# What travels in one device call is capped at 64 MiB: the working tree (tracked files and untracked ones git does not
# ignore), plus the paths named in `carry`. FER2013's archive.zip (62 MB) is more than that beside today's tree, whose
# two reports/*/model.keras are 35 MB of it. So, by default, the calls are planned for a tree without reports/ (the
# study needs nothing in it): the printed procedure deletes it first and restores it with `git checkout -- reports`
# at the end (refused when reports/ has uncommitted changes). --keep-reports plans for the whole tree instead.
# The archive is split into equal parts, one per call, each call's tree + part (+ the last call's extras: the hash
# files and .whl/) under 64 MiB less a margin. Parts sent in earlier calls stay on the machine only while it is warm,
# which is 30 s after a call: send the calls back to back. gpu_study.sh names any part that did not arrive.
# ARCHIVE=../shared/data/fer2013/archive.zip (its .sha256 beside it), PY=.venv/bin/python (to read Keras' version).
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=$((64 * 1024 * 1024))
MARGIN=$((512 * 1024))   # the tool's own count of what travels is not documented to the byte: keep this much spare

# plan TREE ARCHIVE EXTRA: how many equal parts, and their size, so that every call stays under LIMIT - MARGIN
plan() {
  local tree=$1 archive=$2 extra=$3
  local room=$((LIMIT - MARGIN - tree - extra))   # the last call carries the extras; earlier ones less
  if [ "$room" -le 0 ]; then
    echo "error: the tree ($tree bytes) and the last call's extras ($extra) leave no room under" \
         "$LIMIT - $MARGIN bytes" >&2
    return 1
  fi
  local n=$(((archive + room - 1) / room))
  PARTS=$n
  PART_BYTES=$(((archive + n - 1) / n))
}

if [ "${1:-}" = --plan ]; then
  plan "$2" "$3" "$4"
  echo "calls=$PARTS part_bytes=$PART_BYTES limit=$LIMIT margin=$MARGIN"
  for ((i = 1; i <= PARTS; i++)); do
    part=$PART_BYTES
    [ "$i" -lt "$PARTS" ] || part=$(($3 - (PARTS - 1) * PART_BYTES))
    extra=0; [ "$i" -lt "$PARTS" ] || extra=$4
    echo "call $i: tree $2 + part $part + extra $extra = $(($2 + part + extra))"
  done
  exit 0
fi
SLIM=1
if [ "${1:-}" = --keep-reports ]; then SLIM=0; fi

ARCHIVE=${ARCHIVE:-../shared/data/fer2013/archive.zip}
PY=${PY:-.venv/bin/python}
if [ ! -f "$ARCHIVE" ] || [ ! -f "$ARCHIVE.sha256" ]; then
  echo "error: need $ARCHIVE and $ARCHIVE.sha256" >&2; exit 2
fi
if ! grep -qx '.gpu/' .gitignore || ! grep -qx '.whl/' .gitignore; then
  echo "error: .gitignore must ignore .gpu/ and .whl/ (what they hold must never be committed)" >&2; exit 2
fi
echo "checking $ARCHIVE against $ARCHIVE.sha256 ..."
(cd "$(dirname "$ARCHIVE")" && sha256sum --quiet -c "$(basename "$ARCHIVE").sha256")

# ---- Keras and what it needs beyond the GPU machine's image (which has JAX, numpy, h5py, rich, absl-py, ml-dtypes)
# as wheels for its Python 3.12, the same versions as this venv's, so models saved there load here.
mkdir -p .whl
versions=$("$PY" -c "from importlib.metadata import version as v
print(*(f'{p}=={v(p)}' for p in ('keras', 'namex', 'optree')))")
for pin in $versions; do
  name=${pin%%==*}; version=${pin#*==}
  compgen -G ".whl/$name-$version-*.whl" >/dev/null && continue
  rm -f .whl/"$name"-*.whl
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$pin"
done
echo "wheels: $(cd .whl && ls ./*.whl | tr '\n' ' ')"

# ---- what travels in every call: the working tree as the tool counts it --------------------------------------------
tree_bytes() {  # tracked and untracked-not-ignored files that exist, minus those under $1 (if given)
  git ls-files -z --cached --others --exclude-standard | sort -zu | while IFS= read -r -d '' f; do
    if [ -n "${1:-}" ] && [[ $f == "$1"/* ]]; then continue; fi
    if [ -f "$f" ] && [ ! -L "$f" ]; then printf '%s\0' "$f"; fi
  done | xargs -0 -r du -cb | awk 'END{print $1+0}'
}
full_tree=$(tree_bytes)
if [ "$SLIM" = 1 ]; then
  if git status --porcelain -- reports | grep -qv '^ D '; then  # deleted files are fine: step 1 may be done already
    echo "error: reports/ has uncommitted changes; commit them or use --keep-reports" >&2; exit 2
  fi
  tree=$(tree_bytes reports)
else
  tree=$full_tree
fi

# ---- split the archive ----------------------------------------------------------------------------------------------
rm -rf .gpu; mkdir -p .gpu
cp "$ARCHIVE.sha256" .gpu/archive.zip.sha256 && chmod u+w .gpu/archive.zip.sha256
archive_bytes=$(stat -c %s "$ARCHIVE")
wheels_bytes=$(du -cb .whl/*.whl | tail -1 | cut -f1)
extra=$((wheels_bytes + $(stat -c %s .gpu/archive.zip.sha256) + 4096))  # + parts.sha256, written below (< 4 KiB)
plan "$tree" "$archive_bytes" "$extra"
split -b "$PART_BYTES" -a 2 "$ARCHIVE" .gpu/fer2013.zip.part-
(cd .gpu && sha256sum fer2013.zip.part-* > parts.sha256)
mapfile -t parts < <(cd .gpu && ls fer2013.zip.part-*)
echo "archive: $archive_bytes bytes in ${#parts[@]} part(s) of <= $PART_BYTES in .gpu/; whole tree $full_tree bytes," \
     "travelling tree $tree bytes; last call's extras $extra bytes; limit $LIMIT - margin $MARGIN"

# ---- the procedure ------------------------------------------------------------------------------------------------
study_env="GPU_STUDY_BUDGET=${GPU_STUDY_BUDGET:-520} PAPER_FILTERS=${PAPER_FILTERS:-32,64,128}"
study_env+=" PAPER_DENSE=${PAPER_DENSE:-512} PAPER_BN=${PAPER_BN---batch-norm}"
step=1
echo
echo "The procedure (each device call in the JSON form of the device tool's run arguments):"
if [ "$SLIM" = 1 ]; then
  echo "$step. here: rm -r reports        # $((full_tree - tree)) bytes that the study does not need stay behind"
  step=$((step + 1))
fi
n=${#parts[@]}
for ((i = 0; i < n; i++)); do
  if [ $((i + 1)) -lt "$n" ]; then
    echo "$step. device run (call $((i + 1)) of $n; send the next one at once: the machine stays warm 30 s):"
    printf '   {"command": "ls -l .gpu", "carry": [".gpu/%s"], "timeout_s": 60}\n' "${parts[$i]}"
  else
    echo "$step. device run (call $n of $n: trains the study, about ${GPU_STUDY_BUDGET:-520} s, then packs into \$OUT):"
    carry="\".gpu/${parts[$i]}\", \".gpu/parts.sha256\", \".gpu/archive.zip.sha256\", \".whl\""
    if [ "$n" = 1 ]; then carry='".gpu", ".whl"'; fi
    printf '   {"command": "%s bash benchmarks/gpu_study.sh", "carry": [%s], "timeout_s": 600}\n' "$study_env" "$carry"
  fi
  step=$((step + 1))
done
if [ "$SLIM" = 1 ]; then
  echo "$step. here: git checkout -- reports    # restores what step 1 removed"
  step=$((step + 1))
fi
echo "$step. here: bash benchmarks/gpu_unpack.sh FILES_AT    # FILES_AT: the run's files_at folder"
echo "   then: .venv/bin/python benchmarks/study_table.py && .venv/bin/python benchmarks/seeds_table.py"
