"""Train a model with the paper's recipe and write a complete, resumable run folder.

Run folder: model.keras (best val accuracy), history.csv, metrics.json, predictions.npz,
run_info.json, and backup/ (Keras BackupAndRestore) while a run is unfinished. Training the same
folder again resumes an interrupted run from its backup (run_info.json's epochs_before_resume says so), provided it
is asked with the settings and data the run was started with (`run_settings`, kept in backup/); otherwise `train`
refuses (`ResumeConflict`) unless told `fresh=True`. One process at a time trains into a folder (`RunFolderBusy`).
The callbacks list and the `fit` call (`paper_callbacks`, `fit_model`) are written in notebook 04, where each
argument is explained, and exported here by `python -m fer_utils.export`: edit them there.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import platform
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from .augment import canonical
from .config import (BATCH_SIZE, CLASSES, EARLY_STOPPING_PATIENCE, LABEL_SMOOTHING, LEARNING_RATE, MAX_EPOCHS,
                     PRECISIONS, PROTOCOLS, REDUCE_LR_FACTOR, REDUCE_LR_MIN, REDUCE_LR_PATIENCE, SCHEDULES,
                     WEIGHT_DECAY)
from .data import FerData
from .evaluation import evaluate_splits
from .models import build_model, compile_model
from .runfolder import (BACKUP, BEST, FIT_FINISHED, HISTORY, METADATA, SETTINGS, WEIGHTS, ResumeConflict,
                        command_line, commit_backup, link_or_copy, one_writer, remove_folder, replace_file,
                        resume_state, save_npz, write_csv, write_json)


def cpu_has_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def accelerator() -> str:
    """'gpu' when the active Keras backend sees a GPU, else 'cpu'."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return "gpu" if any(d.platform == "gpu" for d in jax.devices()) else "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    if backend == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    return "cpu"


def gpu_compute_capability() -> tuple[int, int] | None:
    """The first GPU's CUDA compute capability as the active Keras backend reports it, e.g. (8, 0) for an A100.

    Returns:
        (major, minor), or None where there is no GPU or the backend does not say (an AMD or Apple GPU, an old
        library).
    """
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            return _capability(tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
                               if gpus else None)
        if backend == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            return _capability(getattr(gpus[0], "compute_capability", None) if gpus else None)
        if backend == "torch":
            import torch

            return _capability(torch.cuda.get_device_capability() if torch.cuda.is_available() else None)
    except Exception:  # noqa: BLE001 - a library that cannot tell is a GPU of unknown capability
        return None
    return None


def _capability(value) -> tuple[int, int] | None:
    """(major, minor) from (8, 0) or "8.0" (JAX), else None (e.g. an AMD "gfx90a")."""
    try:
        major, minor = (value.split(".") if isinstance(value, str) else value)[:2]
        return int(major), int(minor)
    except (TypeError, ValueError, AttributeError):
        return None


def resolve_precision(precision: str = "auto") -> str:
    """The precision policy to train in: `precision`, or for "auto" the fastest one the hardware computes natively.

    "auto": mixed_bfloat16 on a GPU of compute capability 8.0 or more (Ampere and later) or a CPU with native bf16
    (`cpu_has_bf16`); mixed_float16 on a GPU with fast float16 but no bf16 (Volta and Turing, 7.x: V100, T4; and
    the P100, 6.0), where Keras' `compile` adds loss scaling (`keras.optimizers.LossScaleOptimizer`); float32
    elsewhere, a GPU whose capability is unknown included (float16 on most Pascal cards, 6.1, is 64 times slower).

    Args:
        precision: "auto" or one of `config.PRECISIONS`.

    Returns:
        A Keras dtype policy name.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: expected one of {PRECISIONS}")
    if precision != "auto":
        return precision
    if accelerator() == "gpu":
        capability = gpu_compute_capability()
        if capability is None:
            return "float32"
        if capability >= (8, 0):
            return "mixed_bfloat16"
        return "mixed_float16" if capability >= (7, 0) or capability == (6, 0) else "float32"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"


def computes_natively(model: keras.Model) -> bool:
    """Whether every layer of `model` computes in float32 or in the policy "auto" picks on this machine
    (`resolve_precision`): False for a mixed_bfloat16 model on a T4, or on a CPU without native bf16."""
    here = resolve_precision("auto")
    return all(layer.dtype_policy.name in ("float32", here) for layer in model.layers
               if not isinstance(layer, keras.layers.InputLayer))


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
        from .evaluation import loss_and_accuracy, predict_proba

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


def learning_rate_schedule(schedule: str, learning_rate: float, steps_per_epoch: int, epochs: int):
    """'plateau': the paper's constant rate, lowered by ReduceLROnPlateau; 'cosine': a one-epoch linear
    warm-up to `learning_rate`, then cosine decay to zero at the last epoch (a fixed, short schedule)."""
    if schedule == "plateau":
        return learning_rate
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(steps_per_epoch * (epochs - 1), 1), warmup_target=learning_rate,
            warmup_steps=steps_per_epoch)
    raise ValueError(f"unknown schedule {schedule!r}: expected one of {SCHEDULES}")


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    """Batches in one pass over `n_images` (the last one may be partial)."""
    return -(-n_images // batch_size)


def array_inputs(x: np.ndarray, onehot: np.ndarray, batch_size: int) -> dict:
    """`fit` arguments that feed numpy arrays, shuffled by Keras (a fresh input iterator every epoch)."""
    return dict(x=x, y=onehot, batch_size=batch_size, shuffle=True)


def training_inputs(x: np.ndarray, onehot: np.ndarray, batch_size: int, seed: int) -> dict:
    """`fit` arguments that feed the training images, reshuffled every epoch, each image once per epoch.

    On TensorFlow: one shuffled, repeated tf.data pipeline for the whole fit, `steps_per_epoch` batches an epoch.
    Fed numpy arrays, Keras builds a fresh input iterator every epoch, and some epochs then wait 25 s before their
    first step (benchmarks/README.md, "Epoch time"). Other backends (JAX on the GPU machines) get `array_inputs`.
    """
    if keras.backend.backend() != "tensorflow":
        return array_inputs(x, onehot, batch_size)
    import tensorflow as tf

    images = (tf.data.Dataset.from_tensor_slices((x, onehot)).shuffle(len(x), seed=seed).batch(batch_size)
              .repeat().prefetch(2))
    return dict(x=images, steps_per_epoch=steps_per_epoch(len(x), batch_size), shuffle=False)  # the pipeline shuffles


def _interrupted_history(out: Path) -> dict[str, list[float]]:
    """history.csv of an interrupted run in `out` (one that left a backup), else {}."""
    if not ((out / BACKUP).exists() and (out / HISTORY).exists()):
        return {}
    return _read_history(out / HISTORY)


def resumed_best_val_accuracy(out: Path) -> float | None:
    """The best val accuracy of an interrupted run in `out` that saved a checkpoint (the bar a resumed epoch must
    beat), else None."""
    logged = _interrupted_history(out).get("val_accuracy", [])
    return float(max(logged)) if logged and (out / "model.keras").exists() else None


# ---- notebooks/04_se_cnn_training.ipynb, cells `#@save training` (edit there; python -m fer_utils.export) ----
def paper_callbacks(out: Path, patience: int = EARLY_STOPPING_PATIENCE, reduce_lr: bool = True,
                    verbose: int = 1) -> list[keras.callbacks.Callback]:
    """The paper's EarlyStopping, ModelCheckpoint and ReduceLROnPlateau, plus a CSV log and a resumable backup.

    Args:
        out: the run folder, where model.keras, history.csv and backup/ are written.
        patience: EarlyStopping's patience in epochs (the paper: 16).
        reduce_lr: include ReduceLROnPlateau (False under a schedule that sets the rate itself).
        verbose: 1 prints EarlyStopping's and ReduceLROnPlateau's messages (the stop, the best weights restored,
            a lower rate); 0 silences them (`train` passes 0 when `fit` is silent).

    Returns:
        The callbacks for `fit`, in order; the backup is last, as it keeps what the CSV log and the checkpoint wrote.
    """
    resumed_best = resumed_best_val_accuracy(out)  # None unless `out` holds an interrupted run
    callbacks = [
        EpochLog(),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience,
                                      restore_best_weights=True, baseline=resumed_best, verbose=verbose),
        SafeModelCheckpoint(out / "model.keras", monitor="val_accuracy", mode="max", save_best_only=True,
                            initial_value_threshold=resumed_best),
    ]
    if reduce_lr:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_accuracy", mode="max", factor=REDUCE_LR_FACTOR, patience=REDUCE_LR_PATIENCE,
            min_lr=REDUCE_LR_MIN, verbose=verbose))
    callbacks += [SafeCSVLogger(out / HISTORY), SafeBackupAndRestore(out / BACKUP)]
    return callbacks


def fit_model(model: keras.Model, x_train: np.ndarray, y_train: np.ndarray,
              validation_data: tuple[np.ndarray, np.ndarray], callbacks: list[keras.callbacks.Callback],
              epochs: int = MAX_EPOCHS, batch_size: int = BATCH_SIZE, seed: int = 0,
              verbose: int | str = "auto") -> keras.callbacks.History:
    """Train a compiled model with `model.fit`, validating after every epoch.

    Args:
        model: a model compiled by `compile_model`.
        x_train: the training images, uint8 (N, 48, 48, 1).
        y_train: their labels, integers 0-6 (N,).
        validation_data: the images and labels that the callbacks watch (PublicTest, or all test images).
        callbacks: `paper_callbacks(out)`, with any others to run.
        epochs: the most epochs to run (the paper: 100).
        batch_size: images per step (the paper: 64).
        seed: seeds the order in which the training images are shown.
        verbose: 2 for one line per epoch, 1 for a progress bar, 0 for silence.

    Returns:
        Keras' History of this fit (history.csv holds the same numbers, for every epoch of the run).
    """
    x_val, y_val = validation_data
    n_classes = len(CLASSES)
    return model.fit(
        **training_inputs(x_train, keras.utils.to_categorical(y_train, n_classes), batch_size, seed),
        validation_data=(x_val, keras.utils.to_categorical(y_val, n_classes)),
        epochs=epochs,
        callbacks=callbacks,
        verbose=verbose,
    )
# ---- end of notebooks/04_se_cnn_training.ipynb ----


def compiled_model(model_kind: str, learning_rate=LEARNING_RATE, compile_kwargs: dict | None = None,
                   **model_kwargs) -> keras.Model:
    """`build_model(model_kind, **model_kwargs)` compiled by `models.compile_model` (the paper's Adam at
    `learning_rate`, a number or a schedule, categorical cross-entropy and accuracy; notebook 02 writes it);
    `compile_kwargs` go to `compile` as they are."""
    return compile_model(build_model(model_kind, **model_kwargs), learning_rate, **(compile_kwargs or {}))


def train(model_kind: str, data: FerData, out: str | os.PathLike, epochs: int = MAX_EPOCHS,
          batch_size: int = BATCH_SIZE, learning_rate: float = LEARNING_RATE, seed: int = 0,
          protocol: str = "clean", precision: str = "auto", patience: int = EARLY_STOPPING_PATIENCE,
          schedule: str = "plateau", label_smoothing: float = LABEL_SMOOTHING, weight_decay: float = WEIGHT_DECAY,
          verbose: int | str = "auto", fresh: bool = False, **model_kwargs) -> dict:
    """Train 'baseline' or 'se' on `data` with the paper's recipe; write the run folder; return metrics.

    The model is `compiled_model(model_kind, ...)`, trained by notebook 04's `fit_model` with
    `[TestSplitsLog(data), *paper_callbacks(out, ...), ResumeCounters(...), StopOnSignal()]`. An interrupted run
    in `out` is resumed from its backup (with EarlyStopping's and ReduceLROnPlateau's counts replayed from its
    history) when it was started with the same settings and data (`run_settings`, recorded in the backup; `verbose`
    is not a setting), and refused otherwise; backup/ is removed only once run_info.json, the last file of the run
    folder, is written.

    Args:
        model_kind: "baseline" or "se".
        data: the images; training on "train", validating on PublicTest or all test images (`protocol`).
        out: the run folder (created; an interrupted run in it is resumed, anything else is overwritten).
        epochs: the most epochs (the paper: 100; EarlyStopping usually stops sooner).
        batch_size: images per step (the paper: 64).
        learning_rate: Adam's rate (the paper: 0.002); the peak rate under the cosine schedule.
        seed: seeds the weights, the shuffling and the augmentation.
        protocol: "clean" validates on PublicTest, "paper" on all 7,178 test images (the paper's way).
        precision: "float32", "mixed_bfloat16", "mixed_float16", or "auto" (`resolve_precision`: bf16 or float16
            where the hardware computes it natively). The caller's global policy is restored when `train` returns.
        patience: EarlyStopping's patience in epochs (the paper: 16).
        schedule: "plateau" is the paper's (ReduceLROnPlateau); "cosine" the short fixed schedule of the quick
            profile.
        label_smoothing: label smoothing of the cross-entropy (the paper: 0).
        weight_decay: AdamW's decoupled weight decay (0: the paper's Adam).
        verbose: Keras' fit verbosity (2: one line per epoch; 0 silences the callbacks' messages too).
        fresh: discard an interrupted run in `out` and start afresh, instead of resuming it (CLI: --fresh).
        **model_kwargs: options of the model builder (filters, dense_units, se_ratio, flip, augment, ...).

    Returns:
        The metrics written to metrics.json: loss, accuracy and confusion matrix per split, best epoch, epochs run.

    Raises:
        TrainingInterrupted: after SIGINT or SIGTERM; the run folder keeps its last complete epoch.
        ResumeConflict: `out` holds an interrupted run started with other settings or data (named, one line); the
            folder is left resumable.
        RunFolderBusy: another process is training into `out` (`runfolder.one_writer`; the message names the
            folder and the holder's pid and host); nothing in `out` is touched.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: expected one of {sorted(PROTOCOLS)}")
    if "augment" in model_kwargs:
        model_kwargs["augment"] = canonical(model_kwargs["augment"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with one_writer(out):  # a second process training into `out` is refused here, before anything is touched
        params = dict(model=model_kind, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                      protocol=protocol, precision=precision, patience=patience, schedule=schedule,
                      label_smoothing=label_smoothing, weight_decay=weight_decay, **model_kwargs)
        resolved = resolve_precision(precision)
        asked = run_settings(params, resolved, data)
        epochs_before_resume, settings = resume_or_start(out, asked, fresh)  # else a fresh start
        fit_finished = (out / BACKUP / FIT_FINISHED).exists()  # killed while writing its results: only those remain
        keras.utils.set_random_seed(seed)
        callers_policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(resolved)
        try:
            x_train, y_train = data.xy("train")
            lr = learning_rate_schedule(schedule, learning_rate, steps_per_epoch(len(y_train), batch_size), epochs)
            model = compiled_model(model_kind, lr, dict(label_smoothing=label_smoothing, weight_decay=weight_decay),
                                   **model_kwargs)
            start = time.perf_counter()
            stop_on_signal = StopOnSignal()
            try:
                if not fit_finished:
                    recipe = paper_callbacks(out, patience, schedule == "plateau", verbose=0 if verbose == 0 else 1)
                    _record_settings(recipe, settings)
                    callbacks = [TestSplitsLog(data), *recipe, ResumeCounters(_interrupted_history(out), recipe),
                                 stop_on_signal]
                    fit_model(model, x_train, y_train, data.xy(PROTOCOLS[protocol]), callbacks, epochs=epochs,
                              batch_size=batch_size, seed=seed, verbose=verbose)
            except TrainingInterrupted as stop:
                done = len(pd.read_csv(out / BACKUP / HISTORY)) if (out / BACKUP / HISTORY).exists() else 0
                again = "it again without fresh=True (--fresh)" if fresh else "the same command again"
                raise TrainingInterrupted(
                    f"Stopped by {stop.args[0]}: {out} keeps its last complete epoch ({done}); run {again} to resume "
                    "from there") from None
            finally:
                stop_on_signal.restore()
            fit_seconds = None if fit_finished else time.perf_counter() - start
        finally:
            keras.mixed_precision.set_global_policy(callers_policy)
        best = keras.models.load_model(out / "model.keras")
        metrics, predictions = evaluate_splits(best, data)
        history = _read_history(out / HISTORY)
        metrics.update(model=model_kind, best_epoch=int(np.argmax(history["val_accuracy"])) + 1,
                       epochs_run=len(history["val_accuracy"]))
        write_json(out / "metrics.json", metrics)
        save_npz(out / "predictions.npz", **predictions)
        epoch_seconds = _logged(history, "epoch_seconds")
        train_seconds = _logged(history, "train_seconds")  # absent from the rows of runs resumed from older versions
        write_json(out / "run_info.json", dict(
            params=params, precision=resolved, keras_backend=keras.backend.backend(), accelerator=accelerator(),
            data_source=data.source, synthetic_data=data.synthetic, counts=data.counts(),
            epochs_run=metrics["epochs_run"], best_epoch=metrics["best_epoch"], fit_wall_seconds=fit_seconds,
            epochs_before_resume=epochs_before_resume,
            mean_epoch_seconds=float(np.mean(epoch_seconds)) if epoch_seconds else None,
            median_train_seconds=float(np.median(train_seconds)) if train_seconds else None,
            # training images over the median seconds of an epoch's training steps (validation and callbacks left out;
            # runs before these fields recorded `train_images_per_second`, the same over whole epochs)
            train_step_images_per_second=len(y_train) / float(np.median(train_seconds)) if train_seconds else None,
            parameters=best.count_params(), finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            command=asked["command"],
            **environment()))
        remove_folder(out / BACKUP)  # the run folder is complete: nothing left to resume
    return metrics


def run_settings(params: dict, precision: str, data: FerData) -> dict:
    """What a run records in its backup when it starts, for a resumed run to be checked against
    (`settings_differences`).

    Args:
        params: `train`'s training parameters (model, epochs, batch size, ..., the model options), as in run_info.json.
        precision: the precision policy the run computes in ("auto" resolved).
        data: the data it trains on.

    Returns:
        {"params", "precision", "data": {source, synthetic, images, sha256}, "command"}.
    """
    fingerprint = dict(source=data.source, synthetic=bool(data.synthetic), images=int(len(data.labels)),
                       sha256=data.fingerprint())
    command = "a notebook (Jupyter kernel)" if "ipykernel" in sys.argv[0] else command_line()
    return dict(params=params, precision=precision, data=fingerprint, command=command)


def settings_differences(recorded: dict, asked: dict) -> list[str]:
    """What differs between the settings a run was started with and those asked to resume it (`run_settings`).

    Parameters are compared through `training_params` (defaults filled in, lists and tuples alike); precision as
    resolved ("auto" and the policy it chose are the same); the data by its fingerprint.

    Args:
        recorded: the run's settings, from its backup.
        asked: the settings of the call that would resume it.

    Returns:
        One "name: the run has X, asked for Y" line per setting that differs, "data: ..." last; [] when none.
    """
    differences = _differences(_normalised(recorded.get("params", {})), _normalised(asked["params"]),
                               skip=("precision",))
    if recorded.get("precision") != asked["precision"]:
        differences.append(f"precision: the run has {recorded.get('precision')!r}, asked for {asked['precision']!r}")
    theirs, mine = recorded.get("data", {}), asked["data"]
    if theirs.get("sha256") != mine["sha256"]:
        differences.append(f"data: the run has {_data_summary(theirs)}, asked for {_data_summary(mine)}")
    return differences


def _data_summary(fingerprint: dict) -> str:
    """'SOURCE (N images, sha256 0123456789ab)' of a `run_settings` data fingerprint."""
    digest = str(fingerprint.get("sha256"))[:12]
    return f"{fingerprint.get('source')} ({fingerprint.get('images')} images, sha256 {digest})"


def resume_or_start(out: Path, settings: dict, fresh: bool = False) -> tuple[int, dict]:
    """Restore the interrupted run in `out` (`runfolder.resume_state`) if it was started with `settings`; else refuse.

    A backup written before runs recorded their settings resumes unchecked, with a printed note.

    Args:
        out: the run folder.
        settings: `run_settings` of the call.
        fresh: discard an interrupted run instead (it is not compared).

    Returns:
        The epochs the run has completed (0: a fresh start), and the settings its backup goes on recording.

    Raises:
        ResumeConflict: the interrupted run was started with other settings or data; `out` is left resumable.
    """
    epochs = resume_state(out, fresh=fresh)
    if not epochs:
        return 0, settings
    recorded = json.loads((out / BACKUP / SETTINGS).read_text()) if (out / BACKUP / SETTINGS).is_file() else None
    if recorded is None:
        print(f"Note: the backup in {out} predates recorded settings, so they cannot be compared with these: "
              "resuming as asked")
    elif differences := settings_differences(recorded, settings):
        raise ResumeConflict(out, differences, recorded.get("command"))
    finished = (out / BACKUP / FIT_FINISHED).exists()
    print(f"Resuming the interrupted run in {out} after epoch {epochs}"
          + (" (training had finished; writing its results)" if finished else ""))
    return epochs, recorded or settings


def _record_settings(callbacks: list[keras.callbacks.Callback], settings: dict) -> None:
    """Have the backup callback among `callbacks` keep `settings` in every backup it writes."""
    for cb in callbacks:
        if isinstance(cb, SafeBackupAndRestore):
            cb.settings = settings


def _logged(history: dict[str, list[float]], column: str) -> list[float]:
    """A history.csv column without its empty cells (rows written before the column existed)."""
    return [float(v) for v in history.get(column, []) if np.isfinite(v)]


NOT_TRAINING_PARAMS = ("verbose", "fresh")
"""`train` arguments that do not change what is trained (left out of the reuse check)."""
_TRAIN_DEFAULTS = {name: p.default for name, p in inspect.signature(train).parameters.items()
                   if p.default is not inspect.Parameter.empty}


def training_params(model_kind: str, **kwargs) -> dict:
    """Every parameter that decides what `train(model_kind, ..., **kwargs)` trains, defaults filled in.

    `train`'s own defaults (epochs, seed, schedule, protocol, precision...) and the model builder's (filters,
    dense_units, flip, batch_norm, dropout, se_ratio...) complete `kwargs`, so a run folder that recorded only what
    was passed explicitly compares equal to a call that spells out the defaults. Sequences become tuples.

    Args:
        model_kind: "baseline" or "se".
        **kwargs: keyword arguments of `train` (model options included), as passed or as recorded in run_info.json.

    Returns:
        A dict with "model" and one entry per training parameter.
    """
    from .models import MODEL_BUILDERS, build_cnn

    if model_kind not in MODEL_BUILDERS:
        raise ValueError(f"unknown model {model_kind!r}: expected one of {sorted(MODEL_BUILDERS)}")
    defaults = dict(_TRAIN_DEFAULTS)
    defaults.update({name: p.default for name, p in inspect.signature(build_cnn).parameters.items()
                     if name not in ("name", "se_ratio")})
    defaults.update({name: p.default for name, p in inspect.signature(MODEL_BUILDERS[model_kind]).parameters.items()
                     if p.default is not inspect.Parameter.empty})
    defaults["se_ratio"] = defaults.get("se_ratio")  # None for the baseline
    params = {**defaults, **kwargs, "model": model_kind}
    return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in params.items()
            if k not in NOT_TRAINING_PARAMS}


def reuse_differences(run_info: dict, data: FerData, model_kind: str, **kwargs) -> list[str]:
    """Why a finished run (its run_info.json) is not what `train(model_kind, data, ..., **kwargs)` would train.

    Returns one line per training parameter or data property that differs; [] when the run can be reused.
    """
    asked = training_params(model_kind, **kwargs)
    # an explicit precision equal to the one "auto" chose for that run is the same precision
    differences = _differences(_normalised(run_info.get("params", {})), asked,
                               skip=("precision",) if asked.get("precision") == run_info.get("precision") else ())
    if run_info.get("synthetic_data") != data.synthetic:
        differences.append(f"data: the run used {'synthetic' if run_info.get('synthetic_data') else 'FER2013'} "
                           f"data, this is {'synthetic' if data.synthetic else 'FER2013'}")
    elif run_info.get("counts") != data.counts():
        differences.append(f"data: the run's images per split and class differ from these "
                           f"({run_info.get('data_source')} vs {data.source})")
    return differences


def _normalised(params: dict) -> dict:
    """`training_params` of a recorded params dict ("model" included); {"model": ...} alone for an unknown model."""
    from .models import MODEL_BUILDERS

    rest = dict(params)
    kind = rest.pop("model", None)
    return training_params(kind, **rest) if kind in MODEL_BUILDERS else {"model": kind}


def _differences(recorded: dict, asked: dict, skip: tuple[str, ...] = ()) -> list[str]:
    """'NAME: the run has X, asked for Y' for each entry (except `skip`) that differs, in name order."""
    names = sorted(name for name in set(recorded) | set(asked) if name not in skip)
    return [f"{name}: the run has {recorded.get(name)!r}, asked for {asked.get(name)!r}"
            for name in names if recorded.get(name) != asked.get(name)]


def train_or_reuse(model_kind: str, data: FerData, out: str | os.PathLike, reuse: bool = True,
                   retrain: bool = True, **kwargs) -> dict:
    """Reuse the finished run in `out` when it was trained exactly as asked, else `train` into it.

    A run is reused only when every training parameter (`training_params`: model, widths, seed, epochs, schedule,
    protocol, flip, batch norm, dropout, precision...) and the data (images per split and class) match.

    Args:
        model_kind: "baseline" or "se".
        data: the data to train on (and to compare with the run's).
        out: the run folder.
        reuse: look for a finished run in `out` first (False: always train).
        retrain: when the run in `out` differs, train anew (True) or raise ValueError naming what differs (False).
        **kwargs: passed to `train`.

    Returns:
        The run's metrics (metrics.json).
    """
    out = Path(out)
    if reuse and (out / "metrics.json").is_file() and (out / "run_info.json").is_file():
        info = json.loads((out / "run_info.json").read_text())
        differences = reuse_differences(info, data, model_kind, **kwargs)
        if not differences:
            print(f"Reusing the finished run in {out} (trained on {info['data_source']} with the same parameters; "
                  "reuse=False retrains)")
            return json.loads((out / "metrics.json").read_text())
        message = f"Not reusing {out}: it was trained differently.\n  " + "\n  ".join(differences)
        if not retrain:
            raise ValueError(message)
        print(message + "\nTraining anew.")
    return train(model_kind, data, out, **kwargs)


def environment() -> dict:
    """Package versions, Python, CPU and core count, for run_info.json."""
    versions = {}
    for pkg in ("keras", "tensorflow", "jax", "torch", "numpy", "scikit-learn", "fer_utils"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return dict(versions=versions, python=platform.python_version(), platform=platform.platform(), cpu=cpu,
                cpu_count=os.cpu_count(), cpu_bf16=cpu_has_bf16())


def _read_history(path: Path) -> dict[str, list[float]]:
    """history.csv as columns of floats."""
    return pd.read_csv(path).to_dict(orient="list")
