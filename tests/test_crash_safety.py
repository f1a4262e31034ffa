"""Crash-safe run folders: a run stopped at any step of its writes resumes, and never corrupts what it has written.

Atomic writes, Ctrl-C and the restoration of a backup are tested in-process, on states made here; a real `train`
process is stopped before chosen renames of its writes by fault injection (FER_UTILS_EXIT_BEFORE_REPLACE, in
fer_utils.runfolder: the same steps on every machine) and resumed each time; SIGTERM stops a real one cleanly. The
suite's one real SIGKILL, which may land inside a write, is tests/test_lifecycle.py's. Each test names the broken
implementation it catches.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import pandas as pd
import pytest

from fer_utils import cli, runfolder, training
from fer_utils.callbacks import TrainingInterrupted
from fer_utils.evaluation import evaluate_split
from fer_utils.runfolder import BACKUP, HISTORY, WEIGHTS, atomic_path, resume_state
from fer_utils.training import train

REPO = Path(__file__).resolve().parent.parent


# --- atomic writes ------------------------------------------------------------------------------------


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    # Breaks if the writer wrote in place (the old content would be gone) or left its temporary file behind.
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_an_atomic_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "run_info.json"
    runfolder.write_json(target, {"a": 1})
    runfolder.write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["run_info.json"]


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def test_json_files_are_strict_json_with_null_for_nan_and_infinity(tmp_path):
    # An empty split has a NaN loss; Python's json writes a bare NaN, which strict parsers (JavaScript, jq) reject.
    runfolder.write_json(tmp_path / "metrics.json", {"val_loss": float("nan"), "test": {"n": 0, "loss": [float("inf")]},
                                                     "accuracy": 0.5})
    back = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=_no_constants)
    assert back == {"val_loss": None, "test": {"n": 0, "loss": [None]}, "accuracy": 0.5}


# --- an interrupted run, made in-process: SIGINT to ourselves after epoch 2 -----------------------------


class _SignalAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch: int, sig=signal.SIGINT):
        super().__init__()
        self.epoch, self.sig = epoch, sig

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            os.kill(os.getpid(), self.sig)


def _interrupt_after(monkeypatch, epoch: int, sig=signal.SIGINT):
    """Make `train` receive `sig` right after epoch `epoch` has been backed up."""
    real = training.paper_callbacks
    monkeypatch.setattr(training, "paper_callbacks",
                        lambda *a, **k: [*real(*a, **k), _SignalAfterEpoch(epoch, sig)])


TINY = dict(epochs=4, precision="float32", verbose=0, filters=(4, 8, 16), dense_units=8)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, tiny_synthetic):
    """A run folder whose training got Ctrl-C after epoch 2 of 4, the message it raised, and the SIGINT handler in
    place before training (Python's default; SIG_IGN when the tests run as a background job of a shell)."""
    out = tmp_path_factory.mktemp("interrupted")
    before = signal.getsignal(signal.SIGINT)
    with pytest.MonkeyPatch.context() as mp:
        _interrupt_after(mp, 2)
        with pytest.raises(TrainingInterrupted) as stop:
            train("se", tiny_synthetic, out, **TINY)
    return out, str(stop.value), before


def _copy_of(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(folder, target)
    return target


@pytest.mark.slow
def test_ctrl_c_stops_after_a_complete_epoch_and_says_how_to_resume(interrupted):
    # Breaks if SIGINT killed the process mid-write (no message) or the backup was deleted on the way out.
    out, message, before = interrupted
    assert "SIGINT" in message and "run the same command again to resume" in message
    assert json.loads((out / BACKUP / "training_metadata.json").read_text())["epoch"] == 2
    assert len(pd.read_csv(out / HISTORY)) == 2
    assert signal.getsignal(signal.SIGINT) is before  # handlers given back


class _SignalInEpoch(keras.callbacks.Callback):
    """SIGINT to this process after the first training step of epoch `epoch` (1-based)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch, self.current = epoch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 0:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_ctrl_c_in_the_middle_of_an_epoch_writes_nothing_of_it(tiny_synthetic, tmp_path, monkeypatch):
    # StopOnSignal has no batch hook: the signal ends the epoch's steps (stop_training), and the stop comes before
    # validation. Breaks if the unfinished epoch were validated and written as if complete (a history row, a backup).
    real = training.paper_callbacks
    monkeypatch.setattr(training, "paper_callbacks", lambda *a, **k: [*real(*a, **k), _SignalInEpoch(2)])
    with pytest.raises(TrainingInterrupted, match="SIGINT"):
        train("se", tiny_synthetic, tmp_path, **{**TINY, "batch_size": 8})
    assert json.loads((tmp_path / BACKUP / "training_metadata.json").read_text())["epoch"] == 1
    assert len(pd.read_csv(tmp_path / HISTORY)) == 1


@pytest.mark.slow
def test_the_same_command_resumes_with_one_history_row_per_epoch(interrupted, tiny_synthetic, tmp_path):
    # Breaks if the rerun started afresh (epochs_before_resume 0) or appended re-run epochs twice.
    out = _copy_of(interrupted[0], tmp_path)
    train("se", tiny_synthetic, out, **TINY)
    history = pd.read_csv(out / HISTORY)
    assert history["epoch"].tolist() == [0, 1, 2, 3]
    info = json.loads((out / "run_info.json").read_text())
    assert info["epochs_before_resume"] == 2 and not (out / BACKUP).exists()


@pytest.mark.slow
def test_a_history_row_written_after_the_last_backup_is_not_kept_twice(interrupted, tiny_synthetic, tmp_path):
    # A kill between history.csv's epoch-3 row and the epoch-3 backup: the rerun re-runs epoch 3.
    # Breaks if history.csv were trusted over the backup (two rows for epoch 3).
    out = _copy_of(interrupted[0], tmp_path)
    history = pd.read_csv(out / HISTORY)
    pd.concat([history, history.tail(1).assign(epoch=2)]).to_csv(out / HISTORY, index=False)
    assert resume_state(out, log=lambda line: None) == 2
    assert len(pd.read_csv(out / HISTORY)) == 2


@pytest.mark.slow
def test_a_corrupt_backup_is_reported_in_one_line_and_the_previous_state_used(interrupted, tmp_path):
    # Breaks if a damaged latest.weights.h5 reached Keras (OSError: bad object header) or went unreported.
    out = _copy_of(interrupted[0], tmp_path)
    shutil.copytree(out / BACKUP, out / f"{BACKUP}.old")  # a swap cut short leaves the previous state here
    (out / BACKUP / WEIGHTS).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    lines = []
    assert resume_state(out, log=lines.append) == 2
    assert len(lines) == 1 and WEIGHTS in lines[0] and "\n" not in lines[0]
    assert runfolder.check_backup(out / BACKUP) is None and not (out / f"{BACKUP}.old").exists()


@pytest.mark.slow
def test_a_corrupt_backup_with_nothing_to_fall_back_on_starts_afresh_and_says_so(interrupted, tmp_path):
    # Breaks if the run silently trained from scratch while history.csv still claimed two epochs.
    out = _copy_of(interrupted[0], tmp_path)
    (out / BACKUP / WEIGHTS).write_bytes(b"not hdf5")
    lines = []
    assert resume_state(out, log=lines.append) == 0
    assert any("starting afresh" in line for line in lines)
    assert not (out / HISTORY).exists() and not (out / "model.keras").exists()


@pytest.mark.slow
def test_a_model_checkpoint_from_an_epoch_after_the_backup_is_replaced_by_the_backups(interrupted, tmp_path):
    # A kill after model.keras was replaced but before the backup: the backup's own best checkpoint wins.
    out = _copy_of(interrupted[0], tmp_path)
    (out / "model.keras").write_bytes(b"a checkpoint of an epoch that will be re-run")
    resume_state(out, log=lambda line: None)
    assert (out / "model.keras").read_bytes() == (out / BACKUP / runfolder.BEST).read_bytes()


# --- a real process stopped at chosen steps of its writes (fault injection), resumed each time -----------------

ARGS = ["train", "--model", "se", "--data", "synthetic", "--subset", "30", "--epochs", "4", "--precision", "float32",
        "--filters", "8,16,32", "--dense-units", "32"]

STOPS = [  # FER_UTILS_EXIT_BEFORE_REPLACE of each process in turn (each resumes the folder the previous one left),
    # the rename it stops before, what that leaves half-done (process ids as PID), the epochs a rerun resumes from.
    ("3:backup", "backup.PID.new to backup", ["backup.PID.new", "backup.old"], 1),  # epoch 2's swap, half-way:
    # no backup/ at all, the previous one set aside as backup.old, the new one complete beside it
    ("2:history.csv", ".history.csv.PID.partial to history.csv", [".history.csv.PID.partial"], 1),  # after the
    # restore (1:history.csv), inside an epoch-end write: the new history.csv written, not yet renamed
    ("2:backup.old", "backup.old to .backup.old.PID.trash", ["backup.old"], 2),  # the swap done, the old backup
    # not yet deleted
    ("1:predictions.npz", ".predictions.npz.PID.partial.npz to predictions.npz", [".predictions.npz.PID.partial.npz"],
     4),  # fit finished, metrics.json written, predictions.npz and run_info.json not
    ("1:backup", "backup to .backup.PID.trash", [], 4),  # every result written, the backup not yet deleted
]


def _stop_at(step: str, out: Path) -> str:
    """Run ARGS into `out` in a new process that ends itself before the rename `step`; its output."""
    env = dict(os.environ, FER_UTILS_EXIT_BEFORE_REPLACE=step, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-m", "fer_utils", *ARGS, "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == runfolder.EXIT_BEFORE_REPLACE_STATUS, done.stdout + done.stderr
    return done.stdout + done.stderr


def _half_done(out: Path) -> list[str]:
    """What a write cut short leaves: temporary files of atomic writes, a backup swap's new or old folder, a folder
    being deleted; process ids written PID."""
    return sorted(re.sub(r"\.\d+\.", ".PID.", p.name) for p in out.iterdir()
                  if ".partial" in p.name or p.name.startswith(f"{BACKUP}.") or p.name.endswith(".trash"))


def _resumes_from(out: Path, tmp_path: Path) -> tuple[int, list[str]]:
    """The epochs a rerun would resume `out` from and what it would report, found on a copy (left as it was)."""
    copy = tmp_path / "resumed_copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(out, copy)
    lines = []
    return resume_state(copy, log=lines.append), lines


@pytest.mark.slow
def test_a_run_stopped_at_each_step_of_its_writes_resumes_to_an_equal_model(tmp_path):
    # Each process of the chain ends itself before one chosen rename (STOPS), as a kill would leave it; the next one
    # resumes. Breaks if a step left no usable backup of the last complete epoch (a swap that deleted backup/ before
    # renaming the new one in; a backup deleted before the results were written: the rerun would start afresh or
    # retrain), if a rerun did not clear what was cut short, or if the chain's model differed from an uninterrupted
    # run's. A kill inside a write itself (a torn file) is tests/test_lifecycle.py's real SIGKILL, and
    # test_a_failed_write_leaves_the_old_file_and_no_temporary_file's.
    reference = tmp_path / "uninterrupted"
    assert cli.main([*ARGS, "--out", str(reference)]) == 0

    out = tmp_path / "stopped"
    for step, rename, left, epochs in STOPS:
        text = _stop_at(step, out)
        assert re.search(rf"exiting before renaming {re.escape(rename).replace('PID', r'[0-9]+')}$", text.strip()), text
        assert "Traceback" not in text, text
        assert _half_done(out) == left, step
        assert _resumes_from(out, tmp_path) == (epochs, []), step  # nothing reported: no backup unusable, no restart
    assert cli.main([*ARGS, "--out", str(out)]) == 0

    assert _half_done(out) == [] and not (out / BACKUP).exists()
    history = pd.read_csv(out / HISTORY)
    assert history["epoch"].tolist() == list(range(4))
    model = keras.models.load_model(out / "model.keras", safe_mode=True)
    from fer_utils.data import load_data

    data = load_data("synthetic", per_class=30, seed=0)
    # model.keras is the epoch the history calls best: its PublicTest accuracy is that epoch's, to one image.
    n_val = int((data.splits == "val").sum())
    assert abs(evaluate_split(model, data, "val")["accuracy"] - history["val_accuracy"].max()) <= 1 / n_val
    # Same quality as the uninterrupted run (same seed). A resumed run restarts its shuffling from the seed, so
    # the two differ by noise: 0.15 is several standard errors on these few hundred PrivateTest images.
    ref = json.loads((reference / "metrics.json").read_text())["test_accuracy"]
    got = json.loads((out / "metrics.json").read_text())["test_accuracy"]
    assert abs(got - ref) <= 0.15, (got, ref)


# --- SIGTERM: a real process, stopped cleanly ------------------------------------------------------------------


def _start(out: Path) -> subprocess.Popen:
    """ARGS with 7 epochs (the last --epochs given counts), so that the run is still going when it is signalled."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, "-m", "fer_utils", *ARGS, "--epochs", "7", "--out", str(out)], cwd=REPO,
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _rows(out: Path) -> int:
    try:
        return len(pd.read_csv(out / HISTORY))
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return 0


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 240) -> bool:
    """Poll `condition()` every 10 ms; False when the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    raise TimeoutError("the training process made no progress")


@pytest.mark.slow
def test_sigterm_stops_the_cli_with_exit_130_and_the_command_to_resume(tmp_path):
    # Breaks if SIGTERM killed the process outright (exit -15, no message) or the hint lost the command.
    out = tmp_path / "run"
    proc = _start(out)
    assert _wait_for(lambda: _rows(out) >= 1, proc)
    proc.send_signal(signal.SIGTERM)
    text = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, text
    assert "Stopped by SIGTERM" in text and f"--out {out}" in text and "Traceback" not in text
    assert (out / BACKUP).is_dir()


def test_a_model_saved_without_optimizer_state_is_smaller_and_reloads_with_the_same_weights(tmp_path):
    import numpy as np

    from fer_utils.models import build_model, compile_model
    from fer_utils.runfolder import save_without_optimizer

    model = compile_model(build_model("se", filters=(4, 8, 8), dense_units=8))
    model.optimizer.build(model.trainable_variables)  # Adam's moments exist, as after training
    model.save(tmp_path / "trained.keras")
    save_without_optimizer(tmp_path / "trained.keras", tmp_path / "published.keras")
    back = keras.saving.load_model(tmp_path / "published.keras", safe_mode=True)
    assert getattr(back, "optimizer", None) is None
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), back.get_weights()))
    assert (tmp_path / "published.keras").stat().st_size < 0.8 * (tmp_path / "trained.keras").stat().st_size
