"""`python -m fer_utils run -p NAME VALUE`: unknown names fail at once; values are coerced as papermill needs."""

from __future__ import annotations

import pytest

from fer_utils import cli, pipeline


def test_an_unknown_parameter_fails_before_any_notebook_runs(tmp_path, monkeypatch):
    import papermill

    ran = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **kw: ran.append(a))
    with pytest.raises(ValueError, match="seeed"):
        pipeline.run_pipeline("smoke", data="synthetic", out=str(tmp_path), extra={"seeed": "1"})
    assert ran == []


def test_the_cli_names_an_unknown_parameter_and_exits_non_zero(tmp_path, capsys):
    status = cli.main(["run", "--data", "synthetic", "--out", str(tmp_path), "-p", "batchnorm", "True"])
    assert status == 2
    assert "batchnorm" in capsys.readouterr().err


def test_known_parameters_pass(tmp_path, monkeypatch):
    import papermill

    seen = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda nb, out, parameters, **kw: seen.append(parameters))
    assert pipeline.run_pipeline("smoke", data="synthetic", out=str(tmp_path), extra={"seed": "1"}) == 0
    assert {p.get("seed") for p in seen} == {1}


def test_comma_separated_widths_become_a_list():
    assert pipeline._coerce("64,128,256") == [64, 128, 256]
    assert pipeline._coerce("(64, 128, 256)") == pipeline._coerce("[64,128,256]") == [64, 128, 256]
    assert pipeline._coerce("0.5") == 0.5 and pipeline._coerce("True") is True


def test_profiles_and_model_names_live_in_config():
    from fer_utils import config

    assert pipeline.PROFILES is config.PROFILES and pipeline.MODELS is config.MODELS
    assert set(cli.build_parser()._subparsers._group_actions[0].choices["run"]._option_string_actions["--profile"]
               .choices) == set(config.PROFILES)



def test_the_readmes_profile_table_has_one_row_per_profile():
    import re

    from fer_utils import config

    readme = (config.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \|", readme, flags=re.MULTILINE)
    assert rows == list(config.PROFILES)

def test_importing_fer_utils_leaves_the_environment_alone():
    import os
    import subprocess
    import sys

    code = "import os; before = dict(os.environ); import fer_utils, fer_utils.config; print(before == dict(os.environ))"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "True"


def _make_n(*args: str) -> str:
    """What `make -n run ARGS` would run (nothing runs; a missing .venv only adds its set-up lines)."""
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("make") is None:
        pytest.skip("no `make` on PATH")
    done = subprocess.run(["make", "-n", "run", *args], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, timeout=60, check=True)
    return next(line for line in done.stdout.splitlines() if " -m fer_utils run " in line)


def test_make_run_passes_params_through_to_the_cli():
    # Breaks on a Makefile whose `run` has no way to pass `-p` (issue 28).
    line = _make_n("PROFILE=paper", "REUSE=reports", "DATA=/x/archive.zip", "PARAMS=-p seed 1 -p filters 64,128,256")
    assert line.split(" -m ", 1)[1].split() == ["fer_utils", "run", "--profile", "paper", "--data", "/x/archive.zip",
                                                "--reuse", "reports", "-p", "seed", "1", "-p", "filters",
                                                "64,128,256"]
    args = cli.build_parser().parse_args(line.split(" -m fer_utils ", 1)[1].split())
    assert args.param == [["seed", "1"], ["filters", "64,128,256"]] and args.reuse == "reports"


def test_make_run_without_params_passes_none():
    assert " -p " not in _make_n("PROFILE=smoke")


def test_make_run_without_a_profile_lets_the_cli_choose():
    assert " --profile" not in _make_n()


def test_run_without_a_profile_explores_the_published_models_when_fer2013_is_found(fer_files, monkeypatch, capsys):
    from fer_utils.config import PUBLISHED_DIR

    calls = []
    monkeypatch.setattr(pipeline, "run_pipeline", lambda **kwargs: calls.append(kwargs) or 0)
    assert cli.main(["run", "--data", str(fer_files.zip)]) == 0
    assert calls[0]["profile"] == pipeline.published_profile(PUBLISHED_DIR) == "paper"
    assert calls[0]["reuse"] == str(PUBLISHED_DIR)
    assert capsys.readouterr().out.startswith("FER2013 found: the course on the real data with the published models")


def test_run_without_a_profile_and_without_fer2013_is_the_smoke_run(monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "run_pipeline", lambda **kwargs: calls.append(kwargs) or 0)
    monkeypatch.delenv("FER2013_PATH", raising=False)
    assert cli.main(["run", "--data", "synthetic"]) == 0
    assert calls[0]["profile"] == "smoke" and calls[0]["reuse"] is None
