#!/usr/bin/env bash
# Train both models with the paper's recipe on a GPU machine that has JAX but no TensorFlow,
# with the same fer_utils code under KERAS_BACKEND=jax, writing the usual run folders.
#
#   bash benchmarks/gpu_run.sh ARCHIVE OUT [EPOCHS]
#
# Needs, besides JAX: keras and its small pure-Python needs (namex, optree, rich, absl-py, h5py, ml-dtypes),
# numpy, pandas, pillow, scipy, scikit-learn. Wheels for whatever is missing can be put in .whl/ (the device
# machines of this project's workplace take them that way); they are installed into /tmp/site first.
set -euo pipefail
archive=${1:?usage: gpu_run.sh ARCHIVE OUT [EPOCHS]}
out=${2:?usage: gpu_run.sh ARCHIVE OUT [EPOCHS]}
epochs=${3:-100}
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export KERAS_BACKEND=jax PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), '| keras', keras.__version__, keras.backend.backend())"
for model in baseline se; do
    python3 -m fer_utils train --model "$model" --data "$archive" --epochs "$epochs" --out "$out/$model"
done
