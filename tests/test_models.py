"""fer_utils.models: the baseline CNN and the SE-CNN of the paper."""

from __future__ import annotations

import json
import re

import keras
import numpy as np
import pytest

from fer_utils.config import SE_RATIO
from fer_utils.models import build_model, preprocessing, se_block

KINDS = ("baseline", "se")


@pytest.fixture(scope="module")
def models():
    return {kind: build_model(kind) for kind in KINDS}


@pytest.fixture(scope="module")
def uint8_batch():
    return np.random.default_rng(0).integers(0, 256, size=(3, 48, 48, 1), dtype=np.uint8)


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


@pytest.mark.parametrize("kind", KINDS)
def test_model_maps_uint8_images_to_seven_class_probabilities(models, uint8_batch, kind):
    probs = models[kind].predict(uint8_batch, verbose=0)
    assert probs.shape == (3, 7)
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_inference_does_not_augment(models, uint8_batch, kind):
    first = models[kind].predict(uint8_batch, verbose=0)
    np.testing.assert_array_equal(first, models[kind].predict(uint8_batch, verbose=0))


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


def test_se_cnn_has_exactly_three_se_blocks(models):
    names = [layer.name for layer in models["se"].layers if re.fullmatch(r"block\d+_se_scale", layer.name)]
    assert names == ["block1_se_scale", "block2_se_scale", "block3_se_scale"]
    assert sum(isinstance(layer, keras.layers.Multiply) for layer in models["se"].layers) == 3


@pytest.mark.parametrize("block", [1, 2, 3])
def test_se_block_feeds_the_blocks_max_pooling(models, block):
    se = models["se"]
    pool = se.get_layer(f"block{block}_pool")
    assert isinstance(pool, keras.layers.MaxPooling2D)
    assert pool.input is se.get_layer(f"block{block}_se_scale").output


def test_baseline_has_no_se_layers(models):
    assert not [layer.name for layer in models["baseline"].layers if "_se_" in layer.name]


def test_se_parameter_overhead_is_two_dense_layers_per_block(models):
    se, baseline = models["se"], models["baseline"]
    expected = 0
    for block in (1, 2, 3):
        c = se.get_layer(f"block{block}_se_scale").output.shape[-1]
        reduced = c // SE_RATIO
        expected += (c * reduced + reduced) + (reduced * c + c)
    assert se.count_params() - baseline.count_params() == expected


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


def test_unknown_model_name_is_rejected():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        build_model("nope")
