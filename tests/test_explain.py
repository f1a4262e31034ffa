"""fer_utils.explain: Grad-CAM, occlusion, region mass, SE gates and perturbations on tiny hand-built models."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import layers

from fer_utils import explain
from fer_utils.models import build_model

QUADRANT = (slice(0, 24), slice(0, 24))  # the top-left quadrant of a 48x48 image


def quadrant_model() -> keras.Model:
    """A classifier whose output depends only on the top-left quadrant: it crops it, pads the rest with zeros.

    A bias-free conv with positive weights feeds a pooling and a dense layer in which class 0 grows with the
    features (weights +0.5) and every other class shrinks (-0.5), so brighter quadrant pixels mean more class 0.
    """
    inputs = keras.Input((48, 48, 1))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Cropping2D(((0, 24), (0, 24)))(x)
    x = layers.ZeroPadding2D(((0, 24), (0, 24)))(x)
    x = layers.Conv2D(4, 3, padding="same", activation="relu", use_bias=False, kernel_initializer="ones",
                      name="conv")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(7, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs)
    kernel = np.full((4, 7), -0.5, dtype=np.float32)
    kernel[:, 0] = 0.5
    model.get_layer("predictions").set_weights([kernel, np.zeros(7, np.float32)])
    return model


def bright_faces(n: int = 3, seed: int = 0) -> np.ndarray:
    """Bright random images (200..255), so a grey (128) patch lowers the conv features wherever it lands."""
    return np.random.default_rng(seed).integers(200, 256, size=(n, 48, 48, 1)).astype(np.uint8)


def quadrant_share(maps: np.ndarray) -> np.ndarray:
    positive = np.maximum(maps, 0)
    return positive[:, QUADRANT[0], QUADRANT[1]].sum(axis=(1, 2)) / positive.sum(axis=(1, 2))


def test_feature_layer_is_the_map_entering_the_last_pooling():
    assert explain.feature_layer(quadrant_model()) == "conv"
    assert explain.feature_layer(build_model("se", filters=(4, 8, 16), dense_units=8)) == "block3_se_scale"
    assert explain.feature_layer(build_model("baseline", filters=(4, 8, 16), dense_units=8)) == "block3_conv2"


def test_float32_logit_copy_gives_the_models_probabilities_after_a_softmax():
    model = build_model("se", filters=(4, 8, 16), dense_units=8)
    x = bright_faces(4)
    logits = explain.float32_copy(model, logits=True).predict(x, verbose=0)
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.softmax(logits)), probs, atol=1e-6)
    assert not np.allclose(logits.sum(1), 1.0)  # really scores, not probabilities


ZERO_ATOL = 1e-6
"""What counts as zero in a map computed by the backend's kernels: a probability or a normalised map that is 0 in
exact arithmetic comes out as, e.g., 5.96e-08 (one float32 ulp of 1) on some CPUs (other kernels, other sums)."""


def assert_zero(values: np.ndarray) -> None:
    """Assert that every value is 0 within ZERO_ATOL."""
    np.testing.assert_allclose(values, 0.0, rtol=0, atol=ZERO_ATOL)


def test_grad_cam_lights_up_the_only_region_the_output_depends_on():
    maps = explain.grad_cam(quadrant_model(), bright_faces(), class_index=0)
    assert maps.shape == (3, 48, 48)
    assert maps.max() == pytest.approx(1.0)
    # All of the map's mass is in the quadrant, apart from the conv's one-pixel rim just outside it.
    assert (quadrant_share(maps) > 0.95).all()
    assert_zero(maps[:, 26:, :])
    assert_zero(maps[:, :, 26:])


def test_grad_cam_of_a_class_the_features_argue_against_is_empty():
    # Class 3's score falls as the features grow: every alpha_k < 0, so ReLU leaves nothing.
    assert_zero(explain.grad_cam(quadrant_model(), bright_faces(), class_index=3))


def test_grad_cam_is_the_recipe_in_one_eager_pass_whatever_the_batches():
    # grad_cam takes the feature maps from a compiled predict, batch by batch: the maps must be the recipe's, computed
    # here eagerly on all faces at once (breaks on features from another layer or faces and classes out of step).
    keras.utils.set_random_seed(0)
    model = build_model("se", filters=(4, 8, 16), dense_units=8)
    x, classes = bright_faces(5), np.array([0, 1, 2, 3, 4])
    scorer = explain.float32_copy(model, logits=True)
    body, head = explain.split_model(scorer, explain.feature_layer(scorer))
    feats = body(keras.ops.convert_to_tensor(x.astype(np.float32)), training=False)
    onehot = keras.ops.one_hot(classes, 7)
    _, grads = explain._value_and_gradient(lambda a: keras.ops.sum(head(a, training=False) * onehot, axis=-1), feats)
    cam = np.maximum((grads.mean(axis=(1, 2), keepdims=True) * keras.ops.convert_to_numpy(feats)).sum(-1), 0)
    up = np.maximum(keras.ops.convert_to_numpy(keras.ops.image.resize(cam[..., None], (48, 48)))[..., 0], 0)
    top = up.reshape(len(up), -1).max(1)
    expected = up / np.where(top > 0, top, 1)[:, None, None]
    assert (top > 0).sum() >= 2  # some maps are not empty
    np.testing.assert_allclose(explain.grad_cam(model, x, classes, batch_size=2), expected, atol=1e-5)


def test_occlusion_hurts_only_inside_the_region_the_output_depends_on():
    maps = explain.occlusion_map(quadrant_model(), bright_faces(), class_index=np.zeros(3, int), patch=8, stride=4)
    assert maps.shape == (3, 48, 48)
    assert (maps[:, :20, :20] > 0).all()  # a grey patch in the quadrant lowers p(class 0)
    # No patch covering a pixel at row or column >= 31 reaches into the quadrant (patches start >= 24).
    assert_zero(maps[:, 31:, :])
    assert_zero(maps[:, :, 31:])
    assert (quadrant_share(maps) > 0.9).all()


def test_grad_cam_and_occlusion_agree_on_the_quadrant_model():
    model, x = quadrant_model(), bright_faces()
    r = explain.map_correlation(explain.grad_cam(model, x, 0), explain.occlusion_map(model, x, np.zeros(3, int)))
    assert (r > 0.5).all()


def test_map_correlation_is_pearsons_r_per_image_and_nan_for_a_constant_map():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 6, 6)), rng.normal(size=(3, 6, 6))
    b[2] = 1.0
    r = explain.map_correlation(a, b)
    for i in range(2):
        assert r[i] == pytest.approx(np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1])
    assert np.isnan(r[2])
    assert explain.map_correlation(a, -a) == pytest.approx(-np.ones(3))


def test_region_mass_puts_a_mouth_only_map_in_the_mouth_and_a_uniform_map_in_proportion_to_area():
    rows, cols = explain.FACE_REGIONS["mouth"]
    mouth_only = np.zeros((1, 48, 48))
    mouth_only[0, rows, cols] = 2.0
    shares = explain.region_mass(mouth_only).iloc[0]
    assert shares["mouth"] == pytest.approx(1.0)
    assert shares.drop("mouth").abs().max() == pytest.approx(0.0)
    area = explain.region_area_share()
    assert area["mouth"] == pytest.approx((rows.stop - rows.start) * (cols.stop - cols.start) / 48**2)
    assert area.sum() == pytest.approx(1.0)


def test_face_regions_do_not_overlap():
    cover = np.zeros((48, 48), int)
    for rows, cols in explain.FACE_REGIONS.values():
        cover[rows, cols] += 1
    assert cover.max() == 1


def test_eta_squared_is_one_for_class_constant_gates_and_matches_a_hand_computation():
    labels = np.array([0, 0, 1, 1])
    assert explain.eta_squared(np.array([[0.2], [0.2], [0.8], [0.8]]), labels) == pytest.approx([1.0])
    values = np.array([[0.1], [0.3], [0.5], [0.7]])
    between = 2 * (0.2 - 0.4) ** 2 + 2 * (0.6 - 0.4) ** 2
    total = sum((v - 0.4) ** 2 for v in (0.1, 0.3, 0.5, 0.7))
    assert explain.eta_squared(values, labels) == pytest.approx([between / total])


def test_se_gates_returns_each_blocks_excitation_in_0_1():
    model = build_model("se", filters=(4, 8, 32), dense_units=8)
    gates = explain.se_gates(model, bright_faces(5))
    assert {k: v.shape for k, v in gates.items()} == {"block1_se": (5, 4), "block2_se": (5, 8), "block3_se": (5, 32)}
    assert all(((g > 0) & (g < 1)).all() for g in gates.values())
    with pytest.raises(ValueError, match="no SE block"):
        explain.se_gates(build_model("baseline", filters=(4, 8, 16), dense_units=8), bright_faces(1))


def test_fixed_gates_equal_to_an_images_own_gates_reproduce_its_output():
    keras.utils.set_random_seed(0)
    model = build_model("se", filters=(4, 8, 32), dense_units=8)
    x = bright_faces(2)
    own = explain.se_gates(model, x[:1])["block2_se"][0]
    fixed = explain.with_fixed_gates(model, "block2_se", own)
    np.testing.assert_allclose(fixed.predict(x[:1], verbose=0), model.predict(x[:1], verbose=0), atol=1e-6)


def test_zero_fixed_gates_cut_the_input_off():
    model = build_model("se", filters=(4, 8, 32), dense_units=8)
    x = np.random.default_rng(1).integers(0, 256, (3, 48, 48, 1))
    out = explain.with_fixed_gates(model, "block2_se", np.zeros(8)).predict(x, verbose=0)
    np.testing.assert_allclose(out, np.broadcast_to(out[0], out.shape), atol=1e-6)  # every image, the same answer
    original = model.predict(x, verbose=0)
    assert not np.allclose(original, np.broadcast_to(original[0], original.shape), atol=1e-6)


def test_fixed_gates_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="block1_se_expand has 4 channels"):
        explain.with_fixed_gates(build_model("se", filters=(4, 8, 32), dense_units=8), "block1_se", np.ones(5))


def test_mirror_reverses_columns_and_shift_moves_a_dot_by_k_pixels():
    x = np.zeros((64, 48, 48, 1), np.uint8)
    x[:, 20, 10] = 255
    assert (explain.perturb(x, "mirror", 1)[:, 20, 37] == 255).all()
    moved = explain.perturb(x, "shift", 3, seed=0)
    where = [tuple(np.argwhere(m[..., 0] == 255)[0]) for m in moved]
    assert set(where) == {(17, 10), (23, 10), (20, 7), (20, 13)}  # every direction drawn, each by exactly 3


@pytest.mark.parametrize("kind, strength", [("brightness", 60), ("contrast", 0.5), ("noise", 10), ("jpeg", 10),
                                            ("blur", 1.0)])
def test_every_perturbation_keeps_uint8_shape_and_changes_the_image(kind, strength):
    x = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype(np.uint8)
    out = explain.perturb(x, kind, strength)
    assert out.dtype == np.uint8 and out.shape == x.shape
    assert not np.array_equal(out, x)


def test_brightness_clips_at_white_and_zero_contrast_leaves_each_images_mean():
    x = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 1)).astype(np.uint8)
    assert explain.perturb(x, "brightness", 300).min() == 255
    flat = explain.perturb(x, "contrast", 0.0)
    for img, orig in zip(flat, x):
        assert np.unique(img).size == 1 and abs(int(img.flat[0]) - orig.mean()) <= 0.5


def test_unknown_perturbation_names_the_known_ones():
    with pytest.raises(ValueError, match="blur"):
        explain.perturb(np.zeros((1, 48, 48, 1), np.uint8), "rotate", 10)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_grad_cam_lights_up_the_quadrant_under_the_jax_backend():
    script = textwrap.dedent("""
        import keras, numpy as np, sys
        sys.path.insert(0, "tests")
        from test_explain import bright_faces, quadrant_model, quadrant_share
        from fer_utils import explain
        assert keras.backend.backend() == "jax"
        print(quadrant_share(explain.grad_cam(quadrant_model(), bright_faces(), 0)).min())
    """)
    out = subprocess.run([sys.executable, "-c", script], env={**os.environ, "KERAS_BACKEND": "jax"}, check=True,
                         capture_output=True, text=True, timeout=300)
    assert float(out.stdout.strip().splitlines()[-1]) > 0.95
