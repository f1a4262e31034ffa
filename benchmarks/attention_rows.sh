# The attention study's rows and schedule (the attention issue, "Attention, compared"): the one definition that
# benchmarks/attention_study.sh sources and benchmarks/attention_table.py (and notebook 09) read. Bash, sourced, not run.
#   ROWS[row]       the row's `python -m fer_utils train` options beyond PAPER_CONFIG (which the script adds)
#   ORDER           the order the rows run in (benchmarks/README.md, "Attention study")
#   REFERENCE       the row every other row is compared with, seed by seed: the paper's SE-CNN
#   STUDY_SCHEDULE  the schedule every row trains with; the seed (--seed N) is added by the caller
# shellcheck disable=SC2034  # used by the script that sources this file
declare -A ROWS=(
  [se]="--model se"
  [baseline]="--model baseline"
  [eca]="--model baseline --attention eca"
  [cbam]="--model baseline --attention cbam"
  [se_every]="--model se --attention se_every"
  [spatial]="--model baseline --attention spatial"
  [se_r8]="--model se --se-ratio 8"
  [se_r4]="--model se --se-ratio 4"
)
ORDER=(se baseline eca cbam se_every spatial se_r8 se_r4)
REFERENCE=se
STUDY_SCHEDULE="--epochs 15 --schedule cosine --flip"
