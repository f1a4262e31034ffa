"""The committed notebooks: stripped of outputs, one `parameters` cell each, in the course's order."""

import json

import pytest

from fer_utils.pipeline import PROFILES, notebooks

NOTEBOOKS = notebooks()


def test_the_five_course_notebooks_are_there_in_order():
    assert [nb.name[:3] for nb in NOTEBOOKS] == ["01_", "02_", "03_", "04_", "05_"]


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
