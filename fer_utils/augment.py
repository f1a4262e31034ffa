"""Augmentations beyond the paper, as Keras layers that act in training only (the robust-model issue, notebook 08).

Faces that reach `predict` come from phones and webcams: mirrored, brighter or darker, noisy, JPEG-compressed,
blurred or downscaled. `augmentation(x, names)` puts layers that draw such changes, at random strengths, into the
model after the paper's shift; at inference they pass their input through unchanged, so a saved model is still one
`.keras` file that maps raw pixels to probabilities. The layers work on raw pixels (0-255) with `keras.ops` only, so
they run on every Keras backend; RandomGamma and RandomDegradation are registered, so `keras.models.load_model` reads
models that contain them once this module is imported (fer_utils imports it wherever it loads a model).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from .config import AUGMENT, AUGMENTATIONS

# ---- notebooks/08_beyond_the_paper.ipynb, cells `#@save augment` (edit there; python -m fer_utils.export) ----
@keras.saving.register_keras_serializable(package="fer_utils")
class RandomGamma(layers.Layer):
    """x -> 255 (x / 255)^gamma per image, log(gamma) uniform in [-log(max_gamma), log(max_gamma)]; training only."""

    def __init__(self, max_gamma: float = 1.5, seed: int | None = None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if max_gamma < 1:
            raise ValueError(f"max_gamma must be >= 1, got {max_gamma}")
        self.max_gamma, self.seed = max_gamma, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training:
            return x
        log_max = float(np.log(self.max_gamma))
        gamma = ops.exp(keras.random.uniform((ops.shape(x)[0], 1, 1, 1), -log_max, log_max, seed=self.seed_generator))
        return 255.0 * ops.power(ops.clip(x, 0.0, 255.0) / 255.0, gamma)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_gamma": self.max_gamma, "seed": self.seed}


def resize_matrix(size: int, small: int) -> np.ndarray:
    """The (size, size) matrix R with R @ x @ R.T = x shrunk to `small` pixels by area averaging, then enlarged back
    to `size` by bilinear interpolation: a low-resolution camera or a thumbnail, as a linear map."""
    down = np.zeros((small, size))
    edges = np.arange(small + 1) * size / small
    for j in range(small):  # output pixel j averages the input over [edges[j], edges[j+1])
        for i in range(int(np.floor(edges[j])), int(np.ceil(edges[j + 1]))):
            down[j, i] = min(edges[j + 1], i + 1) - max(edges[j], i)
    down /= down.sum(axis=1, keepdims=True)
    up = np.zeros((size, small))
    u = np.clip((np.arange(size) + 0.5) * small / size - 0.5, 0, small - 1)  # half-pixel centres
    lo = np.floor(u).astype(int)
    hi = np.minimum(lo + 1, small - 1)
    up[np.arange(size), lo] += 1 - (u - lo)
    up[np.arange(size), hi] += u - lo
    return (up @ down).astype(np.float32)


JPEG_LUMINANCE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=np.float32)
"""The JPEG standard's luminance quantisation table (ITU-T T.81, Annex K), scaled by quality as libjpeg does."""


def dct_matrix(n: int = 8) -> np.ndarray:
    """The orthonormal DCT-II matrix C (n, n): C @ block @ C.T is the 2-D DCT of an n x n block."""
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    c = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    c[0] /= np.sqrt(2.0)
    return c.astype(np.float32)


@keras.saving.register_keras_serializable(package="fer_utils")
class RandomDegradation(layers.Layer):
    """What a cheap camera and the web do to a photo, at random strengths, each step on a random part of the batch.

    Per image and independently, each with probability `rate`: (1) optics: a Gaussian blur (sigma uniform in
    [0.3, `blur`]) or a downscale to a fraction of the size (uniform in `downscale`) and back; (2) sensor noise,
    Gaussian with sigma uniform in [0, `noise`] grey levels, then rounding to whole grey levels; (3) JPEG compression
    at a quality uniform in `jpeg_quality`: 8x8 DCT, quantisation by libjpeg's scaled luminance table, inverse DCT
    (greyscale JPEG is exactly this lossy step; the entropy coding after it is lossless). Output stays in 0-255.
    Expects square (N, S, S, 1) images with S a multiple of 8; identity at inference.
    """

    def __init__(self, rate: float = 0.5, noise: float = 20.0, jpeg_quality: tuple[float, float] = (5, 95),
                 blur: float = 2.0, downscale: tuple[float, float] = (0.3, 0.8), seed: int | None = None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be in [0, 1], got {rate}")
        if not 1 <= jpeg_quality[0] <= jpeg_quality[1] <= 100:
            raise ValueError(f"jpeg_quality must be 1 <= low <= high <= 100, got {jpeg_quality}")
        if not 0 < downscale[0] <= downscale[1] <= 1:
            raise ValueError(f"downscale must be 0 < low <= high <= 1, got {downscale}")
        if blur < 0.3 or noise < 0:
            raise ValueError(f"blur must be >= 0.3 and noise >= 0, got blur={blur}, noise={noise}")
        self.rate, self.noise, self.blur, self.seed = rate, noise, blur, seed
        self.jpeg_quality, self.downscale = tuple(jpeg_quality), tuple(downscale)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        size = input_shape[1]
        if size is None or size != input_shape[2] or size % 8 or input_shape[3] != 1:
            raise ValueError(f"RandomDegradation expects (N, S, S, 1) images with S a multiple of 8, got {input_shape}")
        small = sorted({max(2, round(size * f)) for f in np.linspace(*self.downscale, 8)})
        self._resize = np.stack([resize_matrix(size, s) for s in small])
        self._sq_dist = ((np.arange(size)[:, None] - np.arange(size)[None, :]) ** 2).astype(np.float32)

    def _coin(self, n):
        return keras.random.uniform((n,), seed=self.seed_generator) < self.rate

    def _uniform(self, n, low, high):
        return keras.random.uniform((n,), low, high, seed=self.seed_generator)

    def _optics(self, x, n):
        """x (N, S, S) -> A x A^T, A a per-image blur, downscale or identity matrix (S, S)."""
        sigma = self._uniform(n, 0.3, self.blur)[:, None, None]
        gauss = ops.exp(-ops.convert_to_tensor(self._sq_dist)[None] / (2.0 * sigma ** 2))
        gauss = gauss / ops.sum(gauss, axis=2, keepdims=True)  # rows sum to 1: the border keeps its brightness
        pick = keras.random.randint((n,), 0, len(self._resize), seed=self.seed_generator)
        resize = ops.take(ops.convert_to_tensor(self._resize), pick, axis=0)
        use_blur = (self._uniform(n, 0.0, 1.0) < 0.5)[:, None, None]
        eye = ops.eye(x.shape[1], dtype=x.dtype)[None]
        a = ops.where(self._coin(n)[:, None, None], ops.where(use_blur, gauss, resize), eye)
        return ops.matmul(ops.matmul(a, x), ops.transpose(a, (0, 2, 1)))

    def _jpeg(self, x, n):
        """x (N, S, S) in 0-255 -> its JPEG round trip at a random quality (per image)."""
        size = x.shape[1]
        q = self._uniform(n, *self.jpeg_quality)
        scale = ops.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)[:, None, None]
        table = ops.clip(ops.floor((ops.convert_to_tensor(JPEG_LUMINANCE)[None] * scale + 50.0) / 100.0), 1.0, 255.0)
        table = table[:, None, None]  # (N, 1, 1, 8, 8): one table per image, for all its blocks
        blocks = ops.transpose(ops.reshape(x - 128.0, (-1, size // 8, 8, size // 8, 8)), (0, 1, 3, 2, 4))
        c = ops.convert_to_tensor(dct_matrix(8))
        coefficients = ops.matmul(ops.matmul(c, blocks), ops.transpose(c))
        blocks = ops.matmul(ops.matmul(ops.transpose(c), ops.round(coefficients / table) * table), c)
        out = ops.reshape(ops.transpose(blocks, (0, 1, 3, 2, 4)), (-1, size, size)) + 128.0
        return ops.clip(ops.round(out), 0.0, 255.0)

    def call(self, x, training=None):
        if not training:
            return x
        n = ops.shape(x)[0]
        y = self._optics(x[..., 0], n)
        sigma = ops.where(self._coin(n), self._uniform(n, 0.0, self.noise), 0.0)[:, None, None]
        y = ops.clip(ops.round(y + sigma * keras.random.normal(ops.shape(y), seed=self.seed_generator)), 0.0, 255.0)
        y = ops.where(self._coin(n)[:, None, None], self._jpeg(y, n), y)
        return y[..., None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise": self.noise, "jpeg_quality": self.jpeg_quality,
                "blur": self.blur, "downscale": self.downscale, "seed": self.seed}


def augmentation(x, names: tuple[str, ...] = AUGMENTATIONS):
    """Apply the named augmentation groups to the raw-pixel tensor `x` (N, 48, 48, 1), in training only.

    Args:
        x: the model's input after the paper's shift, pixels 0-255.
        names: groups from AUGMENTATIONS (applied in that order, whatever the order here): geometric (rotation and
            zoom), photometric (gamma, contrast, brightness), degrade (blur or downscale, noise, JPEG), erase
            (random erasing). Strengths: `config.AUGMENT`.

    Returns:
        The augmented tensor, pixels 0-255 (unchanged at inference).
    """
    names = canonical(names)
    a = AUGMENT
    if "geometric" in names:
        x = layers.RandomRotation(a["rotation_degrees"] / 360, fill_mode="nearest", dtype="float32",
                                  name="augment_rotate")(x)
        x = layers.RandomZoom(a["zoom"], fill_mode="nearest", dtype="float32", name="augment_zoom")(x)
    if "photometric" in names:
        x = RandomGamma(a["gamma"], name="augment_gamma")(x)
        x = layers.RandomContrast(a["contrast"], value_range=(0, 255), dtype="float32", name="augment_contrast")(x)
        x = layers.RandomBrightness(a["brightness"] / 255, value_range=(0, 255), dtype="float32",
                                    name="augment_brightness")(x)
    if "degrade" in names:
        x = RandomDegradation(a["degrade_rate"], a["noise"], a["jpeg_quality"], a["blur"], a["downscale"],
                              name="augment_degrade")(x)
    if "erase" in names:
        rate = (a["erase_rate"], a["erase_rate"])  # a pair: every face with this probability (one number: below it)
        x = layers.RandomErasing(rate, scale=a["erase_scale"], value_range=(0, 255), dtype="float32",
                                 name="augment_erase")(x)
    return x


def canonical(names) -> tuple[str, ...]:
    """Augmentation names in AUGMENTATIONS' order, each once ('degrade,photometric' and the reverse are one recipe).

    Raises ValueError naming any unknown name."""
    names = tuple(names)
    unknown = sorted(set(names) - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}: expected some of {', '.join(AUGMENTATIONS)}")
    return tuple(n for n in AUGMENTATIONS if n in names)
# ---- end of notebooks/08_beyond_the_paper.ipynb ----
