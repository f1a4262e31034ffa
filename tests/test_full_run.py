"""benchmarks/full_run.sh: a profile's full run, trained by `train --profile` and staged for publishing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "full_run.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the run scripts are bash")


def full_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """full_run.sh ARGS on the synthetic data, runs and stage in tmp_path."""
    env = {**os.environ, "PY": sys.executable, "DATA": "synthetic", "RUNS": str(tmp_path / "runs"),
           "STAGE": str(tmp_path / "stage")}
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600)


def test_a_profile_run_trains_with_the_profiles_settings_and_stages_the_run(tmp_path):
    from fer_utils.config import PROFILES
    from fer_utils.run_settings import training_params

    done = full_run(tmp_path, "smoke", "se")
    assert done.returncode == 0, done.stderr + done.stdout
    staged = tmp_path / "stage" / "se"
    assert sorted(p.name for p in staged.iterdir()) == ["history.csv", "metrics.json", "model.keras",
                                                        "predictions.npz", "run_info.json"]
    params = dict(json.loads((staged / "run_info.json").read_text())["params"])
    settings = {k: v for k, v in PROFILES["smoke"].items() if k != "per_class"}
    assert training_params(params.pop("model"), **params) == training_params("se", **settings)
    assert "staged in" in done.stdout
    again = full_run(tmp_path, "smoke", "se")
    assert again.returncode == 0 and "staged already" in again.stdout


def test_an_unknown_profile_or_model_is_refused_before_training(tmp_path):
    for args, said in ((("robustt", "se"), "unknown profile: robustt"), (("paper", "sen"), "unknown model: sen")):
        done = full_run(tmp_path, *args)
        assert done.returncode == 2 and said in done.stderr
    assert not (tmp_path / "runs").exists()
