"""One source of truth: the notebooks' `#@save` cells are exactly the package's code (fer_utils.export)."""

from __future__ import annotations

import json
import shutil

import pytest

from fer_utils import export


@pytest.fixture
def copies(tmp_path):
    """Private copies of the notebooks and of the package modules that hold notebook regions."""
    notebooks, package = tmp_path / "notebooks", tmp_path / "fer_utils"
    shutil.copytree(export.NOTEBOOK_DIR, notebooks)
    package.mkdir()
    for module in export.modules():
        shutil.copy(module, package / module.name)
    return notebooks, package


def edit_first_saved_cell(notebook, old: str, new: str) -> None:
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if source.startswith(export.MARK) and old in source:
            cell["source"] = source.replace(old, new, 1)
            break
    else:
        raise AssertionError(f"no saved cell with {old!r}")
    notebook.write_text(json.dumps(nb))


def test_the_package_holds_exactly_the_notebooks_saved_cells():
    assert export.check() == [], "run `python -m fer_utils.export` (the notebooks and fer_utils differ)"


def test_models_py_has_a_region_for_notebooks_02_03_and_04():
    text = (export.PACKAGE_DIR / "models.py").read_text()
    for name in ("02_baseline_cnn.ipynb", "03_se_block_derivation.ipynb", "04_se_cnn_training.ipynb"):
        assert export.begin_marker(name, "models") in text


def test_a_notebook_edit_alone_is_caught(copies):
    notebooks, package = copies
    edit_first_saved_cell(notebooks / "02_baseline_cnn.ipynb", 'padding="same"', 'padding="valid"')
    diffs = export.check(package, notebooks)
    assert len(diffs) == 1 and 'padding="valid"' in diffs[0]


def test_a_package_edit_alone_is_caught(copies):
    notebooks, package = copies
    models = package / "models.py"
    models.write_text(models.read_text().replace('activation="sigmoid"', 'activation="tanh"', 1))
    assert export.check(package, notebooks) != []


def test_export_writes_the_notebook_edit_into_the_package(copies):
    notebooks, package = copies
    edit_first_saved_cell(notebooks / "03_se_block_derivation.ipynb", 'name=f"{name}_squeeze"', 'name=f"{name}_pool"')
    assert export.export(package, notebooks) == [package / "models.py"]
    assert 'name=f"{name}_pool"' in (package / "models.py").read_text()
    assert export.check(package, notebooks) == []


def test_training_py_has_a_region_for_notebook_04():
    text = (export.PACKAGE_DIR / "training.py").read_text()
    assert export.begin_marker("04_se_cnn_training.ipynb", "training") in text
    assert export.begin_marker("02_baseline_cnn.ipynb", "training") not in text


def test_notebook_04_shows_the_callbacks_list_and_the_fit_call_that_training_runs():
    cells = export.saved_cells(export.NOTEBOOK_DIR / "04_se_cnn_training.ipynb")["training"]
    assert any(cell.startswith("def paper_callbacks(") for cell in cells)
    assert any(cell.startswith("def fit_model(") and "model.fit(" in cell for cell in cells)


def test_a_notebook_04_callbacks_edit_alone_is_caught(copies):
    notebooks, package = copies
    edit_first_saved_cell(notebooks / "04_se_cnn_training.ipynb", "save_best_only=True", "save_best_only=False")
    diffs = export.check(package, notebooks)
    assert len(diffs) == 1 and "training.py" in diffs[0] and "save_best_only=False" in diffs[0]


def test_a_notebook_04_fit_edit_alone_is_caught(copies):
    notebooks, package = copies
    edit_first_saved_cell(notebooks / "04_se_cnn_training.ipynb", "epochs=epochs,", "epochs=1,")
    diffs = export.check(package, notebooks)
    assert len(diffs) == 1 and "training.py" in diffs[0] and "epochs=1," in diffs[0]


def test_a_training_py_edit_alone_is_caught(copies):
    notebooks, package = copies
    training = package / "training.py"
    text = training.read_text()
    region = text.index(export.begin_marker("04_se_cnn_training.ipynb", "training"))
    edited = text[:region] + text[region:].replace("patience=patience,", "patience=2 * patience,", 1)
    assert edited != text
    training.write_text(edited)
    diffs = export.check(package, notebooks)
    assert len(diffs) == 1 and "training.py" in diffs[0]


def test_export_writes_the_notebook_04_edit_into_training_py(copies):
    notebooks, package = copies
    edit_first_saved_cell(notebooks / "04_se_cnn_training.ipynb", "mode=\"max\", patience=patience",
                          "mode=\"max\", patience=patience + 1")
    assert export.export(package, notebooks) == [package / "training.py"]
    assert "patience=patience + 1" in (package / "training.py").read_text()
    assert export.check(package, notebooks) == []


def test_augment_py_is_notebook_08s_augmentation_cells():
    cells = export.saved_cells(export.NOTEBOOK_DIR / "08_beyond_the_paper.ipynb")["augment"]
    text = (export.PACKAGE_DIR / "augment.py").read_text()
    assert export.begin_marker("08_beyond_the_paper.ipynb", "augment") in text
    for name in ("class RandomGamma(", "class RandomDegradation(", "def resize_matrix(", "def dct_matrix(",
                 "JPEG_LUMINANCE = ", "def augmentation(", "def canonical("):
        assert sum(name in cell for cell in cells) == 1, name
    assert text.index("from .config import") < text.index(export.begin_marker("08_beyond_the_paper.ipynb", "augment"))


def test_a_notebook_08_augmentation_edit_alone_is_caught(copies):
    notebooks, package = copies
    edit_first_saved_cell(notebooks / "08_beyond_the_paper.ipynb", "5000.0 / q", "5000.0 / (q + 1)")
    diffs = export.check(package, notebooks)
    assert len(diffs) == 1 and "augment.py" in diffs[0] and "5000.0 / (q + 1)" in diffs[0]


def test_a_cell_saved_to_an_unknown_module_is_an_error(copies):
    notebooks, _ = copies
    edit_first_saved_cell(notebooks / "04_se_cnn_training.ipynb", "#@save training", "#@save trainig")
    with pytest.raises(ValueError, match="names trainig; expected one of models, training"):
        export.saved_cells(notebooks / "04_se_cnn_training.ipynb")


def test_a_saved_cell_without_a_region_is_an_error(copies):
    notebooks, package = copies
    models = package / "models.py"
    marker = export.begin_marker("04_se_cnn_training.ipynb", "models")
    end = export.end_marker("04_se_cnn_training.ipynb")
    text = models.read_text()
    models.write_text(text[:text.index(marker)] + text[text.index(end) + len(end):])
    with pytest.raises(ValueError, match="no region for 04_se_cnn_training"):
        export.exported_text(models, notebooks)
