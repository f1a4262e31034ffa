"""The main job: `python -m fer_utils run` executes every course notebook with papermill (smoke profile)."""

import json
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from fer_utils import pipeline
from fer_utils.config import CLASSES

pytestmark = pytest.mark.slow
REAL = os.environ.get("FER2013_PATH")


def run_smoke(tmp_path_factory, data: str):
    out = tmp_path_factory.mktemp(f"smoke_{'real' if data != 'synthetic' else 'synthetic'}")
    return pipeline.run_pipeline("smoke", data=data, out=str(out)), out


def assert_complete_run(out):
    """Every notebook executed without an error output, results.md written, figures of every notebook saved."""
    executed = sorted(p.name for p in out.glob("*.ipynb"))
    assert executed == [nb.name for nb in pipeline.notebooks()]
    for name in executed:
        outputs = [o for c in nbformat.read(out / name, 4).cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"], name
    assert (out / "results.md").stat().st_size > 0
    for prefix in ("01", "02", "03", "04", "05", "06", "08"):
        pngs = list((out / "figures").glob(f"{prefix}_*.png"))
        assert pngs, f"notebook {prefix} saved no figure"
        assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    return run_smoke(tmp_path_factory, "synthetic")


def test_smoke_run_on_synthetic_data_succeeds_and_writes_everything(synthetic_run):
    status, out = synthetic_run
    assert status == 0
    assert_complete_run(out)
    assert "SYNTHETIC" in (out / "results.md").read_text()


@pytest.mark.parametrize("model", ["baseline", "se"])
def test_smoke_run_models_learn_synthetic_faces_well_above_chance(synthetic_run, model):
    _, out = synthetic_run
    metrics = json.loads((out / model / "metrics.json").read_text())
    counts = json.loads((out / model / "run_info.json").read_text())["counts"]["test_all"]
    majority = max(counts.values()) / sum(counts.values())  # always answering the largest class
    assert metrics["test_all_accuracy"] > majority + 0.2


@pytest.mark.skipif(not REAL, reason="FER2013_PATH is not set: no real FER2013 to run the notebooks on")
def test_smoke_run_on_real_fer2013_succeeds_and_writes_everything(tmp_path_factory):
    status, out = run_smoke(tmp_path_factory, REAL)
    assert status == 0
    assert_complete_run(out)
    info = json.loads((out / "se" / "run_info.json").read_text())
    assert not info["synthetic_data"]
    assert set(info["counts"]["train"]) == set(CLASSES)


def test_failing_notebook_is_named_with_its_cell_and_error(tmp_path, monkeypatch, capsys):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    nb = new_notebook(cells=[new_code_cell("data_path = None", metadata={"tags": ["parameters"]}),
                             new_code_cell("raise ValueError('the planted failure')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, nb_dir / "01_broken.ipynb")
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", nb_dir)
    status = pipeline.run_pipeline("smoke", data="synthetic", out=str(tmp_path / "run"))
    err = capsys.readouterr().err
    assert status == 1
    assert "01_broken.ipynb" in err and "ValueError: the planted failure" in err and "cell" in err
    assert (tmp_path / "run" / "01_broken.ipynb").is_file()


def test_a_relative_data_path_reaches_the_notebooks_as_an_absolute_path(tmp_path, monkeypatch):
    import papermill

    seen = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda nb, out, parameters, **kw: seen.append(parameters))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "archive.zip").write_bytes(b"")
    assert pipeline.run_pipeline("smoke", data="archive.zip", out=str(tmp_path / "run")) == 0
    assert {p["data_path"] for p in seen} == {str(tmp_path / "archive.zip")}
