"""The committed notebooks: stripped of outputs, one `parameters` cell each, in the course's order."""

import json

import pytest

from fer_utils.pipeline import PROFILES, notebooks

NOTEBOOKS = notebooks()


COURSE = ("01_data_exploration.ipynb", "02_baseline_cnn.ipynb", "03_se_block_derivation.ipynb",
          "04_se_cnn_training.ipynb", "05_error_analysis.ipynb", "06_where_the_networks_look.ipynb",
          "07_try_it_yourself.ipynb", "08_beyond_the_paper.ipynb", "09_attention_compared.ipynb")


def test_the_nine_course_notebooks_are_there_in_order():
    assert tuple(nb.name for nb in NOTEBOOKS) == COURSE


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    assert dirty == [], f"{path.name}: cells {dirty} have outputs; strip them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_exactly_one_parameters_cell(path):
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_parameters_include_data_path_and_run_dir(path):
    import papermill as pm

    assert {"data_path", "run_dir", "per_class", "seed"} <= set(pm.inspect_notebook(str(path)))


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_setting_is_a_parameter_of_some_notebook(profile):
    """papermill passes a notebook only the parameters it declares: a misspelt setting would be dropped silently."""
    import papermill as pm

    declared = set().union(*(pm.inspect_notebook(str(path)) for path in NOTEBOOKS))
    assert set(PROFILES[profile]) - declared == set()


# Each notebook parameter that is a course setting, and the config constant that is its default.
CONFIG_DEFAULTS = {"epochs": "MAX_EPOCHS", "precision": "PRECISION", "schedule": "SCHEDULE", "protocol": "PROTOCOL",
                   "filters": "FILTERS", "dense_units": "DENSE_UNITS", "dense_dropout": "DENSE_DROPOUT",
                   "se_ratio": "SE_RATIO"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_parameter_defaults_are_the_config_defaults(path):
    import ast

    import papermill as pm

    from fer_utils import config

    declared = pm.inspect_notebook(str(path))
    for name, constant in CONFIG_DEFAULTS.items():
        if name in declared:
            assert ast.literal_eval(declared[name]["default"]) == getattr(config, constant), (path.name, name)


@pytest.mark.parametrize("name", ["02_baseline_cnn.ipynb", "04_se_cnn_training.ipynb"])
def test_training_notebooks_take_every_model_and_training_option(name):
    """Every option of `train`, as a parameter (05's exercise 2 asks for `protocol = "paper"` in 02 and 04)."""
    import papermill as pm

    wanted = {"epochs", "seed", "precision", "schedule", "protocol", "filters", "dense_units", "flip", "dense_dropout",
              "batch_norm", "reuse"}
    assert wanted - set(pm.inspect_notebook(str(next(p for p in NOTEBOOKS if p.name == name)))) == set()


@pytest.mark.parametrize("name", ["02_baseline_cnn.ipynb", "04_se_cnn_training.ipynb"])
def test_the_model_a_notebook_describes_is_built_with_the_options_it_trains_with(name):
    """The summarised model and the trained one get the same `model_options` (and the run is checked against it)."""
    cells = ["".join(c["source"]) for c in json.loads((NOTEBOOKS[0].parent / name).read_text())["cells"]]
    source = "\n".join(cells)
    for option in ("filters", "dense_units", "dense_dropout", "batch_norm", "flip"):
        assert f"{option}={option}" in source or f"{option}=tuple({option})" in source, option
    assert source.count("**model_options") >= 2
    assert 'run["run_info"]["parameters"] ==' in source


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name[:2] in ("01", "02", "03", "04", "05", "08")],
                         ids=lambda p: p.name)
def test_notebooks_announce_synthetic_data_once(path):
    """load_data(quiet=True) leaves the banner to one print(describe(data))."""
    source = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    assert source.count("load_data(") == source.count("quiet=True") == 1
    assert source.count("describe(data)") == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_has_a_worked_solution_below_the_list(path):
    """Each numbered item under '### Exercises' is answered below the list: by a Markdown '**Exercise n.**' (the
    Solutions sections of 01-07) or by a code cell opening with '# n.' (notebook 08)."""
    import re

    cells = [(c["cell_type"], "".join(c["source"])) for c in json.loads(path.read_text())["cells"]]
    at = next((i for i, (kind, text) in enumerate(cells) if kind == "markdown" and "### Exercises" in text), None)
    if at is None:
        pytest.skip("no exercises")
    asked = [int(n) for n in re.findall(r"^(\d+)\. ", cells[at][1].split("### Exercises", 1)[1], flags=re.M)]
    answered = {int(n) for kind, text in cells[at + 1:]
                for n in re.findall(r"\*\*Exercise (\d+)\.\*\*" if kind == "markdown" else r"\A# (\d+)\. ", text)}
    assert asked and asked == list(range(1, len(asked) + 1)), f"{path.name}: exercises numbered {asked}"
    assert sorted(answered) == asked, f"{path.name}: no worked solution for exercise(s) {sorted(set(asked) - answered)}"
