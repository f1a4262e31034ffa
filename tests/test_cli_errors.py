"""One error boundary in the CLI (issue 29, item 4): every command, every known error, one line naming the file or
setting, a non-zero exit, no traceback; TensorFlow's start-up lines and the callbacks' messages kept out of the way.

Run in-process through `cli.main` (a traceback would be an exception out of it), except one run in a real process
for TensorFlow's C++ lines. Each test names the broken implementation it catches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from fer_utils import cli, commands, pipeline, training

REPO = Path(__file__).resolve().parent.parent


def _one_error_line(capsys, *names: str) -> str:
    """The command's stderr, checked to be one `error: ...` line naming each of `names`."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert all(str(name) in err for name in names), err
    return err


# --- train, evaluate --------------------------------------------------------------------------------------------


def test_train_with_missing_data_names_it_in_one_line(tmp_path, capsys):
    # Breaks if the DataError left main() (a traceback).
    missing = tmp_path / "missing.zip"
    assert cli.main(["train", "--model", "se", "--data", str(missing), "--out", str(tmp_path / "run")]) == 2
    _one_error_line(capsys, missing, "does not exist")


def test_train_with_several_bad_files_names_the_first_and_counts_the_rest(fer_tree, capsys):
    for name in ("Training_99990.jpg", "Training_99991.jpg"):
        (fer_tree / "train" / "angry" / name).write_bytes(b"garbage")
    assert cli.main(["train", "--model", "se", "--data", str(fer_tree), "--out", str(fer_tree / "run")]) == 2
    _one_error_line(capsys, "Training_9999", "1 more problem(s)", "data check")


def test_evaluate_a_file_that_is_not_a_model_names_it(tmp_path, capsys):
    # Breaks on keras.models.load_model called directly (its ValueError as a traceback).
    fake = tmp_path / "notes.keras"
    fake.write_text("not a model")
    assert cli.main(["evaluate", str(fake), "--data", "synthetic"]) == 2
    _one_error_line(capsys, fake, "not a Keras model")


def test_evaluate_a_model_that_is_not_ours_names_it(tmp_path, capsys):
    other = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)])
    other.save(tmp_path / "cifar.keras")
    assert cli.main(["evaluate", str(tmp_path / "cifar.keras"), "--data", "synthetic"]) == 2
    _one_error_line(capsys, tmp_path / "cifar.keras", "not one of this course's emotion models")


def test_evaluate_a_missing_model_names_it(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "none.keras")]) == 2
    _one_error_line(capsys, tmp_path / "none.keras")


# --- run ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def no_notebooks(monkeypatch):
    """papermill.execute_notebook recorded, not run."""
    import papermill

    ran = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: ran.append(a))
    return ran


def test_run_reuse_of_a_missing_folder_names_it_before_any_notebook_runs(tmp_path, capsys, no_notebooks):
    # Breaks if copy_runs' FileNotFoundError leaked (a traceback) or came after notebooks had started.
    missing = tmp_path / "no_reports"
    assert cli.main(["run", "--data", "synthetic", "--out", str(tmp_path / "run"), "--reuse", str(missing)]) == 2
    _one_error_line(capsys, missing, "--reuse")
    assert no_notebooks == []


def test_run_reuse_of_a_folder_without_runs_names_what_is_missing(tmp_path, capsys, no_notebooks):
    assert cli.main(["run", "--data", "synthetic", "--out", str(tmp_path / "run"), "--reuse", str(tmp_path)]) == 2
    _one_error_line(capsys, tmp_path / "baseline" / "model.keras", "not a folder of two finished runs")


def test_run_with_missing_data_names_it_before_any_notebook_runs(tmp_path, capsys, no_notebooks):
    # Breaks if notebook 01 were started to fail on it in a kernel.
    assert cli.main(["run", "--data", str(tmp_path / "none.zip"), "--out", str(tmp_path / "run")]) == 2
    _one_error_line(capsys, tmp_path / "none.zip", "--data")
    assert no_notebooks == []


def test_run_lets_an_unexpected_value_error_show_its_traceback(tmp_path, monkeypatch):
    # Only an unknown -p NAME is a usage error; any other ValueError out of the pipeline is a bug to be seen whole.
    # Breaks on `except ValueError` around run_pipeline (a bug reported as if the user had mistyped).
    def broken(**kwargs):
        raise ValueError("a bug inside the pipeline")

    monkeypatch.setattr(pipeline, "run_pipeline", broken)
    with pytest.raises(ValueError, match="a bug inside"):
        cli.main(["run", "--data", "synthetic", "--out", str(tmp_path)])


def test_publish_of_a_missing_folder_names_it_and_writes_nothing(tmp_path, capsys):
    assert cli.main(["publish", str(tmp_path / "runs"), "--out", str(tmp_path / "published")]) == 2
    _one_error_line(capsys, tmp_path / "runs")
    assert not (tmp_path / "published").exists()


def test_publish_of_a_folder_without_runs_names_what_is_missing(tmp_path, capsys):
    assert cli.main(["publish", str(tmp_path), "--out", str(tmp_path / "published")]) == 2
    _one_error_line(capsys, tmp_path / "baseline" / "model.keras", "not a folder of two finished runs")


# --- data check -----------------------------------------------------------------------------------------------------


def test_data_check_without_data_says_none_was_found_where_it_looked_and_fails(no_data_anywhere, capsys):
    # Breaks on checking the synthetic stand-in instead ("0 problem(s)", exit 0, and its banner printed twice).
    assert cli.main(["data", "check"]) == 1
    captured = capsys.readouterr()
    assert "no FER2013 found" in captured.out and str(no_data_anywhere / "archive.zip") in captured.out
    assert "FER2013_PATH" in captured.out and "0 problem(s)" not in captured.out
    assert "!!!!" not in captured.out + captured.err


def test_data_check_json_without_data_reports_the_problem(no_data_anywhere, capsys):
    assert cli.main(["data", "check", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["source"] is None and report["counts"] is None
    assert len(report["problems"]) == 1 and "no FER2013 found" in report["problems"][0]


def test_data_check_of_the_synthetic_set_by_name_passes_and_says_so_once(capsys):
    assert cli.main(["data", "check", "synthetic"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("SYNTHETIC") == 1 and "0 problem(s)" in captured.out and "!!!!" not in captured.err


# --- calibrate ----------------------------------------------------------------------------------------------------


def test_calibrate_a_missing_run_folder_names_it(tmp_path, capsys):
    assert cli.main(["calibrate", str(tmp_path / "none")]) == 2
    _one_error_line(capsys, tmp_path / "none", "no such run folder")


def test_calibrate_a_folder_without_a_model_names_it(tmp_path, capsys):
    assert cli.main(["calibrate", str(tmp_path)]) == 2
    _one_error_line(capsys, tmp_path, "no model.keras")


def test_calibrate_without_fer2013_says_where_it_looked(tmp_path, capsys, no_data_anywhere):
    (tmp_path / "model.keras").write_bytes(b"")
    assert cli.main(["calibrate", str(tmp_path)]) == 2
    _one_error_line(capsys, "calibration needs FER2013", "no FER2013 found", no_data_anywhere)
    assert cli.main(["calibrate", str(tmp_path), "--data", "synthetic"]) == 2
    _one_error_line(capsys, "synthetic stand-in")


def test_calibrate_a_file_that_is_not_a_model_names_it(tmp_path, capsys, fer_files):
    # Breaks on keras.models.load_model inside calibrate_run reached with a broken file (a traceback).
    (tmp_path / "model.keras").write_text("not a model")
    assert cli.main(["calibrate", str(tmp_path), "--data", str(fer_files.zip)]) == 2
    _one_error_line(capsys, tmp_path / "model.keras", "not a Keras model")
    assert not (tmp_path / "calibration.json").exists()


# --- the boundary itself --------------------------------------------------------------------------------------------


def test_an_unexpected_error_still_shows_its_traceback(monkeypatch, tmp_path):
    # Breaks if the boundary swallowed every exception (a bug would look like a user error, and hide where it is).
    def bug(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(commands, "load_data_once", bug)
    with pytest.raises(KeyError):
        cli.main(["train", "--model", "se", "--out", str(tmp_path)])


@pytest.mark.parametrize("err, line", [
    (FileNotFoundError(2, "No such file or directory", "/x/y"), "/x/y: No such file or directory"),
    (FileNotFoundError("not a folder of two finished runs; missing:\n  /r/a\n  /r/b"),
     "not a folder of two finished runs; missing: /r/a, /r/b")])
def test_error_lines_name_the_file_on_one_line(err, line):
    assert cli.error_line(err) == line


def test_callbacks_say_nothing_when_fit_is_silent(tmp_path):
    # Breaks on EarlyStopping(verbose=1) whatever fit's verbosity ("Restoring model weights..." under verbose=0).
    kinds = (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau)
    quiet = [cb for cb in training.paper_callbacks(tmp_path, verbose=0) if isinstance(cb, kinds)]
    loud = [cb for cb in training.paper_callbacks(tmp_path) if isinstance(cb, kinds)]
    assert len(quiet) == len(loud) == 2
    assert all(cb.verbose == 0 for cb in quiet) and all(cb.verbose == 1 for cb in loud)


def test_a_real_cli_process_prints_the_error_and_nothing_of_tensorflows_start_up(tmp_path):
    # Breaks if TensorFlow's C++ lines ("Could not find cuda drivers...", "oneDNN custom operations...") reached
    # stderr: TF_CPP_MIN_LOG_LEVEL alone does not stop them in TensorFlow 2.21.
    fake = tmp_path / "not a model.keras"
    fake.write_text("text")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "fer_utils", "evaluate", str(fake), "--data", "synthetic"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {fake}: not a Keras model file (a .keras model is a zip "
                                                "archive; this is not one)"], proc.stderr
    assert proc.stdout == ""
