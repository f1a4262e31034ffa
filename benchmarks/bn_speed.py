"""Why batch norm halves bf16 training throughput here: Keras 3's BatchNormalization against TensorFlow's fused kernel.

    .venv/bin/python benchmarks/bn_speed.py [VARIANT ...]     (default: nobn keras half fused)

Times training steps of the SE-CNN (32-64-128, dense 256, flips, mixed_bfloat16, batch 64) on random uint8 images fed
by a repeated tf.data pipeline, one variant of its batch norm at a time:

- nobn: no batch norm (the paper's model);
- keras: `keras.layers.BatchNormalization`, as the models use it. Under mixed precision it casts its bf16 input to
  float32, computes the batch moments with `ops.moments` and normalises with `ops.batch_normalization`: each a chain
  of separate full-tensor ops, forward and backward, that TensorFlow does not fuse without XLA;
- half: the same statistics in float32, but the scale-and-shift applied in bf16 (a backend-agnostic rewrite that
  halves the float32 traffic);
- fused: TensorFlow's own fused kernel (`FusedBatchNormV3`, what tf.keras 2.x used), TensorFlow-only, as a reference.

Prints the median and the five readings of images/s (one untimed fit of 5 steps, then five fits of 40 steps, each
timed end to end). The layers differ only in training mode; inference falls back to Keras' own code.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import fer_utils.models as models  # noqa: E402

STEPS, REPEATS = 40, 5


class HalfBN(layers.BatchNormalization):
    """Statistics in float32, the scale-and-shift in the compute dtype (bf16)."""

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable):
            return super().call(inputs, training=training)
        mean, var = ops.moments(ops.cast(inputs, "float32"), axes=[0, 1, 2])
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + var * (1 - self.momentum))
        a = self.gamma * ops.rsqrt(var + self.epsilon)
        b = self.beta - mean * a
        return inputs * ops.cast(a, inputs.dtype) + ops.cast(b, inputs.dtype)


class FusedBN(layers.BatchNormalization):
    """TensorFlow's fused batch norm kernel (TensorFlow backend only)."""

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable):
            return super().call(inputs, training=training)
        y, mean, var = tf.compat.v1.nn.fused_batch_norm(inputs, self.gamma, self.beta, epsilon=self.epsilon,
                                                        is_training=True)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + var * (1 - self.momentum))
        return y


VARIANTS = {"nobn": ("no batch norm", None), "keras": ("keras BatchNormalization", layers.BatchNormalization),
            "half": ("f32 statistics, bf16 scale-and-shift", HalfBN), "fused": ("TensorFlow fused kernel", FusedBN)}


def images_per_second(bn_class) -> list[float]:
    """Five readings of training images/s for the SE-CNN with `bn_class` as its batch norm (None: none)."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    original = models.layers.BatchNormalization
    models.layers.BatchNormalization = bn_class or original
    try:
        model = models.build_model("se", filters=(32, 64, 128), dense_units=256, dense_dropout=0.0,
                                   batch_norm=bn_class is not None, flip=True)
    finally:
        models.layers.BatchNormalization = original
    models.compile_model(model)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (64 * 50, 48, 48, 1), dtype=np.uint8)
    y = keras.utils.to_categorical(rng.integers(0, 7, 64 * 50), 7)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64).repeat().prefetch(2)
    model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        model.fit(ds, steps_per_epoch=STEPS, epochs=1, verbose=0)
        rates.append(STEPS * 64 / (time.perf_counter() - start))
    return rates


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        print(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}", file=sys.stderr)
        return 2
    for name in names or list(VARIANTS):
        label, cls = VARIANTS[name]
        rates = images_per_second(cls)
        print(f"{label:40s} {np.median(rates):6.0f} img/s  {[round(r) for r in rates]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
