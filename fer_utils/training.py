"""Train a model with the paper's recipe and write a complete, resumable run folder.

Run folder: model.keras (best val accuracy), history.csv, metrics.json, predictions.npz,
run_info.json, and backup/ (Keras BackupAndRestore) while a run is unfinished. Training the same
folder again resumes an interrupted run from its backup (run_info.json's epochs_before_resume says so).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from .config import (BATCH_SIZE, CLASSES, EARLY_STOPPING_PATIENCE, LEARNING_RATE, MAX_EPOCHS, PRECISIONS, PROTOCOLS,
                     REDUCE_LR_FACTOR, REDUCE_LR_MIN, REDUCE_LR_PATIENCE, SCHEDULES)
from .data import FerData
from .evaluation import evaluate_splits
from .models import build_model



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


def resolve_precision(precision: str = "auto") -> str:
    """'auto' -> mixed_bfloat16 on a GPU or a CPU with native bf16, else float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: expected one of {PRECISIONS}")
    if precision == "auto":
        return "mixed_bfloat16" if accelerator() == "gpu" or cpu_has_bf16() else "float32"
    return precision


class EpochLog(keras.callbacks.Callback):
    """Adds the epoch's wall seconds and learning rate to the logs (so CSVLogger records them)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_seconds"] = time.perf_counter() - self._start
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def paper_callbacks(out: Path, patience: int = EARLY_STOPPING_PATIENCE,
                    reduce_lr: bool = True) -> list[keras.callbacks.Callback]:
    """The paper's EarlyStopping, ModelCheckpoint and ReduceLROnPlateau, plus a CSV log and resumable backups.

    When `out` holds an interrupted run, its best val accuracy so far is the bar a resumed epoch must beat
    to overwrite model.keras (and to reset EarlyStopping's patience).
    """
    resumed_best = _best_val_accuracy_so_far(out)
    plateau = [keras.callbacks.ReduceLROnPlateau(monitor="val_accuracy", mode="max", factor=REDUCE_LR_FACTOR,
                                                 patience=REDUCE_LR_PATIENCE, min_lr=REDUCE_LR_MIN, verbose=1)]
    return [
        EpochLog(),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience,
                                      restore_best_weights=True, baseline=resumed_best, verbose=1),
        keras.callbacks.ModelCheckpoint(out / "model.keras", monitor="val_accuracy", mode="max",
                                        save_best_only=True, initial_value_threshold=resumed_best),
        *(plateau if reduce_lr else []),
        keras.callbacks.CSVLogger(out / "history.csv", append=True),
        keras.callbacks.BackupAndRestore(out / "backup"),
    ]


def _interrupted_history(out: Path) -> dict[str, list[float]]:
    """history.csv of an interrupted run in `out` (one that left a backup), else {}."""
    if not ((out / "backup").exists() and (out / "history.csv").exists()):
        return {}
    return _read_history(out / "history.csv")


def _best_val_accuracy_so_far(out: Path) -> float | None:
    """The best val accuracy logged by an interrupted run in `out` that saved a checkpoint, else None."""
    logged = _interrupted_history(out).get("val_accuracy", [])
    return float(max(logged)) if logged and (out / "model.keras").exists() else None


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


def compiled_model(model_kind: str, learning_rate=LEARNING_RATE, compile_kwargs: dict | None = None,
                   **model_kwargs) -> keras.Model:
    """`build_model(model_kind, **model_kwargs)` compiled with the paper's Adam (`learning_rate`: a number or a
    schedule), categorical cross-entropy and accuracy; `compile_kwargs` go to `compile` as they are."""
    model = build_model(model_kind, **model_kwargs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy",
                  metrics=["accuracy"], **(compile_kwargs or {}))
    return model


def train(model_kind: str, data: FerData, out: str | os.PathLike, epochs: int = MAX_EPOCHS,
          batch_size: int = BATCH_SIZE, learning_rate: float = LEARNING_RATE, seed: int = 0,
          protocol: str = "clean", precision: str = "auto", patience: int = EARLY_STOPPING_PATIENCE,
          schedule: str = "plateau", verbose: int | str = "auto", **model_kwargs) -> dict:
    """Train 'baseline' or 'se' on `data` with the paper's recipe; write the run folder; return metrics.

    schedule="plateau" is the paper's (ReduceLROnPlateau); "cosine" is the short fixed schedule of the quick profile.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: expected one of {sorted(PROTOCOLS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "backup").exists():  # a fresh run, not the resumption of an interrupted one
        (out / "history.csv").unlink(missing_ok=True)
    epochs_before_resume = len(_interrupted_history(out).get("epoch", []))
    params = dict(model=model_kind, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                  protocol=protocol, precision=precision, patience=patience, schedule=schedule, **model_kwargs)
    resolved = resolve_precision(precision)
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy(resolved)
    try:
        x_train, y_train = data.xy("train")
        x_val, y_val = data.xy(PROTOCOLS[protocol])
        lr = learning_rate_schedule(schedule, learning_rate, steps_per_epoch(len(y_train), batch_size), epochs)
        model = compiled_model(model_kind, lr, **model_kwargs)
        n_classes = len(CLASSES)
        start = time.perf_counter()
        model.fit(**training_inputs(x_train, keras.utils.to_categorical(y_train, n_classes), batch_size, seed),
                  epochs=epochs, validation_data=(x_val, keras.utils.to_categorical(y_val, n_classes)),
                  callbacks=paper_callbacks(out, patience, reduce_lr=schedule == "plateau"), verbose=verbose)
        fit_seconds = time.perf_counter() - start
    finally:
        keras.mixed_precision.set_global_policy("float32")
    best = keras.models.load_model(out / "model.keras")
    metrics, predictions = evaluate_splits(best, data)
    history = _read_history(out / "history.csv")
    metrics.update(model=model_kind, best_epoch=int(np.argmax(history["val_accuracy"])) + 1,
                   epochs_run=len(history["val_accuracy"]))
    _write_json(out / "metrics.json", metrics)
    np.savez_compressed(out / "predictions.npz", **predictions)
    epoch_seconds = history.get("epoch_seconds", [])
    _write_json(out / "run_info.json", dict(
        params=params, precision=resolved, keras_backend=keras.backend.backend(), accelerator=accelerator(),
        data_source=data.source, synthetic_data=data.synthetic, counts=data.counts(),
        epochs_run=metrics["epochs_run"], best_epoch=metrics["best_epoch"], fit_wall_seconds=fit_seconds,
        epochs_before_resume=epochs_before_resume,
        mean_epoch_seconds=float(np.mean(epoch_seconds)) if epoch_seconds else None,
        train_images_per_second=len(y_train) / float(np.median(epoch_seconds)) if epoch_seconds else None,
        parameters=best.count_params(), finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command="a notebook (Jupyter kernel)" if "ipykernel" in sys.argv[0] else " ".join(sys.argv),
        **environment()))
    return metrics


def train_or_reuse(model_kind: str, data: FerData, out: str | os.PathLike, reuse: bool = True, **kwargs) -> dict:
    """Reuse a finished run folder trained on the same data when `reuse`, else `train` into it."""
    out = Path(out)
    if reuse and (out / "metrics.json").is_file() and (out / "run_info.json").is_file():
        info = json.loads((out / "run_info.json").read_text())
        if info["counts"] == data.counts() and info["synthetic_data"] == data.synthetic:
            print(f"Reusing the finished run in {out} (trained on {info['data_source']}; reuse=False retrains)")
            return json.loads((out / "metrics.json").read_text())
        print(f"Not reusing {out}: it was trained on other data ({info['data_source']})")
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


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")
