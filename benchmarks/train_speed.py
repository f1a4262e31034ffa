"""Training speed: the paper-style input pipeline against fer_utils' default training path.

(a) paper: ImageDataGenerator(rescale, width/height shift).flow_from_directory over extracted class
    folders, float32 - the setup of the paper's Section 2.1;
(b) ours: in-memory uint8 arrays, shift and rescale as layers inside the model, precision "auto".
Same model definitions, same training images, batch 64, Adam. Prints images/s, seconds per epoch and (b)/(a),
ending with `speedup: <ratio>x` for the SE-CNN.

    python benchmarks/train_speed.py [--data PATH] [--steps 60] [--warmup 10] [--ablation]

--ablation also times path (b) for the SE-CNN with one setting changed at a time (precision, the shift layer,
batch norm), to show what each costs.
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

from fer_utils.config import BATCH_SIZE, CLASSES, IMAGE_SIZE, LEARNING_RATE, SHIFT_RANGE
from fer_utils.data import describe, load_data, resolve_data_path
from fer_utils.models import build_model
from fer_utils.training import environment, resolve_precision


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


def compiled(kind: str, **kwargs) -> keras.Model:
    """The paper's model, compiled as in fer_utils.training."""
    model = build_model(kind, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


REPEATS = 3


def time_fit(model: keras.Model, fit_args: dict, steps: int, warmup: int) -> float:
    """Median images per second of REPEATS runs of `steps` training steps, after `warmup` untimed steps.

    A shared 2-core VM varies by tens of percent from one run to the next; the median of repeats is steadier.
    """
    model.fit(**fit_args(warmup), epochs=1, verbose=0)
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        model.fit(**fit_args(steps), epochs=1, verbose=0)
        rates.append(steps * BATCH_SIZE / (time.perf_counter() - start))
    return float(np.median(rates))


def paper_pipeline(kind: str, train_dir: Path, steps: int, warmup: int) -> float:
    """(a): ImageDataGenerator + flow_from_directory, float32, preprocessing outside the model."""
    from tensorflow.keras.preprocessing.image import ImageDataGenerator  # the paper's legacy, TensorFlow-only API

    keras.mixed_precision.set_global_policy("float32")
    flow = ImageDataGenerator(rescale=1.0 / 255, width_shift_range=SHIFT_RANGE, height_shift_range=SHIFT_RANGE
                              ).flow_from_directory(train_dir, target_size=(IMAGE_SIZE, IMAGE_SIZE),
                                                    color_mode="grayscale", class_mode="categorical",
                                                    batch_size=BATCH_SIZE)
    model = compiled(kind, preprocess=False)
    return time_fit(model, lambda n: dict(x=flow, steps_per_epoch=n), steps, warmup)


def our_pipeline(kind: str, x: np.ndarray, y: np.ndarray, precision: str, steps: int, warmup: int,
                 **model_kwargs) -> float:
    """(b): uint8 arrays in memory, preprocessing layers in the model, the chosen precision."""
    keras.mixed_precision.set_global_policy(precision)
    model = compiled(kind, **model_kwargs)
    onehot = keras.utils.to_categorical(y, len(CLASSES))
    rng = np.random.default_rng(0)

    def args(n):
        idx = rng.choice(len(x), n * BATCH_SIZE, replace=n * BATCH_SIZE > len(x))
        return dict(x=x[idx], y=onehot[idx], batch_size=BATCH_SIZE, shuffle=True)

    try:
        return time_fit(model, args, steps, warmup)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="FER2013 archive.zip/folder/csv (default: as fer_utils finds it)")
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per measurement")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before each measurement")
    parser.add_argument("--ablation", action="store_true", help="also time (b) with one setting changed at a time")
    args = parser.parse_args()

    data = load_data(args.data)
    x, y = data.xy("train")
    precision = resolve_precision("auto")
    env = environment()
    print(describe(data))
    print(f"machine: {env['cpu']}, {env['cpu_count']} cores | keras {env['versions'].get('keras')}, backend "
          f"{keras.backend.backend()} | (b) precision: {precision} | median of {REPEATS} x {args.steps} timed steps "
          f"of {BATCH_SIZE}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        train_dir = class_folders(data, resolve_data_path(args.data), Path(tmp))
        for kind in ("baseline", "se"):
            a = paper_pipeline(kind, train_dir, args.steps, args.warmup)
            b = our_pipeline(kind, x, y, precision, args.steps, args.warmup)
            rows.append((kind, a, b))
    n = len(y)
    print(f"\n| model | (a) paper img/s | (a) s/epoch | (b) ours img/s | (b) s/epoch | (b)/(a) |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind, a, b in rows:
        print(f"| {kind} | {a:.0f} | {n / a:.0f} | {b:.0f} | {n / b:.0f} | {b / a:.2f}x |")
    print(f"\n(epoch = {n} training images)")
    if args.ablation:
        variants = {"default": ({}, precision), "float32": ({}, "float32"), "no shift layer": ({"shift": 0}, precision),
                    "with batch norm": ({"batch_norm": True}, precision)}
        print("\n| SE-CNN, path (b) variant | precision | img/s |\n|---|---|---:|")
        for name, (kwargs, prec) in variants.items():
            print(f"| {name} | {prec} | {our_pipeline('se', x, y, prec, args.steps, args.warmup, **kwargs):.0f} |")
    print(f"speedup: {rows[-1][2] / rows[-1][1]:.2f}x")


if __name__ == "__main__":
    main()
