"""The Keras callbacks of a training run besides Keras' own: logs, crash-safe saving, resuming, a clean Ctrl-C.

`training.paper_callbacks` (notebook 04) puts the paper's callbacks and these in order; `training.train` adds
`TestSplitsLog`, `ResumeCounters` and `StopOnSignal` around them. Every file they write is written atomically
(`runfolder`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import keras
import pandas as pd

from .dataset import FerData
from .evaluation import loss_and_accuracy, predict_proba
from .runfolder import BEST, FIT_FINISHED, HISTORY, METADATA, SETTINGS, WEIGHTS, commit_backup, link_or_copy
from .runfolder import replace_file, write_csv, write_json


class EpochLog(keras.callbacks.Callback):
    """Adds the epoch's wall seconds, its training steps' seconds and the learning rate to the logs (history.csv).

    `epoch_seconds` is the whole epoch: training steps, validation and the other callbacks' work. `train_seconds` is
    the training steps alone, from the epoch's start to the end of its last training step, marked when validation
    begins (else at the epoch's end), once that step's weights can be read (on a GPU, once it has run). It has no
    batch hook: one would make Keras wait for every step's results (no asynchronous dispatch on JAX and torch).
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._steps_done = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        self._mark_steps_done()

    def _mark_steps_done(self) -> None:
        if self._steps_done is None:
            keras.ops.convert_to_numpy(self.model.trainable_variables[0])  # waits for the last step's update
            self._steps_done = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self._mark_steps_done()  # a fit without validation
        logs["epoch_seconds"] = time.perf_counter() - self._start
        logs["train_seconds"] = self._steps_done - self._start
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class TestSplitsLog(keras.callbacks.Callback):
    """Logs loss and accuracy on PublicTest, PrivateTest and all 7,178 test images after every epoch.

    Whatever split chooses the checkpoint, history.csv then holds both ways of reading a run: the paper's
    (the best epoch by `test_all_accuracy`, the test set choosing) and the clean one (`private_test_accuracy`
    at the epoch that `public_test_accuracy` chose). Nothing here feeds back into training.
    """

    SPLITS = {"public_test": "val", "private_test": "test"}

    def __init__(self, data: FerData):
        super().__init__()
        self._sets = {name: data.xy(split) for name, split in self.SPLITS.items()}

    def on_epoch_end(self, epoch, logs=None):
        total = {"loss": 0.0, "accuracy": 0.0, "n": 0}
        for name, (x, y) in self._sets.items():
            scores = loss_and_accuracy(predict_proba(self.model, x), y)
            logs[f"{name}_loss"], logs[f"{name}_accuracy"] = scores["loss"], scores["accuracy"]
            for key in ("loss", "accuracy"):
                total[key] += scores[key] * scores["n"]
            total["n"] += scores["n"]
        for key in ("loss", "accuracy"):
            logs[f"test_all_{key}"] = total[key] / max(total["n"], 1)


class SafeCSVLogger(keras.callbacks.Callback):
    """keras.callbacks.CSVLogger's history (an `epoch` column, then the logs), rewritten atomically every epoch.

    Keras appends a line to an open file, so a process killed mid-write leaves a torn row; this rewrites the whole
    file through a temporary one, so history.csv always holds complete epochs. A resumed run continues its rows.
    """

    def __init__(self, filename: str | os.PathLike):
        super().__init__()
        self.filename = Path(filename)

    def on_train_begin(self, logs=None):
        self._rows = pd.read_csv(self.filename).to_dict("records") if self.filename.exists() else []

    def on_epoch_end(self, epoch, logs=None):
        self._rows.append({"epoch": epoch, **{k: float(v) for k, v in sorted((logs or {}).items())}})
        write_csv(self.filename, pd.DataFrame(self._rows))


class SafeModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """keras.callbacks.ModelCheckpoint that saves to a temporary file (this process's) and renames it over `filepath`.

    A process killed while Keras writes the zip would otherwise leave a model.keras that does not load. It saves
    per epoch: its batch hook (Keras') does nothing, so it leaves Keras free to dispatch batches asynchronously.
    """

    async_safe = True

    def __init__(self, filepath: str | os.PathLike, **kwargs):
        self.final_path = Path(filepath)
        self._partial = self.final_path.with_name(f".{self.final_path.stem}.{os.getpid()}.partial.keras")
        super().__init__(str(self._partial), **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self._partial.exists():
            replace_file(self._partial, self.final_path)


class SafeBackupAndRestore(keras.callbacks.BackupAndRestore):
    """keras.callbacks.BackupAndRestore whose backup folder is replaced as a whole after every epoch.

    The folder holds the weights (with the optimizer state), the epoch, and hard links to that epoch's history.csv
    and model.keras, so a resumed run restores all four from one instant (`fer_utils.runfolder.resume_state`);
    `settings`, when set (`train` sets the run's `run_settings`), are written into it too and go wherever it goes.
    Place it after the history and checkpoint callbacks. It is kept when fit ends (marked finished) and removed by
    `train` once the run folder is complete, so a run killed while writing its results resumes without retraining.
    It saves per epoch: its batch hook (Keras') does nothing, so it leaves Keras free to dispatch batches
    asynchronously.
    """

    async_safe = True

    def __init__(self, backup_dir: str | os.PathLike, settings: dict | None = None):
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=False)
        self._dir = Path(backup_dir)
        self.settings = settings

    def _save_model(self):
        out = self._dir.parent

        def write_into(folder: Path) -> None:
            self.model.save_weights(folder / WEIGHTS)
            (folder / METADATA).write_text(json.dumps({"epoch": self._current_epoch, "batch": -1}))
            if self.settings is not None:
                (folder / SETTINGS).write_text(json.dumps(self.settings, indent=2) + "\n")
            for source, name in ((out / HISTORY, HISTORY), (out / "model.keras", BEST)):
                if source.exists():
                    link_or_copy(source, folder / name)

        commit_backup(self._dir, write_into)

    def on_train_end(self, logs=None):
        if self._dir.exists():
            write_json(self._dir / FIT_FINISHED, {"finished": True})


class TrainingInterrupted(KeyboardInterrupt):
    """Raised out of `fit` after Ctrl-C (SIGINT) or SIGTERM, before anything of an unfinished epoch is written."""


class ResumeCounters(keras.callbacks.Callback):
    """Gives EarlyStopping and ReduceLROnPlateau, on a resumed run, the counts an uninterrupted run would have.

    Both reset their "epochs without improvement" in `on_train_begin`, so a resumed run would stop, and lower its
    rate, up to `patience` epochs late. This replays the interrupted run's logged epochs (history.csv rows: val
    accuracy and the rate used) through their own `on_epoch_end` against a stand-in model, so nothing real changes.
    Place it after both in the callbacks list.
    """

    def __init__(self, history: dict[str, list[float]], callbacks: list[keras.callbacks.Callback]):
        super().__init__()
        self._rows = pd.DataFrame(history).to_dict("records") if history else []
        self._targets = [cb for cb in callbacks
                         if isinstance(cb, (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau))]

    def on_train_begin(self, logs=None):
        for cb in self._targets:
            stand_in = _StandInModel()
            real, cb_baseline, cb_verbose = cb.model, getattr(cb, "baseline", None), cb.verbose
            cb.set_model(stand_in)
            if isinstance(cb, keras.callbacks.EarlyStopping):
                cb.baseline = None  # the replayed epochs themselves set the bar the baseline stood for
            cb.verbose = 0
            try:
                for epoch, row in enumerate(self._rows):
                    stand_in.optimizer.learning_rate = row.get("learning_rate", 0.0)
                    cb.on_epoch_end(epoch, {k: v for k, v in row.items() if k != "epoch"})
            finally:
                cb.set_model(real)
                cb.verbose = cb_verbose
                if isinstance(cb, keras.callbacks.EarlyStopping):
                    cb.baseline, cb.best_weights, cb.stopped_epoch = cb_baseline, None, 0


class _StandInModel:
    """What EarlyStopping and ReduceLROnPlateau touch of a model, detached from the real one."""

    def __init__(self):
        self.optimizer = type("StandInOptimizer", (), {"learning_rate": 0.0})()
        self.stop_training = False

    def get_weights(self):
        return None


class StopOnSignal(keras.callbacks.Callback):
    """Turns SIGINT and SIGTERM into a clean stop at a safe point.

    While `fit` runs, a signal only raises a flag and sets the model's `stop_training`, so a file being written is
    finished and Keras ends the epoch's training steps after the current one. `TrainingInterrupted` then leaves
    `fit` when validation begins (before the unfinished epoch is validated or written), or at the epoch's end when
    the signal came after its steps (once the callbacks before this one have written it: place it last), and the
    run folder keeps its last complete epoch (the backup). No batch hook, which would keep Keras from dispatching
    batches asynchronously. A signal the platform lacks, or does not let Python handle, keeps its default action
    (the backup still holds the last epoch).
    """

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self):
        super().__init__()
        self.received: str | None = None
        self._previous: dict = {}

    def on_train_begin(self, logs=None):
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in filter(None, (getattr(signal, name, None) for name in self.SIGNALS)):
            try:
                self._previous[sig] = signal.signal(sig, self._raise_flag)
            except (ValueError, OSError):
                continue  # not a signal this platform lets Python handle

    def _raise_flag(self, signum, frame):
        self.received = signal.Signals(signum).name
        if self._model is not None:  # not `self.model`, which on JAX syncs the model's state
            self._model.stop_training = True

    def restore(self) -> None:
        """Give the signals back to their previous handlers (None: one not set from Python, left as it is)."""
        for sig, handler in self._previous.items():
            if handler is not None:
                with contextlib.suppress(ValueError, OSError):
                    signal.signal(sig, handler)
        self._previous = {}

    def _stop_if_signalled(self, *args, **kwargs):
        if self.received:
            raise TrainingInterrupted(self.received)

    on_epoch_begin = on_test_begin = on_epoch_end = _stop_if_signalled

    def on_train_end(self, logs=None):
        self.restore()
