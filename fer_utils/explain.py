"""Where a trained CNN looks and how it breaks: Grad-CAM, occlusion sensitivity, face-region mass, SE gates, and
benign image perturbations (notebook 06).

Everything is `keras`/`keras.ops` code except `_value_and_gradient`, the one backend-specific function (a gradient).
"""

from __future__ import annotations

import io

import keras
import numpy as np
import pandas as pd
from keras import layers, ops
from PIL import Image
from scipy import ndimage

from .config import IMAGE_SIZE, ROBUSTNESS_TARGETS

FACE_REGIONS: dict[str, tuple[slice, slice]] = {
    "eyes and brows": (slice(9, 22), slice(6, 42)),
    "nose": (slice(22, 32), slice(17, 31)),
    "mouth": (slice(33, 44), slice(12, 36)),
}
"""Fixed boxes (rows, columns) on the 48x48 grid, read off the mean FER2013 training face (faces are roughly aligned:
eyes near row 18, mouth near row 38)."""

PERTURBATIONS: dict[str, tuple[float, ...]] = {
    "mirror": (1,),
    "shift": (2, 4, 6),
    "brightness": (-60, -30, 30, 60),
    "contrast": (0.75, 0.5, 0.25),
    "noise": (5, 10, 20),
    "jpeg": (30, 10, 5),
    "blur": (0.5, 1.0, 1.5),
}
"""Benign changes and their strengths: mirror (left-right), shift (pixels, random direction), brightness (grey levels
added), contrast (factor around each image's mean), noise (Gaussian sigma, grey levels), jpeg (quality: lower is
stronger), blur (Gaussian sigma, pixels)."""


# ---------------------------------------------------------------------------------------------------------------------
# Models: float32 copies, splitting at a layer, the one gradient


def float32_copy(model: keras.Model, logits: bool = False) -> keras.Model:
    """A copy of `model` computing in float32 (e.g. of a mixed-bfloat16 model), with the same weights.

    Args:
        model: a functional Keras model.
        logits: drop the output layer's activation (softmax), so the copy returns class scores before softmax,
            as Grad-CAM wants.
    Returns:
        A new model; `model` is left unchanged.
    """
    out_name = model.layers[-1].name

    def clone(layer):
        config = {**layer.get_config(), "dtype": "float32"}
        if logits and layer.name == out_name and "activation" in config:
            config["activation"] = "linear"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def load_float32(path) -> keras.Model:
    """A saved model (augmentation layers and all) as a float32 copy, for evaluations that must not depend on the
    precision it was trained in."""
    from . import augment  # noqa: F401  (registers the augmentation layers a model may hold)

    return float32_copy(keras.models.load_model(path, compile=False))


def feature_layer(model: keras.Model) -> str:
    """Name of the layer whose output enters the model's last max-pooling: the last conv block's feature map
    (after the SE scale in the SE-CNN: block3_se_scale; the baseline's block3_conv2 or block3_conv2_relu)."""
    pools = [layer for layer in model.layers if isinstance(layer, layers.MaxPooling2D)]
    if not pools:
        raise ValueError(f"{model.name}: no MaxPooling2D layer; pass layer_name")
    return next(layer.name for layer in model.layers if layer.output is pools[-1].input)


def split_model(model: keras.Model, layer_name: str) -> tuple[keras.Model, keras.Model]:
    """Cut `model` at a layer: body(images) -> that layer's output A; head(A) -> the model's output.

    The head must depend on the image only through A (true for any layer of a plain chain, as our CNNs after a
    block's last layer).
    """
    cut = model.get_layer(layer_name).output
    return keras.Model(model.inputs, cut, name="body"), keras.Model(cut, model.outputs, name="head")


def _value_and_gradient(fn, x) -> tuple[np.ndarray, np.ndarray]:
    """`fn(x)` (one score per image) and the gradient of their sum with respect to `x`, as NumPy arrays.

    keras.ops has no generic gradient, so this is the one backend-specific function of the course: a
    tf.GradientTape on TensorFlow, jax.value_and_grad on JAX, torch.autograd on PyTorch. Images are independent
    (inference mode), so the gradient of the sum holds each image's own gradient.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        g = tape.gradient(y, x)
    elif backend == "jax":
        import jax

        def total(v):
            scores = fn(v)
            return scores.sum(), scores

        (_, y), g = jax.value_and_grad(total, has_aux=True)(ops.convert_to_tensor(x))
    elif backend == "torch":
        import torch

        x = ops.convert_to_tensor(x).detach().requires_grad_(True)
        y = fn(x)
        (g,) = torch.autograd.grad(y.sum(), x)
    else:
        raise NotImplementedError(f"Grad-CAM needs a gradient: backend {backend!r} is not supported")
    return ops.convert_to_numpy(y), ops.convert_to_numpy(g)


# ---------------------------------------------------------------------------------------------------------------------
# Spatial explanations


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its maximum (all-zero maps stay zero)."""
    top = maps.reshape(len(maps), -1).max(1)
    return (maps / np.where(top > 0, top, 1)[:, None, None]).astype(np.float32)


def grad_cam(model: keras.Model, images: np.ndarray, class_index: int | np.ndarray | None = None,
             layer_name: str | None = None, batch_size: int = 256) -> np.ndarray:
    """Grad-CAM heat maps (Selvaraju et al., 2017; as in the keras.io example), upsampled to the image size.

    For the feature maps A^k of `layer_name` and the class score y^c before softmax:
    alpha_k = mean over positions of dy^c/dA^k, map = ReLU(sum_k alpha_k A^k), bilinearly resized and divided by
    its maximum.

    Args:
        model: a classifier ending in a softmax layer (it is copied into float32 with the softmax dropped).
        images: (N, H, W, 1) raw pixels, as the model takes them.
        class_index: the class to explain: one int, one per image (N,), or None for each image's predicted class.
        layer_name: the feature map to use; None: feature_layer(model).
        batch_size: images per gradient computation.
    Returns:
        (N, H, W) float32 maps in [0, 1].

    The feature maps come from `body.predict`, a compiled forward pass (on a CPU about two thirds of the time of
    calling the body eagerly); only the small head (last pooling and dense layers) is differentiated.
    """
    scorer = float32_copy(model, logits=True)
    body, head = split_model(scorer, layer_name or feature_layer(scorer))
    n = len(images)
    classes = None if class_index is None else np.broadcast_to(np.asarray(class_index), (n,))
    out = np.empty((n, images.shape[1], images.shape[2]), dtype=np.float32)
    for start in range(0, n, batch_size):
        x = np.asarray(images[start:start + batch_size], dtype=np.float32)
        feats = ops.convert_to_tensor(np.asarray(body.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32))
        if classes is None:
            chosen = ops.argmax(head(feats, training=False), axis=-1)
        else:
            chosen = ops.convert_to_tensor(classes[start:start + batch_size])
        onehot = ops.one_hot(chosen, scorer.output.shape[-1])

        def score(a, onehot=onehot):
            return ops.sum(head(a, training=False) * onehot, axis=-1)

        _, grads = _value_and_gradient(score, feats)
        feats = ops.convert_to_numpy(feats)
        alpha = grads.mean(axis=(1, 2), keepdims=True)  # (B, 1, 1, K)
        cam = np.maximum((alpha * feats).sum(-1), 0.0)[..., None]  # (B, h, w, 1)
        resized = ops.image.resize(cam, (images.shape[1], images.shape[2]), interpolation="bilinear")
        out[start:start + len(cam)] = _normalise(np.maximum(ops.convert_to_numpy(resized)[..., 0], 0.0))
    return out


def occlusion_map(model: keras.Model, images: np.ndarray, class_index: np.ndarray, patch: int = 8, stride: int = 4,
                  fill: int = 128, batch_size: int = 512) -> np.ndarray:
    """Occlusion sensitivity (Zeiler and Fergus, 2014): slide a grey patch, record the drop in one class's probability.

    Args:
        model: a classifier returning probabilities.
        images: (N, H, W, 1) raw pixels.
        class_index: (N,) the class whose probability is watched (e.g. the true label).
        patch, stride: the square patch's side and step, in pixels; fill: its grey level.
    Returns:
        (N, H, W) float32: at each pixel, the mean over the patches covering it of p(clean) - p(occluded);
        positive where hiding the pixel hurts the class.
    """
    n, h, w = images.shape[:3]
    class_index = np.broadcast_to(np.asarray(class_index), (n,))
    tops = list(range(0, h - patch + 1, stride))
    lefts = list(range(0, w - patch + 1, stride))
    masks = np.zeros((len(tops) * len(lefts), h, w), dtype=bool)
    for k, (top, left) in enumerate((t, lf) for t in tops for lf in lefts):
        masks[k, top:top + patch, left:left + patch] = True
    coverage = masks.sum(0)
    clean = np.asarray(model.predict(images, batch_size=batch_size, verbose=0))[np.arange(n), class_index]
    out = np.zeros((n, h, w), dtype=np.float32)
    chunk = max(1, 8192 // len(masks))
    for start in range(0, n, chunk):
        x = images[start:start + chunk]
        occluded = np.where(masks[None, ..., None], np.asarray(fill, dtype=x.dtype), x[:, None])
        probs = np.asarray(model.predict(occluded.reshape(-1, h, w, x.shape[-1]), batch_size=batch_size, verbose=0))
        p = probs.reshape(len(x), len(masks), -1)[np.arange(len(x)), :, class_index[start:start + len(x)]]
        drop = clean[start:start + len(x), None] - p  # (B, P)
        out[start:start + len(x)] = np.tensordot(drop, masks.astype(np.float32), axes=(1, 0)) / coverage
    return out


def map_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each pair of maps a[i], b[i] over their pixels: (N,), NaN where a map is constant."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    denom = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(1) / denom, np.nan)


def region_mass(maps: np.ndarray, regions: dict[str, tuple[slice, slice]] = FACE_REGIONS) -> pd.DataFrame:
    """Share of each map's total (non-negative) mass inside each face region, plus 'elsewhere'.

    Args:
        maps: (N, H, W) heat maps (negative values count as 0).
        regions: name -> (row slice, column slice); boxes must not overlap.
    Returns:
        DataFrame (N rows, one column per region and 'elsewhere'); rows sum to 1 (NaN for an all-zero map).
    """
    maps = np.maximum(np.asarray(maps, dtype=np.float64), 0)
    total = maps.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = {name: maps[:, r, c].sum(axis=(1, 2)) / total for name, (r, c) in regions.items()}
    frame = pd.DataFrame(shares)
    frame["elsewhere"] = 1 - frame.sum(axis=1, skipna=False)
    return frame


def region_area_share(regions: dict[str, tuple[slice, slice]] = FACE_REGIONS,
                      size: int = IMAGE_SIZE) -> pd.Series:
    """Each region's share of the image area (what a uniform map would put there), with 'elsewhere'."""
    grid = np.ones((1, size, size))
    return region_mass(grid, regions).iloc[0]


# ---------------------------------------------------------------------------------------------------------------------
# SE gates


def se_blocks(model: keras.Model) -> list[str]:
    """Names of the model's SE blocks, e.g. ['block1_se', 'block2_se', 'block3_se'] ([] for the baseline)."""
    return [layer.name[:-len("_expand")] for layer in model.layers if layer.name.endswith("_se_expand")]


def se_gates(model: keras.Model, images: np.ndarray, batch_size: int = 512) -> dict[str, np.ndarray]:
    """The excitation s (the gates, in (0, 1)) of every SE block for `images`: block name -> (N, C) float32."""
    blocks = se_blocks(model)
    if not blocks:
        raise ValueError(f"{model.name} has no SE block (no layer named *_se_expand)")
    probe = keras.Model(model.inputs, [model.get_layer(f"{b}_expand").output for b in blocks])
    outs = probe.predict(images, batch_size=batch_size, verbose=0)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return {b: np.asarray(o, dtype=np.float32) for b, o in zip(blocks, outs)}


def eta_squared(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per column, the share of its variance across images explained by the class (between / total sum of squares).

    Args:
        values: (N, C), e.g. one SE block's gates; labels: (N,) class indices.
    Returns:
        (C,) in [0, 1]: 0 when every class has the same mean, 1 when the gate is constant within each class.
    """
    values = np.asarray(values, dtype=np.float64)
    grand = values.mean(0)
    total = ((values - grand) ** 2).sum(0)
    between = np.zeros_like(grand)
    for k in np.unique(labels):
        v = values[labels == k]
        between += len(v) * (v.mean(0) - grand) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, between / total, 0.0)


class FixedGates(layers.Layer):
    """Stands in for an SE block's excitation: ignores its input and returns the same gates (C,) for every image."""

    def __init__(self, gates, **kwargs):
        super().__init__(**kwargs)
        self.gates = np.asarray(gates, dtype=np.float32)

    def call(self, x):
        batch = ops.zeros_like(x[:, :1])  # (N, 1): only the batch size of x is used
        return batch + ops.cast(ops.convert_to_tensor(self.gates), batch.dtype)[None, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.gates))

    def get_config(self):
        return {**super().get_config(), "gates": self.gates.tolist()}


def with_fixed_gates(model: keras.Model, block: str, gates: np.ndarray) -> keras.Model:
    """A copy of an SE-CNN whose SE block `block` (e.g. 'block2_se') scales every image by the same `gates` (C,).

    The trained layers are reused (shared weights); only `{block}_expand` is replaced by FixedGates, so the block's
    attention no longer depends on the input.
    """
    name = f"{block}_expand"
    layer = model.get_layer(name)  # ValueError naming the layer when the model has no such block
    if len(gates) != layer.units:
        raise ValueError(f"{name} has {layer.units} channels, got {len(gates)} gates")
    return keras.models.clone_model(
        model, clone_function=lambda lyr: FixedGates(gates, name=name, dtype=lyr.dtype_policy) if lyr.name == name
        else lyr)


# ---------------------------------------------------------------------------------------------------------------------
# Perturbations


def perturb(images: np.ndarray, kind: str, strength: float, seed: int = 0) -> np.ndarray:
    """A benign change to uint8 faces (N, H, W, 1), kept in 0..255: see PERTURBATIONS for the kinds and strengths.

    Args:
        images: (N, H, W, 1) uint8.
        kind: mirror, shift, brightness, contrast, noise, jpeg or blur.
        strength: pixels (shift), grey levels added (brightness), factor (contrast), sigma (noise, blur), JPEG
            quality (jpeg); ignored for mirror. Shift directions and noise are drawn with `seed`.
    Returns:
        (N, H, W, 1) uint8.
    """
    x = np.asarray(images)
    rng = np.random.default_rng(seed)
    if kind == "mirror":
        out = x[:, :, ::-1]
    elif kind == "shift":
        k = int(strength)
        out = np.empty_like(x)
        moves = rng.integers(0, 4, len(x))  # up, down, left, right; the uncovered border repeats the edge
        padded = np.pad(x, ((0, 0), (k, k), (k, k), (0, 0)), mode="edge")
        h, w = x.shape[1:3]
        for i, (dy, dx) in enumerate([(-k, 0), (k, 0), (0, -k), (0, k)]):
            m = moves == i
            out[m] = padded[m, k - dy:k - dy + h, k - dx:k - dx + w]
    elif kind == "brightness":
        out = x.astype(np.float32) + strength
    elif kind == "contrast":
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        out = (x - mean) * strength + mean
    elif kind == "noise":
        out = x + rng.normal(0.0, strength, x.shape)
    elif kind == "jpeg":
        out = np.empty_like(x)
        for i, img in enumerate(x[..., 0]):
            buf = io.BytesIO()
            Image.fromarray(img, mode="L").save(buf, format="JPEG", quality=int(strength))
            out[i, ..., 0] = np.asarray(Image.open(buf))
    elif kind == "blur":
        out = ndimage.gaussian_filter(x.astype(np.float32), sigma=(0, strength, strength, 0))
    else:
        raise ValueError(f"unknown perturbation {kind!r}: expected one of {sorted(PERTURBATIONS)}")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def robustness_losses(model: keras.Model, images: np.ndarray, labels: np.ndarray,
                      perturbations=ROBUSTNESS_TARGETS, seed: int = 0) -> pd.DataFrame:
    """Accuracy points that `model` loses to each perturbation, on the same images.

    Args:
        model: a trained model (raw uint8 pixels in, probabilities out).
        images: (N, 48, 48, 1) uint8 faces; labels: (N,) their classes.
        perturbations: (kind, strength) pairs of `perturb` (a dict's keys, e.g. config.ROBUSTNESS_TARGETS).
        seed: seeds the perturbations' random draws (shift directions, noise).

    Returns:
        One row per (kind, strength): accuracy, and points_lost = 100 * (clean accuracy - accuracy).
    """
    from .evaluation import predict_proba

    clean = float((predict_proba(model, images).argmax(1) == labels).mean())
    rows = []
    for kind, strength in perturbations:
        accuracy = float((predict_proba(model, perturb(images, kind, strength, seed)).argmax(1) == labels).mean())
        rows.append(dict(perturbation=kind, strength=strength, clean_accuracy=clean, accuracy=accuracy,
                         points_lost=100 * (clean - accuracy)))
    return pd.DataFrame(rows)


def perturbation_label(kind: str, strength: float) -> str:
    """A perturbation of `perturb` in words with its unit, e.g. "noise sigma 10", "JPEG quality 10", "shift 4 px"."""
    labels = {"mirror": "mirror", "shift": f"shift {strength:g} px", "brightness": f"brightness {strength:+g}",
              "contrast": f"contrast x{strength:g}", "noise": f"noise sigma {strength:g}",
              "jpeg": f"JPEG quality {strength:g}", "blur": f"blur sigma {strength:g} px"}
    return labels.get(kind, f"{kind} {strength:g}")


ROBUSTNESS = "robustness.csv"
"""The robustness table a run folder keeps (`robustness_table`; the robust study's rows and the published robust
models)."""


def robustness_table(model_path, data, splits: tuple[str, ...] = ("val", "test")) -> pd.DataFrame:
    """`robustness_losses` of a saved model, evaluated as a float32 copy, on PublicTest (val) and PrivateTest (test).

    Args:
        model_path: a .keras model file (str or Path).
        data: the data it was trained on (fer_utils.dataset.FerData).
        splits: the splits to measure, each in its own rows (column `split`).

    Returns:
        robustness_losses' rows for each split, with a `split` column.
    """
    model = load_float32(model_path)
    parts = []
    for split in splits:
        x, y = data.xy(split)
        parts.append(robustness_losses(model, x, y).assign(split=split))
    return pd.concat(parts, ignore_index=True)
