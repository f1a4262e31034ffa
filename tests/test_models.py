"""fer_utils.models: the baseline CNN and the SE-CNN of the paper, read from their layers and connections, and run.

The paper (and README, notebooks 02-04): preprocessing (random shifts in training, rescale 1/255), three blocks of two
3x3 convolutions with ReLU and a 2x2 max-pooling, an SE block before each pooling in the SE-CNN, then flatten, a
dense ReLU layer, and a softmax over the 7 emotions. The walk below (`layout`) follows the graph from the output back
to the input, by each tensor's producing layer, so a layer that is built but not connected, a block in the wrong
order or a width that ignores its argument all show. Expected layouts are written out here, not derived from
fer_utils. The other tests run the built models: the layer names that explain.py and the notebooks read, the SE block
against a NumPy reference, the augmentation (in training only), saving and loading in safe mode.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from fer_utils.config import SE_RATIO
from fer_utils.models import build_cnn, build_model, preprocessing, se_block

KINDS = ("baseline", "se")


@pytest.fixture(scope="module")
def models():
    """The two models at their default (paper) widths."""
    return {kind: build_model(kind) for kind in KINDS}


@pytest.fixture(scope="module")
def uint8_batch():
    return np.random.default_rng(0).integers(0, 256, size=(3, 48, 48, 1), dtype=np.uint8)


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


# --- the architecture, layer by layer ------------------------------------------------------------------------------

TINY = dict(filters=(4, 8, 16), dense_units=8)


def _producer(tensor) -> keras.layers.Layer:
    return tensor._keras_history.operation


def _inputs(layer) -> list:
    x = layer.input
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _se_gate(multiply, feature_layer) -> tuple:
    """The SE branch feeding `multiply` (Reshape <- Dense sigmoid <- Dense relu <- global average pooling of
    `feature_layer`'s output): ("se", channels, hidden units); its layers are returned too."""
    gate = next(t for t in _inputs(multiply) if _producer(t) is not feature_layer)
    reshape = _producer(gate)
    expand = _producer(reshape.input)
    reduce = _producer(expand.input)
    squeeze = _producer(reduce.input)
    assert isinstance(reshape, keras.layers.Reshape)
    assert isinstance(expand, keras.layers.Dense) and expand.get_config()["activation"] == "sigmoid"
    assert isinstance(reduce, keras.layers.Dense) and reduce.get_config()["activation"] == "relu"
    assert isinstance(squeeze, keras.layers.GlobalAveragePooling2D)
    assert _producer(squeeze.input) is feature_layer  # squeezes the very map it then rescales
    assert reshape.output.shape[1:] == (1, 1, expand.units)
    return ("se", expand.units, reduce.units), [reshape, expand, reduce, squeeze]


def layout(model: keras.Model) -> list[tuple]:
    """The model's main path, input to output, one token per layer (an SE block is one token)."""
    tokens, seen = [], set()
    layer = _producer(model.outputs[0])
    while True:
        seen.add(id(layer))
        config = layer.get_config()
        if isinstance(layer, keras.layers.InputLayer):
            tokens.append(("input", tuple(layer.output.shape[1:]), layer.output.dtype))
            break
        if isinstance(layer, keras.layers.Multiply):
            feature = next(_producer(t) for t in _inputs(layer) if isinstance(_producer(t), keras.layers.Conv2D)
                           or isinstance(_producer(t), keras.layers.Activation))
            token, branch = _se_gate(layer, feature)
            seen.update(id(b) for b in branch)
            tokens.append(token)
            layer = feature
            continue
        if isinstance(layer, keras.layers.Conv2D):
            tokens.append(("conv", config["filters"], config["kernel_size"], config["strides"], config["padding"],
                           config["activation"], config["use_bias"]))
        elif isinstance(layer, keras.layers.MaxPooling2D):
            tokens.append(("maxpool", config["pool_size"], config["strides"], tuple(layer.output.shape[1:3])))
        elif isinstance(layer, keras.layers.Dense):
            tokens.append(("dense", config["units"], config["activation"]))
        elif isinstance(layer, keras.layers.RandomTranslation):
            tokens.append(("shift", config["height_factor"], config["width_factor"], config["fill_mode"]))
        elif isinstance(layer, keras.layers.Rescaling):
            tokens.append(("rescale", round(1 / config["scale"], 6), config["offset"]))
        elif isinstance(layer, keras.layers.Dropout):
            tokens.append(("dropout", config["rate"]))
        elif isinstance(layer, keras.layers.Flatten):
            tokens.append(("flatten", layer.output.shape[-1]))
        elif isinstance(layer, keras.layers.BatchNormalization):
            tokens.append(("batchnorm",))
        elif isinstance(layer, keras.layers.Activation):
            tokens.append(("activation", config["activation"]))
        else:
            tokens.append((type(layer).__name__,))
        (previous,) = _inputs(layer)
        layer = _producer(previous)
    assert seen == {id(la) for la in model.layers}, "layers built but not on the path from input to output"
    return tokens[::-1]


def paper_layout(filters, dense_units, se_ratio=None, shift=0.1, dense_dropout=0.5) -> list[tuple]:
    """The paper's network for these widths, written out."""
    tokens = [("input", (48, 48, 1), "float32")]
    if shift:
        tokens.append(("shift", shift, shift, "nearest"))
    tokens.append(("rescale", 255.0, 0.0))
    size = 48
    for f in filters:
        tokens += [("conv", f, (3, 3), (1, 1), "same", "relu", True)] * 2
        if se_ratio:
            tokens.append(("se", f, max(f // se_ratio, 1)))
        size //= 2
        tokens.append(("maxpool", (2, 2), (2, 2), (size, size)))
    tokens += [("flatten", size * size * filters[-1]), ("dense", dense_units, "relu")]
    if dense_dropout:
        tokens.append(("dropout", dense_dropout))
    return tokens + [("dense", 7, "softmax")]


def test_the_default_baseline_is_the_papers_cnn(models):
    # Breaks on any change of the documented layout: a fourth conv, a 5x5 kernel, 'valid' padding, no ReLU, a
    # softmax over 6, a dense layer without ReLU, the dropout gone, the shift range changed...
    assert layout(models["baseline"]) == paper_layout((32, 64, 128), 256)


def test_the_default_se_cnn_has_an_se_block_before_each_pooling(models):
    # Breaks if an SE block sat after the pooling, squeezed one map and rescaled another, lost its ReLU/sigmoid, or
    # were missing from a block (or added to the baseline: test_the_default_baseline_is_the_papers_cnn).
    assert layout(models["se"]) == paper_layout((32, 64, 128), 256, se_ratio=16)


@pytest.mark.parametrize("kind, widths", [
    ("baseline", dict(filters=(4, 8, 16), dense_units=8)),
    ("baseline", dict(filters=(16, 24, 40), dense_units=64)),
    ("se", dict(filters=(4, 8, 16), dense_units=8, se_ratio=4)),
    ("se", dict(filters=(64, 128, 256), dense_units=512, se_ratio=8)),
    ("se", dict(filters=(8, 16, 32), dense_units=32, se_ratio=16)),  # 8 // 16 = 0: one hidden unit, not zero
])
def test_each_configurable_width_is_the_one_built(kind, widths):
    # Breaks if a width argument were ignored (e.g. filters fixed at config.FILTERS, dense_units at 256,
    # se_ratio at 16) or the SE hidden layer lost its floor of one unit.
    assert layout(build_model(kind, **widths)) == paper_layout(widths["filters"], widths["dense_units"],
                                                               widths.get("se_ratio"))


def test_the_model_options_change_only_what_they_name():
    # dense_dropout=0 drops the dropout, shift=0 the augmentation; nothing else moves.
    model = build_model("se", **TINY, se_ratio=4, dense_dropout=0.0, shift=0.0)
    assert layout(model) == paper_layout(TINY["filters"], TINY["dense_units"], 4, shift=0, dense_dropout=0)


def test_batch_norm_comes_between_each_convolution_and_its_relu():
    tokens = layout(build_model("baseline", **TINY, batch_norm=True))
    conv = [i for i, t in enumerate(tokens) if t[0] == "conv"]
    assert len(conv) == 6
    for i in conv:
        assert tokens[i][5] == "linear" and tokens[i][6] is False  # no bias: the batch norm's shift replaces it
        assert tokens[i + 1:i + 3] == [("batchnorm",), ("activation", "relu")]


@pytest.mark.parametrize("block", [1, 2, 3])
def test_each_se_block_has_the_layer_names_explain_and_the_notebooks_read(models, block):
    # explain.py and notebook 03 read block<b>_se_squeeze/_reduce/_expand/_scale and block<b>_pool by name.
    # Breaks if a block's SE layers were renamed, or the named scale were not what the named pooling pools.
    se = models["se"]
    scale, pool = se.get_layer(f"block{block}_se_scale"), se.get_layer(f"block{block}_pool")
    assert isinstance(scale, keras.layers.Multiply) and isinstance(pool, keras.layers.MaxPooling2D)
    assert pool.input is scale.output
    assert isinstance(se.get_layer(f"block{block}_se_squeeze"), keras.layers.GlobalAveragePooling2D)
    assert se.get_layer(f"block{block}_se_reduce").units == scale.output.shape[-1] // SE_RATIO
    assert se.get_layer(f"block{block}_se_expand").units == scale.output.shape[-1]


def test_se_parameter_overhead_is_two_dense_layers_per_block(models):
    # The count notebook 03 reports. Breaks if an SE dense layer lost its bias (`layout` reads units, not biases).
    se, baseline = models["se"], models["baseline"]
    expected = 0
    for block in (1, 2, 3):
        c = se.get_layer(f"block{block}_se_scale").output.shape[-1]
        reduced = c // SE_RATIO
        expected += (c * reduced + reduced) + (reduced * c + c)
    assert se.count_params() - baseline.count_params() == expected


def test_unknown_model_name_is_rejected():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        build_model("nope")


# --- what the models compute -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_model_maps_uint8_images_to_float32_probabilities_over_seven_classes(models, uint8_batch, kind):
    # Breaks if the softmax ran in bf16/float16 under a mixed policy (its output float32 by `dtype`), or lost a class.
    assert models[kind].outputs[0].dtype == "float32"
    probs = models[kind].predict(uint8_batch, verbose=0)
    assert probs.shape == (3, 7) and probs.dtype == np.float32
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_se_block_matches_numpy_reference():
    channels, ratio = 32, 8
    inputs = keras.Input((5, 6, channels))
    block = keras.Model(inputs, se_block(inputs, ratio=ratio, name="t"))
    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(channels, channels // ratio)), rng.normal(size=channels // ratio)
    w2, b2 = rng.normal(size=(channels // ratio, channels)), rng.normal(size=channels)
    block.get_layer("t_reduce").set_weights([w1, b1])
    block.get_layer("t_expand").set_weights([w2, b2])
    x = rng.normal(size=(2, 5, 6, channels)).astype(np.float32)

    z = x.astype(np.float64).mean(axis=(1, 2))
    s = sigmoid(np.maximum(z @ w1 + b1, 0) @ w2 + b2)
    reference = x * s[:, None, None, :]

    np.testing.assert_allclose(keras.ops.convert_to_numpy(block(x)), reference, rtol=1e-5, atol=1e-6)


# --- the augmentation: on in training, off at inference ------------------------------------------------------------


def _square_image() -> np.ndarray:
    """A bright 8x8 square in the middle of a black 48x48 image: a batch of one, raw pixel values 0 and 255."""
    image = np.zeros((1, 48, 48, 1), np.float32)
    image[0, 20:28, 20:28, 0] = 255
    return image


def _centroid(batch) -> np.ndarray:
    plane = np.asarray(batch)[0, ..., 0]
    rows, cols = np.indices(plane.shape)
    return np.array([(rows * plane).sum(), (cols * plane).sum()]) / plane.sum()


@pytest.fixture(scope="module")
def preprocessing_part():
    """The built model's own preprocessing layers: input -> rescaled image (weights irrelevant)."""
    model = build_cnn(**TINY)
    return keras.Model(model.inputs[0], model.get_layer("rescale").output)


def test_the_shift_moves_training_images_by_at_most_a_tenth_of_their_size(preprocessing_part):
    # Breaks if the shift were off in training (every output equal to the input) or its range were not 0.1:
    # a 48-pixel image may move up to 4.8 pixels each way. The square stays clear of the borders, so the
    # bilinear shift moves its centroid by exactly the translation.
    image = _square_image()
    moves = np.array([_centroid(keras.ops.convert_to_numpy(preprocessing_part(image, training=True)))
                      - _centroid(image) for _ in range(30)])
    assert np.abs(moves).max() <= 0.1 * 48 + 1e-3
    assert (np.abs(moves) > 0.5).any(axis=0).all()  # both directions do move
    assert len({tuple(np.round(m, 3)) for m in moves}) > 20  # a fresh random shift per call


def test_inference_sees_the_image_unshifted_only_rescaled(preprocessing_part):
    # Breaks if the shift also ran at inference: evaluation and predictions would be randomly shifted.
    image = _square_image()
    for _ in range(3):
        out = keras.ops.convert_to_numpy(preprocessing_part(image, training=False))
        np.testing.assert_allclose(out, image / 255, atol=1e-7)


def test_flip_option_mirrors_training_images_left_right_and_nothing_else(uint8_batch):
    inputs = keras.Input((48, 48, 1))
    augment = keras.Model(inputs, preprocessing(inputs, shift=0, flip=True))
    image = uint8_batch[:1].astype("float32")
    original, mirrored = image / 255, image[:, :, ::-1] / 255
    seen = set()
    for _ in range(20):
        out = keras.ops.convert_to_numpy(augment(image, training=True))
        kind = "original" if np.allclose(out, original) else "mirrored" if np.allclose(out, mirrored) else "other"
        seen.add(kind)
    assert seen == {"original", "mirrored"}
    np.testing.assert_allclose(keras.ops.convert_to_numpy(augment(image, training=False)), original)


# --- saving -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_saved_model_loads_in_safe_mode_with_identical_predictions(models, uint8_batch, tmp_path, kind):
    path = tmp_path / f"{kind}.keras"
    models[kind].save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(uint8_batch, verbose=0),
                                  models[kind].predict(uint8_batch, verbose=0))


@pytest.mark.parametrize("kind", KINDS)
def test_model_contains_no_lambda_layers(models, kind):
    config = json.dumps(models[kind].get_config())
    assert '"Lambda"' not in config
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in models[kind].layers)
