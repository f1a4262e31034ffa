"""What keeps the default main job (the smoke run on the synthetic set) short on a loaded 2-core machine (issue 28):
smaller samples in the analysis notebooks there only, and a kernel start timeout above papermill's default.

No notebook runs: papermill.execute_notebook is recorded, not called.
"""

from __future__ import annotations

import ast
import inspect

import pytest

from fer_utils import pipeline
from fer_utils.config import PROFILES, SYNTHETIC_SMOKE_NOTEBOOKS

REAL_PATH = "/data/fer2013/archive.zip"  # never opened: only whether a path is given matters here
NOTEBOOKS = pipeline.notebooks()
OVERRIDDEN = [(prefix, next(nb for nb in NOTEBOOKS if nb.name.startswith(prefix)))
              for prefix in SYNTHETIC_SMOKE_NOTEBOOKS]


@pytest.mark.parametrize("prefix", SYNTHETIC_SMOKE_NOTEBOOKS)
def test_each_smoke_sample_names_one_notebook_and_parameters_it_declares(prefix):
    # Breaks on a renamed notebook or parameter, which papermill_parameters would otherwise drop silently.
    matches = [nb for nb in NOTEBOOKS if nb.name.startswith(prefix)]
    assert len(matches) == 1, f"{prefix!r} matches {[nb.name for nb in matches]}"
    declared = pipeline.notebook_parameters(matches)[matches[0].name]
    assert set(SYNTHETIC_SMOKE_NOTEBOOKS[prefix]) <= declared


@pytest.mark.parametrize("prefix, notebook", OVERRIDDEN, ids=[p for p, _ in OVERRIDDEN])
def test_each_smoke_sample_is_smaller_than_the_notebooks_default(prefix, notebook):
    import papermill as pm

    defaults = {name: ast.literal_eval(p["default"]) for name, p in pm.inspect_notebook(str(notebook)).items()}
    for name, value in SYNTHETIC_SMOKE_NOTEBOOKS[prefix].items():
        assert 0 < value < defaults[name], name


def test_the_smoke_run_on_synthetic_data_passes_each_notebook_its_smaller_samples(tmp_path, monkeypatch):
    # The whole path: run_pipeline -> execute_notebook -> what papermill receives, notebook by notebook.
    import papermill

    seen = {}
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda nb, out, parameters, **kw: seen.setdefault(nb.rsplit("/", 1)[-1], parameters))
    assert pipeline.run_pipeline("smoke", data="synthetic", out=str(tmp_path)) == 0
    for prefix, notebook in OVERRIDDEN:
        samples = SYNTHETIC_SMOKE_NOTEBOOKS[prefix]
        assert {k: seen[notebook.name][k] for k in samples} == samples, notebook.name


@pytest.mark.parametrize("profile, data", [("smoke", REAL_PATH)] + [(p, d) for p in PROFILES if p != "smoke"
                                                                    for d in ("synthetic", REAL_PATH)])
def test_other_profiles_and_real_data_keep_the_notebooks_defaults(profile, data, tmp_path):
    for prefix, notebook in OVERRIDDEN:
        params = pipeline.run_parameters(profile, data, tmp_path, notebook=notebook)
        assert not set(SYNTHETIC_SMOKE_NOTEBOOKS[prefix]) & set(params), (profile, notebook.name)


def test_a_p_value_wins_over_a_smoke_sample(tmp_path):
    name = "n_robustness"
    overridden = [nb for prefix, nb in OVERRIDDEN if name in SYNTHETIC_SMOKE_NOTEBOOKS[prefix]]
    assert overridden
    for notebook in overridden:
        params = pipeline.run_parameters("smoke", "synthetic", tmp_path, {name: "300"}, notebook=notebook)
        assert params[name] == 300


def test_papermill_waits_longer_than_its_default_for_the_kernel(tmp_path, monkeypatch):
    # Breaks if execute_notebook stops passing start_timeout (the kernel took over 60 s to start on a loaded machine).
    import papermill

    default = inspect.signature(papermill.execute_notebook).parameters["start_timeout"].default
    calls = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **kw: calls.append(kw))
    assert pipeline.execute_notebook(NOTEBOOKS[0], tmp_path / NOTEBOOKS[0].name, {}, None)
    assert calls[0]["start_timeout"] == pipeline.KERNEL_START_TIMEOUT > default
