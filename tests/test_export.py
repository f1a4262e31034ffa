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


@pytest.mark.parametrize("module, notebooks", [
    ("models.py", ["02_baseline_cnn.ipynb", "03_se_block_derivation.ipynb", "04_se_cnn_training.ipynb"]),
    ("training.py", ["04_se_cnn_training.ipynb"]),
    ("augment.py", ["08_beyond_the_paper.ipynb"]),
    ("attention.py", ["09_attention_compared.ipynb"]),
])
def test_each_module_has_a_region_for_exactly_the_notebooks_the_docs_name(module, notebooks):
    # As fer_utils.export's docstring and the README say. Breaks if a region were lost (its cells would then be
    # code the package no longer runs) or a notebook's cells were exported into another module.
    text = (export.PACKAGE_DIR / module).read_text()
    present = [nb.name for nb in sorted(export.NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
               if export.begin_marker(nb.name, module.removesuffix(".py")) in text]
    assert present == notebooks


def test_notebook_04_shows_the_callbacks_list_and_the_fit_call_that_training_runs():
    cells = export.saved_cells(export.NOTEBOOK_DIR / "04_se_cnn_training.ipynb")["training"]
    assert any(cell.startswith("def paper_callbacks(") for cell in cells)
    assert any(cell.startswith("def fit_model(") and "model.fit(" in cell for cell in cells)


def test_augment_py_is_notebook_08s_augmentation_cells():
    cells = export.saved_cells(export.NOTEBOOK_DIR / "08_beyond_the_paper.ipynb")["augment"]
    text = (export.PACKAGE_DIR / "augment.py").read_text()
    for name in ("class RandomGamma(", "class RandomDegradation(", "def resize_matrix(", "def dct_matrix(",
                 "JPEG_LUMINANCE = ", "def augmentation(", "def canonical("):
        assert sum(name in cell for cell in cells) == 1, name
    assert text.index("from .config import") < text.index(export.begin_marker("08_beyond_the_paper.ipynb", "augment"))


NOTEBOOK_EDITS = {  # id: (notebook, text of a saved cell, its replacement, the module that cell is exported into)
    "02-models": ("02_baseline_cnn.ipynb", 'padding="same"', 'padding="valid"', "models.py"),
    "03-models": ("03_se_block_derivation.ipynb", 'name=f"{name}_squeeze"', 'name=f"{name}_pool"', "models.py"),
    "04-callbacks": ("04_se_cnn_training.ipynb", "save_best_only=True", "save_best_only=False", "training.py"),
    "04-fit": ("04_se_cnn_training.ipynb", "epochs=epochs,", "epochs=1,", "training.py"),
    "08-augment": ("08_beyond_the_paper.ipynb", "5000.0 / q", "5000.0 / (q + 1)", "augment.py"),
}


@pytest.mark.parametrize("notebook, old, new, module", list(NOTEBOOK_EDITS.values()), ids=list(NOTEBOOK_EDITS))
def test_a_notebook_edit_alone_is_caught(copies, notebook, old, new, module):
    # Breaks if `check` compared a region with the wrong notebook's cells, or missed an edit of this module's cells.
    notebooks, package = copies
    edit_first_saved_cell(notebooks / notebook, old, new)
    diffs = export.check(package, notebooks)
    assert len(diffs) == 1 and module in diffs[0] and new in diffs[0]


@pytest.mark.parametrize("notebook, old, new, module", list(NOTEBOOK_EDITS.values()), ids=list(NOTEBOOK_EDITS))
def test_export_writes_the_notebook_edit_into_its_module_only(copies, notebook, old, new, module):
    notebooks, package = copies
    edit_first_saved_cell(notebooks / notebook, old, new)
    assert export.export(package, notebooks) == [package / module]
    assert new in (package / module).read_text()
    assert export.check(package, notebooks) == []


@pytest.mark.parametrize("module, notebook, old, new", [
    ("models.py", "03_se_block_derivation.ipynb", 'activation="sigmoid"', 'activation="tanh"'),
    ("training.py", "04_se_cnn_training.ipynb", "patience=patience,", "patience=2 * patience,"),
])
def test_a_package_edit_inside_a_region_alone_is_caught(copies, module, notebook, old, new):
    # The edit is made in `notebook`'s region of `module`, as a student editing the package instead would.
    notebooks, package = copies
    path = package / module
    text = path.read_text()
    region = text.index(export.begin_marker(notebook, module.removesuffix(".py")))
    edited = text[:region] + text[region:].replace(old, new, 1)
    assert edited != text
    path.write_text(edited)
    diffs = export.check(package, notebooks)
    assert len(diffs) == 1 and module in diffs[0]


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
