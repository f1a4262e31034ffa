"""The GPU path without a GPU: the same fer_utils code under Keras' JAX backend, on the CPU (issue 29, item 7).

The GPU machines have JAX, not TensorFlow (benchmarks/gpu_run.sh, gpu_study.sh); jax (CPU) is in the dev extra, so
these run wherever the tests do: `train` and `evaluate` under KERAS_BACKEND=jax on the tiny FER2013 fixture, and the
GPU study script end to end on one job, 1 epoch of the synthetic set.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
JAX = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}


def test_jax_is_in_the_dev_extra_that_make_and_conda_install():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert any(re.match(r"jax\b", dep) for dep in dev), f"the dev extra lacks jax (the GPU path's backend): {dev}"
    assert "-e .[dev]" in (REPO / "environment.yml").read_text()
    assert "-e '.[dev]'" in (REPO / "Makefile").read_text()


def fer_utils_under_jax(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """`python -m fer_utils ARGS` with KERAS_BACKEND=jax on the CPU; fails the test, with its output, if it fails."""
    done = subprocess.run([sys.executable, "-m", "fer_utils", *args], cwd=cwd, env=JAX, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory, fer_files) -> Path:
    """A run folder trained under JAX: the SE-CNN, 1 epoch on the tiny FER2013 zip."""
    out = tmp_path_factory.mktemp("jax") / "se"
    fer_utils_under_jax("train", "--model", "se", "--data", str(fer_files.zip), "--epochs", "1", "--precision",
                        "float32", "--seed", "0", "--out", str(out))
    return out


@pytest.mark.slow
def test_training_under_the_jax_backend_writes_a_run_folder_that_loads(jax_run):
    import keras

    info = json.loads((jax_run / "run_info.json").read_text())
    assert info["keras_backend"] == "jax"
    assert keras.models.load_model(jax_run / "model.keras").output_shape == (None, 7)


@pytest.mark.slow
def test_evaluate_under_jax_recomputes_the_run_s_test_scores_as_tensorflow_does(jax_run, fer_files):
    from fer_utils.data import load_data
    from fer_utils.evaluation import evaluate_split
    from fer_utils.predict import load_fer_model

    done = fer_utils_under_jax("evaluate", str(jax_run / "model.keras"), "--data", str(fer_files.zip), "--split",
                               "test")
    loss, accuracy, n = re.search(r"test: loss (\S+)  accuracy (\S+)  \(n=(\d+), float32\)", done.stdout).groups()
    metrics = json.loads((jax_run / "metrics.json").read_text())
    assert float(loss) == pytest.approx(metrics["test_loss"], abs=1e-4)
    assert float(accuracy) == pytest.approx(metrics["test_accuracy"], abs=1e-4)
    here = evaluate_split(load_fer_model(jax_run / "model.keras", calibrated=False, float32=True),  # TensorFlow here
                          load_data(fer_files.zip, quiet=True), "test")
    assert (here["loss"], here["accuracy"], here["n"]) == (pytest.approx(float(loss), abs=1e-3),
                                                           pytest.approx(float(accuracy), abs=1e-4), int(n))


@pytest.mark.slow
def test_the_gpu_study_runs_end_to_end_on_the_cpu_and_unpacks(tmp_path):
    """gpu_study.sh's smoke mode on one job (the full SE run: trained, its model stripped, packed), then
    gpu_unpack.sh: what a device call would do, on this machine's CPU under JAX, in about a minute."""
    gpu = tmp_path / "gpu"
    gpu.mkdir()
    (gpu / "archive.zip.part-0").write_bytes(b"a stand-in for FER2013's archive")  # checked, not read, in smoke mode
    sums = subprocess.run(["sha256sum", "archive.zip.part-0"], cwd=gpu, capture_output=True, text=True, check=True)
    (gpu / "parts.sha256").write_text(sums.stdout)
    (gpu / "archive.zip.sha256").write_text(sums.stdout.replace("archive.zip.part-0", "archive.zip"))
    paths = {"STUDY_RESULTS": str(tmp_path / "study"), "SEEDS_RESULTS": str(tmp_path / "seeds"),
             "RUNS": str(tmp_path / "runs")}
    env = {**JAX, **paths, "GPU_STUDY_SMOKE": "1", "GPU_STUDY_BUDGET": "400", "GPU_DIR": str(gpu),
           "OUT": str(tmp_path / "out"), "PY": sys.executable, "WHEELS": str(tmp_path / "no_wheels")}
    done = subprocess.run(["bash", "benchmarks/gpu_study.sh", "paper_se"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"paper_se\s+full\s+paper/se\s+finished\s+0\s+1\s", done.stdout), done.stdout
    unpacked = subprocess.run(["bash", "benchmarks/gpu_unpack.sh", str(tmp_path / "out")], cwd=REPO,
                              env={**os.environ, **paths, "RUNS": str(tmp_path / "here")}, capture_output=True,
                              text=True, timeout=60)
    assert unpacked.returncode == 0, unpacked.stdout + unpacked.stderr
    trained, back = tmp_path / "runs" / "paper" / "se", tmp_path / "here" / "paper" / "se"
    assert json.loads((back / "run_info.json").read_text())["keras_backend"] == "jax"
    assert (back / "history.csv").read_text() == (trained / "history.csv").read_text()
    assert 0 < (back / "model.keras").stat().st_size < (trained / "model.keras").stat().st_size  # no optimizer state
