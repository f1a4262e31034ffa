"""The loader's and the CLI's error branches that tests/test_data.py and tests/test_run_params.py leave out.

An image tree (folder or zip) with a misplaced or foreign file, more than 20 problems, no splits or two wrapper
folders is a DataError naming each file and problem (a bad fer2013.csv is tests/test_data.py's); `-p` values reach
the notebooks with the types papermill would give them; an unknown profile stops before anything runs. Each test
names what it catches.
"""

from __future__ import annotations

import shutil

import pytest
from conftest import image_bytes, zip_folder

from fer_utils import cli, pipeline
from fer_utils.data import DataError, read_fer2013

# --- the image tree (folder and zip) ---------------------------------------------------------------------------


def _jpeg(root):
    return min((root / "train" / "happy").iterdir()).read_bytes()


def too_deep(root):
    rel = "train/happy/extra/Training_99980.jpg"
    (root / rel).parent.mkdir(parents=True)
    (root / rel).write_bytes(_jpeg(root))
    return rel, "not of the form train|test/<class>/<image>"


def too_shallow(root):
    rel = "train/Training_99981.jpg"
    (root / rel).write_bytes(_jpeg(root))
    return rel, "not of the form train|test/<class>/<image>"


def stray_top_level_folder(root):
    rel = "validation/happy/PublicTest_99982.jpg"
    (root / rel).parent.mkdir(parents=True)
    (root / rel).write_bytes(_jpeg(root))
    return rel, "not of the form train|test/<class>/<image>"


def non_image_file(root):
    rel = "train/happy/notes.txt"
    (root / rel).write_text("labels checked by hand")
    return rel, "not an image file (.jpg, .jpeg, .png)"


@pytest.mark.parametrize("form", ["folder", "zip"])
@pytest.mark.parametrize("spoil", [too_deep, too_shallow, stray_top_level_folder, non_image_file],
                         ids=lambda f: f.__name__)
def test_a_misplaced_or_foreign_file_is_named(fer_tree, tmp_path, form, spoil):
    # Breaks if such files were skipped silently (the data would load, one image short) or decoded as images.
    offending, problem = spoil(fer_tree)
    path = fer_tree if form == "folder" else zip_folder(fer_tree, tmp_path / "broken.zip")
    with pytest.raises(DataError) as raised:
        read_fer2013(path)
    (only,) = raised.value.problems
    assert only == f"{path}:{offending}: {problem}"


def test_a_png_is_read_like_a_jpeg(fer_tree, fer_files):
    # The other side of non_image_file: .png is an image suffix, and its pixels arrive exactly (lossless).
    import numpy as np

    record = next(r for r in fer_files.records if r.split == "train" and r.cls == "sad")
    (fer_tree / "train" / "sad" / "Training_99983.png").write_bytes(image_bytes(record.image, fmt="PNG"))
    data = read_fer2013(fer_tree)
    (i,) = np.flatnonzero(data.file_ids == "train/sad/Training_99983.png")
    np.testing.assert_array_equal(data.images[i, ..., 0], record.image)


def test_more_than_20_problems_are_all_kept_and_the_message_shows_20(fer_tree):
    # Breaks if the list were cut to what the message shows (problems lost), or the message listed all of them.
    for k in range(25):
        (fer_tree / "train" / "angry" / f"Training_{99900 + k}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError) as raised:
        read_fer2013(fer_tree)
    problems, message = raised.value.problems, str(raised.value)
    assert len(problems) == 25 and all("unreadable or corrupt" in p for p in problems)
    assert message.startswith("25 problem(s) in the data:")
    assert sum(p in message for p in problems) == 20
    assert message.endswith("... and 5 more")


def test_exactly_20_problems_are_all_shown(fer_tree):
    for k in range(20):
        (fer_tree / "train" / "angry" / f"Training_{99900 + k}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError) as raised:
        read_fer2013(fer_tree)
    assert "more" not in str(raised.value) and all(p in str(raised.value) for p in raised.value.problems)


def test_an_empty_folder_names_both_missing_splits(tmp_path):
    empty = tmp_path / "fer"
    empty.mkdir()
    with pytest.raises(DataError) as raised:
        read_fer2013(empty)
    assert raised.value.problems == [f"{empty}: no train/ folder", f"{empty}: no test/ folder"]


def test_a_zip_with_two_wrapper_folders_is_not_guessed(fer_files, tmp_path):
    # One wrapper folder is stripped (test_data.py); two are ambiguous and must be reported, not half-read.
    tree = tmp_path / "tree"
    shutil.copytree(fer_files.folder, tree / "a")
    shutil.copytree(fer_files.folder, tree / "b")
    archive = zip_folder(tree, tmp_path / "two.zip")
    with pytest.raises(DataError) as raised:
        read_fer2013(archive)
    assert any("a/train/" in p and "not of the form" in p for p in raised.value.problems)


# --- `run -p NAME VALUE` and --profile ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("-2", -2), ("0.25", 0.25), ("1e-3", 0.001), ("None", None), ("none", None), ("True", True),
    ("False", False), ("8,16,32", [8, 16, 32]), ("1, 2.5", [1, 2.5]), ("float32", "float32"), ("", ""),
])
def test_a_p_value_is_coerced_as_papermill_would(text, value):
    # Breaks if "3" became 3.0 (a float epoch count: range() fails in the notebook) or "False" stayed a true string.
    coerced = pipeline._coerce(text)
    assert coerced == value and type(coerced) is type(value)


@pytest.fixture
def notebook_calls(monkeypatch):
    """papermill.execute_notebook recorded, not run: the parameters each notebook would get."""
    import papermill

    calls = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda nb, out, parameters, **kw: calls.append(parameters))
    return calls


def test_p_values_reach_every_notebook_coerced(tmp_path, notebook_calls):
    # The whole path: argparse -> commands.cmd_run -> run_pipeline -> each notebook's parameters (those it declares).
    status = cli.main(["run", "--data", "synthetic", "--out", str(tmp_path), "-p", "seed", "3",
                       "-p", "per_class", "None", "-p", "filters", "8,16,32", "-p", "dense_dropout", "0.25",
                       "-p", "precision", "float32"])
    assert status == 0 and len(notebook_calls) == len(pipeline.notebooks())
    assert all(p["seed"] == 3 and type(p["seed"]) is int for p in notebook_calls)
    assert all(p["per_class"] is None for p in notebook_calls if "per_class" in p)
    for name, value in (("filters", [8, 16, 32]), ("dense_dropout", 0.25), ("precision", "float32")):
        got = [p[name] for p in notebook_calls if name in p]
        assert got and all(v == value for v in got), name


def test_a_later_p_of_the_same_name_wins(tmp_path, notebook_calls):
    assert cli.main(["run", "--data", "synthetic", "--out", str(tmp_path), "-p", "seed", "1", "-p", "seed", "2"]) == 0
    assert {p["seed"] for p in notebook_calls} == {2}


def test_an_unknown_profile_is_rejected_before_anything_runs(tmp_path, notebook_calls):
    # Breaks if a misspelt profile fell back to the default one (a long run of the wrong kind).
    with pytest.raises(ValueError, match=r"unknown profile 'fast'.*paper.*quick.*smoke"):
        pipeline.run_pipeline("fast", data="synthetic", out=str(tmp_path / "run"))
    assert notebook_calls == [] and not (tmp_path / "run").exists()


def test_the_cli_rejects_an_unknown_profile_with_a_usage_error(tmp_path, notebook_calls, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", "--profile", "fast", "--out", str(tmp_path / "run")])
    assert exited.value.code == 2
    assert "invalid choice: 'fast'" in capsys.readouterr().err
    assert notebook_calls == []
