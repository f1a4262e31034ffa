"""Training speed: the paper-style input pipeline against fer_utils' default training path.

(a) paper: ImageDataGenerator(rescale, width/height shift).flow_from_directory over extracted class
    folders, float32 - the setup of the paper's Section 2.1;
(b) ours: in-memory uint8 arrays fed as fer_utils trains (one tf.data pipeline on TensorFlow), shift and rescale
    as layers inside the model, precision "auto".
Same model definitions, same training images, batch 64, Adam. Prints images/s, seconds per epoch and (b)/(a),
ending with `speedup: <ratio>x` for the SE-CNN.

images/s is the steady-state rate of the training steps, timed by a callback from the first step after the warm-up
to the end of the last step. What a `fit` call costs beyond its steps (building and tearing down its data iterator)
is printed separately as the fit overhead: a real run fed numpy arrays pays it once per epoch (a fresh iterator
each), one fed `training_inputs`' repeated pipeline once per fit; never once per step.

    python benchmarks/train_speed.py [--data PATH] [--steps 60] [--warmup 10] [--ablation]

--configs times path (b) alone for the width study's configurations (dense 256, no dense dropout, flips), e.g.
`--configs se:32-64-128:bn baseline:48-96-192:bn se:32-64-128`: the rates that decide what a full run costs.

--ablation also times path (b) for the SE-CNN with one setting changed at a time (precision, the shift layer,
batch norm, XLA compilation, several steps per call), to show what each costs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from fer_utils.config import BATCH_SIZE, CLASSES, IMAGE_SIZE, SHIFT_RANGE
from fer_utils.data import describe, load_data, resolve_data_path
from fer_utils.hardware import environment, resolve_precision
from fer_utils.training import compiled_model, training_inputs


def class_folders(data, source: Path | None, tmp: Path) -> Path:
    """A `train/<class>/` tree for flow_from_directory: the real JPEGs where the source has them, else PNGs."""
    if source is not None and source.is_dir() and (source / "train").is_dir():
        return source / "train"
    if source is not None and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as zf:
            zf.extractall(tmp, [n for n in zf.namelist() if "train/" in n])
        return next(tmp.rglob("train"))
    x, y = data.xy("train")
    for i, (img, label) in enumerate(zip(x, y)):
        folder = tmp / "train" / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[..., 0]).save(folder / f"{i:06d}.png")
    return tmp / "train"


REPEATS = 3


class StepClock(keras.callbacks.Callback):
    """Times one fit's training steps: all of them, and those from step `skip` on."""

    def __init__(self, skip: int):
        super().__init__()
        self.skip = skip
        self.first = self.start = self.end = None
        self.start_step = self.end_step = 0

    def on_train_batch_begin(self, batch, logs=None):
        now = time.perf_counter()
        self.first = self.first or now
        if self.start is None and batch >= self.skip:
            self.start, self.start_step = now, batch

    def on_train_batch_end(self, batch, logs=None):
        self.end, self.end_step = time.perf_counter(), batch


def time_fit(model: keras.Model, fit_args, steps: int, warmup: int) -> tuple[float, float]:
    """(images/s of the steps after `warmup`, seconds of the fit call outside its steps): medians of REPEATS fits.

    One untimed fit first builds the model's train function. A shared 2-core VM varies by tens of percent from one
    run to the next; the median of repeats is steadier.
    """
    model.fit(**fit_args(warmup), epochs=1, verbose=0)
    rates, overheads = [], []
    for _ in range(REPEATS):
        clock = StepClock(warmup)
        start = time.perf_counter()
        model.fit(**fit_args(warmup + steps), epochs=1, verbose=0, callbacks=[clock])
        wall = time.perf_counter() - start
        rates.append((clock.end_step + 1 - clock.start_step) * BATCH_SIZE / (clock.end - clock.start))
        overheads.append(wall - (clock.end - clock.first))
    return float(np.median(rates)), float(np.median(overheads))


def paper_pipeline(kind: str, train_dir: Path, steps: int, warmup: int) -> tuple[float, float]:
    """(a): ImageDataGenerator + flow_from_directory, float32, preprocessing outside the model."""
    from tensorflow.keras.preprocessing.image import ImageDataGenerator  # the paper's legacy, TensorFlow-only API

    keras.mixed_precision.set_global_policy("float32")
    flow = ImageDataGenerator(rescale=1.0 / 255, width_shift_range=SHIFT_RANGE, height_shift_range=SHIFT_RANGE
                              ).flow_from_directory(train_dir, target_size=(IMAGE_SIZE, IMAGE_SIZE),
                                                    color_mode="grayscale", class_mode="categorical",
                                                    batch_size=BATCH_SIZE)
    model = compiled_model(kind, preprocess=False)
    return time_fit(model, lambda n: dict(x=flow, steps_per_epoch=n), steps, warmup)


def our_pipeline(kind: str, x: np.ndarray, y: np.ndarray, precision: str, steps: int, warmup: int,
                 **model_kwargs) -> tuple[float, float]:
    """(b): uint8 arrays in memory, preprocessing layers in the model, the chosen precision."""
    keras.mixed_precision.set_global_policy(precision)
    model = compiled_model(kind, **model_kwargs)
    onehot = keras.utils.to_categorical(y, len(CLASSES))
    rng = np.random.default_rng(0)

    def args(n):  # n batches, fed as fer_utils.training.train feeds its training images
        idx = rng.choice(len(x), n * BATCH_SIZE, replace=n * BATCH_SIZE > len(x))
        return training_inputs(x[idx], onehot[idx], BATCH_SIZE, seed=0)

    try:
        return time_fit(model, args, steps, warmup)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def study_config(text: str) -> tuple[str, str, dict]:
    """`se:32-64-128:bn` -> ("se:32-64-128:bn", "se", model options); an argparse type."""
    parts = text.split(":")
    try:
        if parts[0] not in ("baseline", "se") or len(parts) not in (2, 3) or parts[2:] not in ([], ["bn"]):
            raise ValueError
        filters = tuple(int(f) for f in parts[1].split("-"))
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"{text!r}: expected MODEL:F-F-F[:bn], e.g. se:32-64-128:bn") from None
    return text, parts[0], {"filters": filters, "batch_norm": parts[2:] == ["bn"], "dense_units": 256,
                            "dense_dropout": 0.0, "flip": True}


def time_configs(configs, x, y, precision: str, steps: int, warmup: int) -> None:
    """Print path (b)'s images/s per configuration, with what an epoch and 100 epochs of steps then take."""
    print("\n| configuration | img/s | s/epoch | 100 epochs |\n|---|---:|---:|---:|")
    for text, kind, options in configs:
        rate, _ = our_pipeline(kind, x, y, precision, steps, warmup, **options)
        print(f"| {text} | {rate:.0f} | {len(y) / rate:.0f} | {100 * len(y) / rate / 3600:.1f} h |", flush=True)
    print(f"\n(epoch = {len(y)} training images, steps only: evaluation adds a few seconds per epoch)")


def machine_line() -> str:
    """`machine: <cpu>, <n> cores | keras <version>, backend <name>`, the first line of a benchmark's report."""
    env = environment()
    return (f"machine: {env['cpu']}, {env['cpu_count']} cores | keras {env['versions'].get('keras')}, "
            f"backend {keras.backend.backend()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="FER2013 archive.zip/folder/csv (default: as fer_utils finds it)")
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per measurement")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before each measurement")
    parser.add_argument("--ablation", action="store_true", help="also time (b) with one setting changed at a time")
    parser.add_argument("--configs", nargs="+", type=study_config, metavar="MODEL:F-F-F[:bn]",
                        help="only time (b) for these width-study configurations (dense 256, flips, no dense dropout)")
    args = parser.parse_args()

    data = load_data(args.data)
    x, y = data.xy("train")
    precision = resolve_precision("auto")
    print(describe(data))
    print(f"{machine_line()} | (b) precision: {precision} | median of {REPEATS} x {args.steps} timed steps "
          f"of {BATCH_SIZE}")
    if args.configs:
        time_configs(args.configs, x, y, precision, args.steps, args.warmup)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        train_dir = class_folders(data, resolve_data_path(args.data), Path(tmp))
        for kind in ("baseline", "se"):
            a = paper_pipeline(kind, train_dir, args.steps, args.warmup)
            b = our_pipeline(kind, x, y, precision, args.steps, args.warmup)
            rows.append((kind, a, b))
    n = len(y)
    print("\n| model | (a) paper img/s | (a) s/epoch | (b) ours img/s | (b) s/epoch | (b)/(a) "
          "| fit overhead (a), (b) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, (a, a_extra), (b, b_extra) in rows:
        print(f"| {kind} | {a:.0f} | {n / a:.0f} | {b:.0f} | {n / b:.0f} | {b / a:.2f}x "
              f"| {a_extra:.1f} s, {b_extra:.1f} s |")
    print(f"\n(epoch = {n} training images, steps only; fit overhead = a fit call's time outside its steps)")
    if args.ablation:
        # XLA cannot compile RandomTranslation (Keras would fall back to no XLA), so it is timed without the shift.
        variants = {"default": ({}, precision), "float32": ({}, "float32"), "no shift layer": ({"shift": 0}, precision),
                    "with batch norm": ({"batch_norm": True}, precision),
                    "no shift layer, XLA": ({"shift": 0, "compile_kwargs": {"jit_compile": True}}, precision),
                    "16 steps per call": ({"compile_kwargs": {"steps_per_execution": 16}}, precision)}
        print("\n| SE-CNN, path (b) variant | precision | img/s | fit overhead |\n|---|---|---:|---:|")
        for name, (kwargs, prec) in variants.items():
            rate, extra = our_pipeline("se", x, y, prec, args.steps, args.warmup, **kwargs)
            print(f"| {name} | {prec} | {rate:.0f} | {extra:.1f} s |")
    print(f"speedup: {rows[-1][2][0] / rows[-1][1][0]:.2f}x")


if __name__ == "__main__":
    main()
