# The width study's rows and schedule: the one definition that width_study.sh (CPU, one row at a time) and
# gpu_study.sh (GPU, all at once) both source. Bash, sourced, not run.
#   ROWS[row]     the row's `python -m fer_utils train` model options
#   ORDER         the order the rows were chosen in (benchmarks/README.md, "Width study")
#   STUDY_SCHEDULE  the schedule every row trains with; the seed (--seed N) is added by the caller
# shellcheck disable=SC2034  # used by the scripts that source this file
declare -A ROWS=(
  [se_32-64-128_d256]="--model se --filters 32,64,128 --dense-units 256 --dense-dropout 0"
  [se_32-64-128_bn_d512]="--model se --filters 32,64,128 --batch-norm --dense-units 512 --dense-dropout 0"
  [se_32-64-128_bn_d1024_dd05]="--model se --filters 32,64,128 --batch-norm --dense-units 1024 --dense-dropout 0.5"
  [baseline_32-64-128_bn_d512]="--model baseline --filters 32,64,128 --batch-norm --dense-units 512 --dense-dropout 0"
  [se_32-64-128_bn_d1024]="--model se --filters 32,64,128 --batch-norm --dense-units 1024 --dense-dropout 0"
  [baseline_32-64-128_d256]="--model baseline --filters 32,64,128 --dense-units 256 --dense-dropout 0"
  [se_32-64-128_bn_d256]="--model se --filters 32,64,128 --batch-norm --dense-units 256 --dense-dropout 0"
  [se_64-128-256_bn_d256]="--model se --filters 64,128,256 --batch-norm --dense-units 256 --dense-dropout 0"
  [se_48-96-192_bn_d256]="--model se --filters 48,96,192 --batch-norm --dense-units 256 --dense-dropout 0"
  [se_64-128-256_d256]="--model se --filters 64,128,256 --dense-units 256 --dense-dropout 0"
  [se_64-128-256_bn_d1024_dd05]="--model se --filters 64,128,256 --batch-norm --dense-units 1024 --dense-dropout 0.5"
  [baseline_64-128-256_bn_d256]="--model baseline --filters 64,128,256 --batch-norm --dense-units 256 --dense-dropout 0"
  [baseline_32-64-128_bn_d256]="--model baseline --filters 32,64,128 --batch-norm --dense-units 256 --dense-dropout 0"
  [baseline_48-96-192_bn_d256]="--model baseline --filters 48,96,192 --batch-norm --dense-units 256 --dense-dropout 0"
)
ORDER=(se_32-64-128_bn_d256 se_48-96-192_bn_d256 baseline_32-64-128_bn_d256 se_32-64-128_d256 se_32-64-128_bn_d512
       baseline_32-64-128_bn_d512 se_32-64-128_bn_d1024 se_32-64-128_bn_d1024_dd05 baseline_32-64-128_d256 baseline_48-96-192_bn_d256 se_64-128-256_bn_d256
       se_64-128-256_d256 se_64-128-256_bn_d1024_dd05 baseline_64-128-256_bn_d256)
STUDY_SCHEDULE="--epochs 15 --schedule cosine --flip"
