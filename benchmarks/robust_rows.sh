# The regularisation and augmentation study's rows and schedule (the robust-model issue): the one definition that
# benchmarks/robust_study.sh sources. Bash, sourced, not run.
#   ROWS[row]       the row's `python -m fer_utils train` options beyond PAPER_CONFIG (which the script adds)
#   ORDER           the order the rows run in (benchmarks/README.md, "Regularisation and augmentation study")
#   COMBINED        the rows that combine candidates (judged as a recipe, not as one candidate)
#   STUDY_SCHEDULE  the schedule every row trains with; the seed (--seed N) is added by the caller
# shellcheck disable=SC2034  # used by the script that sources this file
ALL="--flip --augment geometric,photometric,degrade,erase --dense-dropout 0.5 --label-smoothing 0.1 --weight-decay 0.05"
declare -A ROWS=(
  [se_ref]="--model se"
  [se_all]="--model se $ALL"
  [se_targets]="--model se --flip --augment photometric,degrade"
  [se_flip]="--model se --flip"
  [se_photo]="--model se --augment photometric"
  [se_degrade]="--model se --augment degrade"
  [se_dd05]="--model se --dense-dropout 0.5"
  [se_ls01]="--model se --label-smoothing 0.1"
  [se_erase]="--model se --augment erase"
  [se_geom]="--model se --augment geometric"
  [se_wd05]="--model se --weight-decay 0.05"
  [baseline_ref]="--model baseline"
  [baseline_all]="--model baseline $ALL"
)
COMBINED=(se_all se_targets)
ORDER=(se_ref se_all se_targets se_flip se_photo se_degrade se_dd05 se_ls01 se_erase se_geom se_wd05 baseline_ref baseline_all)
STUDY_SCHEDULE="--epochs 30 --schedule cosine"
