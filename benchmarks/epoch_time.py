"""Where a training epoch's wall time goes: waiting for the first step, the steps, validation, the callbacks.

Trains a model as fer_utils.training.train does (same model, precision, optimizer, schedule and callbacks) for a few
epochs and prints one line per epoch. train_speed.py times the steps alone; this shows what a real run adds to them.

    python benchmarks/epoch_time.py [--data PATH] [--model se] [--epochs 4] [--flip] [--dense-dropout 0.5]
                                    [--numpy-arrays]

The training images come as `fer_utils.training.training_inputs` gives them (on TensorFlow: one shuffled, repeated
tf.data pipeline for the whole fit). --numpy-arrays feeds the arrays to `fit` instead (Keras then builds a fresh
input iterator every epoch), the way fer_utils trained before, to compare the two.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import keras

from fer_utils.config import BATCH_SIZE, CLASSES, LEARNING_RATE
from fer_utils.data import describe, load_data
from fer_utils.hardware import resolve_precision
from fer_utils.training import (array_inputs, compiled_model, learning_rate_schedule, paper_callbacks, steps_per_epoch,
                                training_inputs)

from train_speed import machine_line  # the script next to this one


class EpochClock(keras.callbacks.Callback):
    """Prints, per epoch: epoch start -> first step, the steps, validation, and the callbacks between epochs."""

    def __init__(self):
        super().__init__()
        self.t: dict[str, float] = {}

    def on_epoch_begin(self, epoch, logs=None):
        now = time.perf_counter()
        if "end" in self.t:
            print(f"  callbacks between epochs {now - self.t['end']:.1f} s", flush=True)
        self.t = {"begin": now}

    def on_train_batch_begin(self, batch, logs=None):
        self.t.setdefault("first", time.perf_counter())

    def on_train_batch_end(self, batch, logs=None):
        self.t["last"] = time.perf_counter()

    def on_test_begin(self, logs=None):
        self.t["val"] = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        t, now = self.t, time.perf_counter()
        t["end"] = now
        print(f"epoch {epoch + 1}: wait for first step {t['first'] - t['begin']:.1f} s | steps "
              f"{t['last'] - t['first']:.1f} s | validation {now - t['val']:.1f} s | total {now - t['begin']:.1f} s",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="FER2013 archive.zip/folder/csv (default: as fer_utils finds it)")
    parser.add_argument("--model", choices=("baseline", "se"), default="se")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--dense-dropout", type=float, default=0.5)
    parser.add_argument("--numpy-arrays", action="store_true", help="feed numpy arrays, not training_inputs()")
    args = parser.parse_args()

    data = load_data(args.data)
    (x, y), (x_val, y_val) = data.xy("train"), data.xy("val")
    precision = resolve_precision("auto")
    print(describe(data))
    print(f"{machine_line()} | precision {precision} | {args.model}, flip={args.flip}, "
          f"dense_dropout={args.dense_dropout}, cosine schedule, batch {BATCH_SIZE}, "
          f"{'numpy arrays' if args.numpy_arrays else 'training_inputs()'}")
    keras.mixed_precision.set_global_policy(precision)
    steps = steps_per_epoch(len(y), BATCH_SIZE)
    model = compiled_model(args.model, learning_rate_schedule("cosine", LEARNING_RATE, steps, args.epochs),
                           flip=args.flip, dense_dropout=args.dense_dropout)
    onehot = keras.utils.to_categorical(y, len(CLASSES))
    train = (array_inputs(x, onehot, BATCH_SIZE) if args.numpy_arrays
             else training_inputs(x, onehot, BATCH_SIZE, seed=0))
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        model.fit(**train, epochs=args.epochs, validation_data=(x_val, keras.utils.to_categorical(y_val, len(CLASSES))),
                  verbose=0, callbacks=[EpochClock(), *paper_callbacks(Path(out), reduce_lr=False)])
        print(f"fit: {time.perf_counter() - start:.1f} s for {args.epochs} epochs")


if __name__ == "__main__":
    main()
