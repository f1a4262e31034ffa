"""Every profile's parameters reach every notebook as the values and types its `parameters` cell expects.

No notebook runs: each notebook is parameterized exactly as `python -m fer_utils run` does it (the pipeline's
parameters, papermill's own `parameterize_notebook`), and its `parameters` cell and papermill's injected cell are
executed as plain Python (they are literals). Breaks on a pipeline that hands papermill a tuple: papermill's Python
translator writes a profile's `filters=(32, 64, 128)` as the string "(32, 64, 128)", and notebook 02 failed on it
(issue 28).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from fer_utils import pipeline, publish
from fer_utils.config import PROFILES
from fer_utils.run_settings import reuse_differences

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = pipeline.notebooks()
REAL_PATH = "/data/fer2013/archive.zip"  # never opened: only whether a path is given matters here
OVERRIDES = {"filters": "64,128,256", "epochs": "5", "seed": "1", "flip": "True", "dense_dropout": "0.25",
             "per_class": "100", "precision": "float32", "models_dir": "None", "n_robustness": "300"}
"""`-p NAME VALUE` as a student types them (strings, as the CLI receives them)."""


def _cells(nb, tag: str) -> list[str]:
    return [c.source for c in nb.cells if tag in c.metadata.get("tags", [])]


def rendered(notebook: Path, params: dict) -> tuple[dict, dict, dict]:
    """(the parameters cell's defaults, what the notebook holds after papermill's injected cell, what was passed)."""
    passed = pipeline.papermill_parameters(notebook, params)
    nb = parameterize_notebook(load_notebook_node(str(notebook)), passed)
    (parameters,), (injected,) = _cells(nb, "parameters"), _cells(nb, "injected-parameters")
    defaults: dict = {}
    exec(parameters, defaults)  # noqa: S102 (the notebooks' own literals)
    received = dict(defaults)
    exec(injected, received)  # noqa: S102 (papermill's rendering of `passed`)
    return defaults, received, passed


def _plain(value):
    """Tuples as lists, for comparing a value with what a notebook holds."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def type_problem(default, value) -> str | None:
    """Why `value` is not of the kind the notebook's `default` is (None: it is)."""
    if default is None:  # data_path = None, per_class = None, ...: None or a plain value
        ok = value is None or isinstance(value, (str, int, float))
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, (list, tuple)):
        kinds = {type(v) for v in default} or {str}  # an empty default (augment = ()) holds names
        ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(type(v) in kinds for v in value)
    else:
        return f"default of an unexpected type {type(default).__name__}"
    return None if ok else f"{value!r} ({type(value).__name__}) where the default is {default!r}"


CASES = [(profile, data) for profile in PROFILES for data in ("synthetic", REAL_PATH)]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem[:2] for nb in NOTEBOOKS])
@pytest.mark.parametrize("profile, data, extra",
                         [(p, d, None) for p, d in CASES] + [("paper", REAL_PATH, OVERRIDES)],
                         ids=[f"{p}-{'synthetic' if d == 'synthetic' else 'real'}" for p, d in CASES]
                         + ["paper-real-overrides"])
def test_every_profile_reaches_every_notebook_with_the_types_it_expects(notebook, profile, data, extra, tmp_path):
    params = pipeline.run_parameters(profile, data, tmp_path, extra, notebook=notebook)  # with its smoke samples
    defaults, received, passed = rendered(notebook, params)
    assert passed, f"{notebook.name} receives no parameter"
    problems = []
    for name in passed:
        value = received[name]
        if _plain(value) != _plain(params[name]):
            problems.append(f"{name}: {params[name]!r} arrived as {value!r}")
        elif (why := type_problem(defaults[name], value)) is not None:
            problems.append(f"{name}: {why}")
    assert not problems, f"{notebook.name}, profile {profile}: " + "; ".join(problems)


def test_the_overrides_above_are_parameters_of_some_notebook():
    assert pipeline.unknown_parameters(OVERRIDES) == []


@pytest.mark.parametrize("notebook", [nb for nb in NOTEBOOKS if nb.name[:3] in publish.PUBLISHED_NOTEBOOKS],
                         ids=lambda nb: nb.stem[:2])
def test_publish_parameters_reach_their_notebooks_with_the_types_they_expect(notebook):
    params = {"run_dir": ".", "data_path": REAL_PATH, **publish.PUBLISHED_NOTEBOOKS[notebook.name[:3]]}
    defaults, received, passed = rendered(notebook, params)
    assert set(passed) == set(params)
    for name in passed:
        assert received[name] == params[name]
        assert type_problem(defaults[name], received[name]) is None, name


def test_a_tuple_would_arrive_as_a_string_without_the_conversion():
    """The test above can fail: papermill itself still turns a tuple into its repr (if this breaks, papermill learnt
    tuples, and `papermill_value` may go)."""
    from papermill.translators import PythonTranslator

    assert 'filters = "(32, 64, 128)"' in PythonTranslator.codify({"filters": (32, 64, 128)})
    assert "filters = [32, 64, 128]" in PythonTranslator.codify({"filters": pipeline.papermill_value((32, 64, 128))})


def test_papermill_value_refuses_what_papermill_would_write_as_a_string():
    import numpy as np

    assert pipeline.papermill_value({"a": (1, np.int64(2))}) == {"a": [1, 2]}
    assert type(pipeline.papermill_value(np.float32(0.5))) is float
    assert pipeline.papermill_value(Path("/x")) == "/x"
    with pytest.raises(TypeError, match="filters"):
        pipeline.papermill_value({1, 2}, "filters")


@pytest.mark.parametrize("profile, published", [("paper", "reports"), ("literal", "reports/v1")])
@pytest.mark.parametrize("kind, notebook", [("baseline", "02_baseline_cnn.ipynb"), ("se", "04_se_cnn_training.ipynb")])
def test_the_readmes_published_models_command_reuses_them(profile, published, kind, notebook, tmp_path):
    """`run --profile paper --reuse reports` (and literal with reports/v1): notebooks 02 and 04 ask `train_or_reuse`
    for exactly the published runs, so they reuse them instead of training. The keyword arguments are built as those
    notebooks build them (their model_options and train_or_reuse cells)."""
    _, ns, _ = rendered(pipeline.NOTEBOOK_DIR / notebook,
                        pipeline.run_parameters(profile, REAL_PATH, tmp_path))
    kwargs = dict(epochs=ns["epochs"], seed=ns["seed"], precision=ns["precision"], schedule=ns["schedule"],
                  protocol=ns["protocol"], filters=tuple(ns["filters"]), dense_units=ns["dense_units"],
                  dense_dropout=ns["dense_dropout"], batch_norm=ns["batch_norm"], flip=ns["flip"],
                  **({"se_ratio": ns["se_ratio"]} if kind == "se" else {}))
    info = json.loads((REPO / published / kind / "run_info.json").read_text())
    same_data = SimpleNamespace(synthetic=False, counts=lambda: info["counts"], source=REAL_PATH)
    assert reuse_differences(info, same_data, kind, **kwargs) == []
