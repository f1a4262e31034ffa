"""Train a model with the paper's recipe and write a complete, resumable run folder.

Run folder: model.keras (best val accuracy), history.csv, metrics.json, predictions.npz, run_info.json, and backup/
(Keras BackupAndRestore) while a run is unfinished. Training the same folder again resumes an interrupted run from its
backup (run_info.json's epochs_before_resume says so), provided it is asked with the settings and data the run was
started with (`run_settings`); otherwise `train` refuses (`ResumeConflict`) unless told `fresh=True`. One process at a
time trains into a folder (`locking`). The callbacks list and the `fit` call (`paper_callbacks`, `fit_model`) are
written in notebook 04, where each argument is explained, and exported here by `python -m fer_utils.export`: edit them
there. The callbacks beyond Keras' own are in `callbacks`; the precision "auto" picks for this machine, in `hardware`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from .augment import canonical
from .callbacks import (EpochLog, ResumeCounters, SafeBackupAndRestore, SafeCSVLogger, SafeModelCheckpoint,
                        StopOnSignal, TestSplitsLog, TrainingInterrupted)
from .config import (BATCH_SIZE, CLASSES, EARLY_STOPPING_PATIENCE, LABEL_SMOOTHING, LEARNING_RATE, MAX_EPOCHS,
                     PRECISION, PROTOCOL, PROTOCOLS, REDUCE_LR_FACTOR, REDUCE_LR_MIN, REDUCE_LR_PATIENCE, SCHEDULE,
                     SCHEDULES, WEIGHT_DECAY)
from .dataset import FerData
from .evaluation import evaluate_checkpoint
from .hardware import accelerator, environment, resolve_precision
from .locking import one_writer
from .models import build_model, compile_model
from .run_settings import resume_or_start, reuse_differences, run_settings
from .runfolder import BACKUP, FIT_FINISHED, HISTORY, remove_folder, save_npz, write_json


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
          protocol: str = PROTOCOL, precision: str = PRECISION, patience: int = EARLY_STOPPING_PATIENCE,
          schedule: str = SCHEDULE, label_smoothing: float = LABEL_SMOOTHING, weight_decay: float = WEIGHT_DECAY,
          verbose: int | str = "auto", fresh: bool = False, **model_kwargs) -> dict:
    """Train 'baseline' or 'se' on `data` with the paper's recipe; write the run folder `out`; return its metrics.

    Notebook 04's `fit_model` and `paper_callbacks` do the training; an interrupted run in `out` is resumed when asked
    with the settings and data it was started with (`run_settings.resume_or_start`).

    Args:
        model_kind: "baseline" or "se".
        data: the images; training on "train", validating on PublicTest or all test images (`protocol`).
        out: the run folder (created; an interrupted run in it is resumed, anything else is overwritten).
        epochs: the most epochs (the paper: 100; EarlyStopping usually stops sooner).
        batch_size: images per step (the paper: 64).
        learning_rate: Adam's rate (the paper: 0.002); the peak rate under the cosine schedule.
        seed: seeds the weights, the shuffling and the augmentation.
        protocol: "clean" validates on PublicTest, "paper" on all 7,178 test images (the paper's way).
        precision: a `config.PRECISIONS` policy ("auto": `hardware.resolve_precision`); the caller's is restored.
        patience: EarlyStopping's patience in epochs (the paper: 16).
        schedule: "plateau" is the paper's (ReduceLROnPlateau); "cosine" the quick profile's short fixed schedule.
        label_smoothing: label smoothing of the cross-entropy (the paper: 0).
        weight_decay: AdamW's decoupled weight decay (0: the paper's Adam).
        verbose: Keras' fit verbosity (2: one line per epoch; 0 silences the callbacks' messages too).
        fresh: discard an interrupted run in `out` and start afresh, instead of resuming it (CLI: --fresh).
        **model_kwargs: options of the model builder (filters, dense_units, se_ratio, flip, augment, ...).

    Returns:
        The metrics written to metrics.json: loss, accuracy and confusion matrix per split, best epoch, epochs run.

    Raises:
        TrainingInterrupted: after SIGINT or SIGTERM; the run folder keeps its last complete epoch.
        ResumeConflict: `out` holds an interrupted run started with other settings or data (left resumable).
        RunFolderBusy: another process is training into `out` (`locking.one_writer`); nothing in it is touched.
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
        asked = run_settings(params, resolve_precision(precision), data)
        epochs_before_resume, settings = resume_or_start(out, asked, fresh)  # else a fresh start
        keras.utils.set_random_seed(seed)
        fit_seconds = None  # stays None when the run was killed while writing its results: only those are left
        if not (out / BACKUP / FIT_FINISHED).exists():
            with _global_policy(asked["precision"]):
                x_train, y_train = data.xy("train")
                lr = learning_rate_schedule(schedule, learning_rate, steps_per_epoch(len(y_train), batch_size), epochs)
                model = compiled_model(model_kind, lr, dict(label_smoothing=label_smoothing, weight_decay=weight_decay),
                                       **model_kwargs)
                start = time.perf_counter()
                recipe = paper_callbacks(out, patience, schedule == "plateau", verbose=0 if verbose == 0 else 1)
                _record_settings(recipe, settings)
                stop_on_signal = StopOnSignal()
                callbacks = [TestSplitsLog(data), *recipe, ResumeCounters(_interrupted_history(out), recipe),
                             stop_on_signal]
                with _explained_stop(out, fresh, stop_on_signal):
                    fit_model(model, x_train, y_train, data.xy(PROTOCOLS[protocol]), callbacks, epochs=epochs,
                              batch_size=batch_size, seed=seed, verbose=verbose)
                fit_seconds = time.perf_counter() - start
        metrics = _write_results(out, data, asked, epochs_before_resume, fit_seconds)
        remove_folder(out / BACKUP)  # the run folder is complete: nothing left to resume
    return metrics


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


@contextlib.contextmanager
def _global_policy(policy: str):
    """Keras' global dtype policy set to `policy` inside the block; the caller's is restored after, however it ends."""
    callers_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(callers_policy)


@contextlib.contextmanager
def _explained_stop(out: Path, fresh: bool, stop_on_signal: StopOnSignal):
    """Inside the block, a stop by `stop_on_signal` leaves as a `TrainingInterrupted` that says how many epochs `out`
    keeps and how to resume; the signals go back to their previous handlers however the block ends."""
    try:
        yield
    except TrainingInterrupted as stop:
        done = len(pd.read_csv(out / BACKUP / HISTORY)) if (out / BACKUP / HISTORY).exists() else 0
        again = "it again without fresh=True (--fresh)" if fresh else "the same command again"
        raise TrainingInterrupted(
            f"Stopped by {stop.args[0]}: {out} keeps its last complete epoch ({done}); run {again} to resume "
            "from there") from None
    finally:
        stop_on_signal.restore()


def _record_settings(callbacks: list[keras.callbacks.Callback], settings: dict) -> None:
    """Have the backup callback among `callbacks` keep `settings` in every backup it writes."""
    for cb in callbacks:
        if isinstance(cb, SafeBackupAndRestore):
            cb.settings = settings


def _write_results(out: Path, data: FerData, settings: dict, epochs_before_resume: int,
                   fit_seconds: float | None) -> dict:
    """Evaluate the best checkpoint of a trained run folder (as a float32 copy: `evaluation.evaluate_checkpoint`);
    write metrics.json, predictions.npz, then run_info.json.

    Args:
        out: the run folder, its training done.
        data: the images it was trained on.
        settings: the call's `run_settings` (params, precision, command), recorded in run_info.json.
        epochs_before_resume: the epochs completed before this call resumed the run (0: none).
        fit_seconds: the wall seconds of this call's `fit` (None: it had nothing left to fit).

    Returns:
        The metrics written to metrics.json.
    """
    best = keras.models.load_model(out / "model.keras")
    metrics, predictions = evaluate_checkpoint(best, data)  # in float32, whatever it trained in
    history = _read_history(out / HISTORY)
    metrics.update(model=settings["params"]["model"], best_epoch=int(np.argmax(history["val_accuracy"])) + 1,
                   epochs_run=len(history["val_accuracy"]))
    write_json(out / "metrics.json", metrics)
    save_npz(out / "predictions.npz", **predictions)
    n_train = int(data.mask("train").sum())
    epoch_seconds = _logged(history, "epoch_seconds")
    train_seconds = _logged(history, "train_seconds")  # absent from the rows of runs resumed from older versions
    write_json(out / "run_info.json", dict(
        params=settings["params"], precision=settings["precision"], keras_backend=keras.backend.backend(),
        accelerator=accelerator(), data_source=data.source, synthetic_data=data.synthetic, counts=data.counts(),
        epochs_run=metrics["epochs_run"], best_epoch=metrics["best_epoch"], fit_wall_seconds=fit_seconds,
        epochs_before_resume=epochs_before_resume,
        mean_epoch_seconds=float(np.mean(epoch_seconds)) if epoch_seconds else None,
        median_train_seconds=float(np.median(train_seconds)) if train_seconds else None,
        # training images over the median seconds of an epoch's training steps (validation and callbacks left out;
        # runs before these fields recorded `train_images_per_second`, the same over whole epochs)
        train_step_images_per_second=n_train / float(np.median(train_seconds)) if train_seconds else None,
        parameters=best.count_params(), finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=settings["command"],
        **environment()))
    return metrics


def _logged(history: dict[str, list[float]], column: str) -> list[float]:
    """A history.csv column without its empty cells (rows written before the column existed)."""
    return [float(v) for v in history.get(column, []) if np.isfinite(v)]


def _read_history(path: Path) -> dict[str, list[float]]:
    """history.csv as columns of floats."""
    return pd.read_csv(path).to_dict(orient="list")
