"""The GPU path: the same fer_utils code trains under Keras' JAX backend (the GPU machines have JAX, not TensorFlow)."""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")]


def test_training_under_the_jax_backend_writes_a_run_folder_that_loads(tmp_path):
    out = tmp_path / "se"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    cmd = [sys.executable, "-m", "fer_utils", "train", "--model", "se", "--data", "synthetic", "--subset", "5",
           "--epochs", "1", "--precision", "float32", "--out", str(out)]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=600)
    info = json.loads((out / "run_info.json").read_text())
    assert info["keras_backend"] == "jax"
    assert keras.models.load_model(out / "model.keras").output_shape == (None, 7)
