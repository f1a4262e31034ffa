"""A resumed run never mixes two sets of settings (issue 29, item 1).

`train` records every training setting, the data's fingerprint and the command in the backup when a run starts, and
compares them when the run is resumed: a different setting is refused in one line naming it (recorded vs asked) and
the ways out; the same settings resume; `fresh=True` (`--fresh`) starts afresh. The interrupted run is made
in-process, as in tests/test_crash_safety.py: a callback after the paper's sends SIGINT once epoch 1 is backed up.
Each test names the broken implementation it catches.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import sigint_after_epoch
from fer_utils import cli, commands, run_settings, training
from fer_utils.callbacks import TrainingInterrupted
from fer_utils.config import BATCH_SIZE, EARLY_STOPPING_PATIENCE, LEARNING_RATE, SE_RATIO
from fer_utils.run_settings import ResumeConflict
from fer_utils.runfolder import BACKUP, HISTORY, SETTINGS
from fer_utils.training import train

TINY = dict(epochs=2, seed=0, precision="float32", verbose=0, filters=(4, 8, 16), dense_units=8)



@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, tiny_synthetic):
    """A run folder (seed 0, protocol clean) stopped by Ctrl-C after epoch 1 of 2."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    real = training.paper_callbacks
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "paper_callbacks", lambda *a, **k: [*real(*a, **k), sigint_after_epoch(1)])
        with pytest.raises(TrainingInterrupted):
            train("se", tiny_synthetic, out, **TINY)
    return out


@pytest.fixture
def run_copy(interrupted, tmp_path) -> Path:
    """A private copy of the interrupted run folder."""
    return Path(shutil.copytree(interrupted, tmp_path / "run"))


def _refusal(out: Path, data, **changes) -> ResumeConflict:
    with pytest.raises(ResumeConflict) as refused:
        train("se", data, out, **{**TINY, **changes})
    return refused.value


@pytest.mark.slow
def test_the_backup_records_every_setting_the_data_and_the_command(interrupted, tiny_synthetic):
    # Breaks if the settings were kept beside the backup instead of in it, or left a setting or the data out.
    recorded = json.loads((interrupted / BACKUP / SETTINGS).read_text())
    assert recorded["params"] == {"model": "se", "epochs": 2, "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE,
                                  "seed": 0, "protocol": "clean", "precision": "float32",
                                  "patience": EARLY_STOPPING_PATIENCE,
                                  "schedule": "plateau", "label_smoothing": 0.0, "weight_decay": 0.0,
                                  "filters": [4, 8, 16], "dense_units": 8}
    assert recorded["precision"] == "float32"
    assert recorded["data"] == {"source": tiny_synthetic.source, "synthetic": True,
                                "images": len(tiny_synthetic.labels), "sha256": tiny_synthetic.fingerprint()}
    assert recorded["command"]


@pytest.mark.slow
def test_another_seed_and_protocol_are_refused_in_one_line_naming_both(run_copy, tiny_synthetic):
    # The case: killed after epoch 1 with seed 0 (clean), started again with seed 7 and protocol paper.
    # Breaks if the run resumed quietly (epochs_before_resume 1, run_info saying seed 7 over a mixed history).
    message = str(_refusal(run_copy, tiny_synthetic, seed=7, protocol="paper"))
    assert "\n" not in message and str(run_copy) in message
    assert "seed: the run has 0, asked for 7" in message
    assert "protocol: the run has 'clean', asked for 'paper'" in message
    assert "fresh=True" in message and "--fresh" in message and "--out" in message
    assert (run_copy / BACKUP).is_dir() and not (run_copy / "run_info.json").exists()  # still resumable


@pytest.mark.slow
def test_other_filters_are_refused_by_name_not_by_a_keras_traceback(run_copy, tiny_synthetic):
    # Breaks if the backup's weights reached a model of other widths (a Keras shape error).
    refused = _refusal(run_copy, tiny_synthetic, filters=(8, 8, 16))
    assert refused.differences == ["filters: the run has (4, 8, 16), asked for (8, 8, 16)"]


@pytest.mark.slow
def test_other_data_is_refused_by_its_fingerprint(run_copy, tiny_synthetic):
    fewer = tiny_synthetic.select(tiny_synthetic.labels != 0)
    (difference,) = _refusal(run_copy, fewer).differences
    assert difference.startswith("data: the run has ") and str(len(fewer.labels)) in difference


@pytest.mark.slow
def test_the_same_settings_resume_whatever_verbose_defaults_and_lists(run_copy, tiny_synthetic, capsys):
    # Defaults spelt out, a list for a tuple and another verbosity are the same settings. Breaks if the comparison
    # were of the raw arguments (a refusal) or the resume restarted from epoch 0.
    train("se", tiny_synthetic, run_copy, **{**TINY, "filters": [4, 8, 16], "batch_size": BATCH_SIZE,
                                             "se_ratio": SE_RATIO, "verbose": 2})
    info = json.loads((run_copy / "run_info.json").read_text())
    assert info["epochs_before_resume"] == 1 and pd.read_csv(run_copy / HISTORY)["epoch"].tolist() == [0, 1]
    assert "Resuming the interrupted run" in capsys.readouterr().out
    assert not (run_copy / BACKUP).exists()


@pytest.mark.slow
def test_fresh_discards_the_interrupted_run_and_records_the_command_quoted(run_copy, tiny_synthetic, capsys,
                                                                            monkeypatch):
    # Breaks if fresh=True still resumed (epochs_before_resume 1), if the callbacks spoke under verbose=0
    # ("Restoring model weights..."), or if a path with spaces was recorded unquoted (" ".join(sys.argv)).
    argv = ["/a folder/fer_utils/__main__.py", "train", "--out", "/runs/my run"]
    monkeypatch.setattr(sys, "argv", argv)
    train("se", tiny_synthetic, run_copy, **{**TINY, "seed": 7}, fresh=True)
    info = json.loads((run_copy / "run_info.json").read_text())
    assert info["epochs_before_resume"] == 0 and info["params"]["seed"] == 7
    assert pd.read_csv(run_copy / HISTORY)["epoch"].tolist() == [0, 1]
    assert shlex.split(info["command"]) == argv
    out = capsys.readouterr().out
    assert "Discarding the interrupted run" in out and "Restoring model weights" not in out


@pytest.mark.slow
def test_a_backup_without_recorded_settings_resumes_with_a_note(run_copy, tiny_synthetic, capsys):
    # A backup written before settings were recorded: resumed as before (no refusal), and said so.
    (run_copy / BACKUP / SETTINGS).unlink()
    settings = run_settings.run_settings({"model": "se", "seed": 99}, "float32", tiny_synthetic)
    epochs, kept = run_settings.resume_or_start(run_copy, settings)
    assert epochs == 1 and kept is settings
    assert "predates recorded settings" in capsys.readouterr().out


@pytest.mark.slow
def test_the_cli_refuses_in_one_line_with_exit_2_and_resumes_with_fresh(run_copy, tiny_synthetic, monkeypatch,
                                                                        capsys):
    # Breaks if ResumeConflict reached the terminal as a traceback, or --fresh did not reach train.
    monkeypatch.setattr(commands, "load_data_once", lambda *a, **k: tiny_synthetic)
    args = ["train", "--model", "se", "--out", str(run_copy), "--epochs", "2", "--precision", "float32",
            "--filters", "4,8,16", "--dense-units", "8"]
    assert cli.main([*args, "--seed", "7"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "seed: the run has 0, asked for 7" in err
    assert "Traceback" not in err
    assert cli.main([*args, "--seed", "7", "--fresh"]) == 0
    assert json.loads((run_copy / "run_info.json").read_text())["epochs_before_resume"] == 0
