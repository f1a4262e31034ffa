"""fer_utils.augment: the training-only augmentations of the robust recipe (notebook 08)."""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from fer_utils.augment import RandomDegradation, RandomGamma, augmentation, canonical, dct_matrix, resize_matrix
from fer_utils.config import AUGMENT, AUGMENTATIONS
from fer_utils.models import build_model, compile_model


@pytest.fixture(scope="module")
def faces():
    """16 smooth 48x48 'faces' (blurred noise), uint8 values as float32, like the model's input."""
    rng = np.random.default_rng(0)
    x = ndimage.gaussian_filter(rng.uniform(0, 255, (16, 48, 48)), sigma=(0, 3, 3))
    x = (x - x.min()) / (x.max() - x.min()) * 200 + 25
    return np.rint(x)[..., None].astype("float32")


def group(names):
    inputs = keras.Input((48, 48, 1))
    return keras.Model(inputs, augmentation(inputs, names))


def run(layer_or_model, x, training=True):
    return keras.ops.convert_to_numpy(layer_or_model(x, training=training))


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_each_augmentation_passes_images_through_unchanged_at_inference(faces, name):
    np.testing.assert_array_equal(run(group((name,)), faces, training=False), faces)


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_each_augmentation_changes_training_images_and_keeps_shape_dtype_and_pixel_range(faces, name):
    out = run(group((name,)), faces)
    assert out.shape == faces.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    assert np.abs(out - faces).mean() > 0.5  # something changed, on average, in training


def test_canonical_order_and_unknown_names():
    assert canonical(["erase", "photometric", "erase"]) == ("photometric", "erase")
    with pytest.raises(ValueError, match="unknown augmentation blur"):
        canonical(["blur"])


def test_gamma_stays_within_its_bounds(faces):
    x = np.full((200, 48, 48, 1), 128.0, dtype="float32")
    out = run(RandomGamma(1.6), x)[:, 0, 0, 0]
    g = np.log(out / 255) / np.log(128 / 255)  # the gamma each image got
    assert g.min() >= 1 / 1.6 - 1e-3 and g.max() <= 1.6 + 1e-3
    assert g.max() - g.min() > 0.5  # and spread over the range


@pytest.mark.parametrize("quality", [10, 50, 90])
def test_degradation_jpeg_matches_pillows_jpeg(faces, quality):
    layer = RandomDegradation(rate=1.0, jpeg_quality=(quality, quality))
    layer.build(faces.shape)
    ours = keras.ops.convert_to_numpy(layer._jpeg(keras.ops.convert_to_tensor(faces[..., 0]), len(faces)))
    pillow = []
    for img in faces[..., 0].astype(np.uint8):
        buf = io.BytesIO()
        Image.fromarray(img, mode="L").save(buf, format="JPEG", quality=quality)
        pillow.append(np.asarray(Image.open(buf), dtype=np.float32))
    pillow = np.stack(pillow)
    assert np.abs(ours - pillow).mean() < 0.5  # libjpeg's integer DCT rounds a little differently
    assert np.abs(faces[..., 0] - pillow).mean() > 4 * np.abs(ours - pillow).mean()


def test_degradation_at_rate_zero_is_the_identity_in_training(faces):
    np.testing.assert_array_equal(run(RandomDegradation(rate=0.0), faces), faces)


def test_degradation_noise_is_bounded_by_its_sigma():
    x = np.full((64, 48, 48, 1), 128.0, dtype="float32")  # flat: blur, downscale and JPEG leave it (nearly) flat
    out = run(RandomDegradation(rate=1.0, noise=10.0, jpeg_quality=(100, 100)), x)
    per_image_std = out.reshape(64, -1).std(axis=1)
    assert per_image_std.max() < 10 * 1.15 and per_image_std.max() > 5


def test_resize_and_blur_keep_a_flat_image_flat():
    for small in (12, 20, 37):
        r = resize_matrix(48, small)
        np.testing.assert_allclose(r @ np.full((48, 48), 100.0) @ r.T, 100.0, atol=1e-3)
    np.testing.assert_allclose(dct_matrix(8) @ dct_matrix(8).T, np.eye(8), atol=1e-6)


def test_downscale_loses_detail_that_the_original_has():
    checker = (np.indices((48, 48)).sum(axis=0) % 2) * 255.0  # the finest detail there is
    r = resize_matrix(48, 24)  # each 2x2 block is averaged: the checkerboard becomes flat grey
    np.testing.assert_allclose(r @ checker @ r.T, 127.5, atol=1e-3)


@pytest.mark.parametrize("kwargs", [dict(rate=1.5), dict(jpeg_quality=(50, 10)), dict(downscale=(0.0, 0.5)),
                                    dict(blur=0.1), dict(noise=-1)])
def test_degradation_rejects_impossible_strengths(kwargs):
    with pytest.raises(ValueError):
        RandomDegradation(**kwargs)


def test_brightness_and_contrast_stay_within_their_strengths():
    x = np.full((200, 48, 48, 1), 128.0, dtype="float32")
    x[:, :, 24:] = 118.0  # a little contrast, mean 123
    out = run(group(("photometric",)), x)
    means = out.reshape(200, -1).mean(axis=1)
    brighter = 255 * (123 / 255) ** (1 / AUGMENT["gamma"]) - 123  # the most gamma can brighten this face
    darker = 123 - 255 * (123 / 255) ** AUGMENT["gamma"]  # and darken it (the larger of the two)
    gamma_span = max(brighter, darker)
    assert np.abs(means - 123).max() <= AUGMENT["brightness"] + gamma_span + 1
    contrast = out[:, 0, 0, 0] - out[:, 0, 47, 0]
    assert contrast.min() >= 0 and contrast.max() <= 10 * (1 + AUGMENT["contrast"]) * 1.6 + 1


def test_a_model_with_every_augmentation_saves_and_loads_with_identical_predictions(tmp_path, faces):
    model = build_model("se", augment=AUGMENTATIONS, flip=True, filters=(4, 8, 8), dense_units=8)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(faces, verbose=0), model.predict(faces, verbose=0), atol=1e-6)
    assert {f"augment_{n}" for n in ("rotate", "zoom", "gamma", "contrast", "brightness", "degrade", "erase")} <= {
        layer.name for layer in loaded.layers}


def test_compile_with_label_smoothing_and_weight_decay_uses_them():
    model = compile_model(build_model("baseline", filters=(4, 4, 4), dense_units=8), 0.002,
                          label_smoothing=0.1, weight_decay=0.05)
    assert isinstance(model.optimizer, keras.optimizers.AdamW) and model.optimizer.weight_decay == 0.05
    assert model.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    paper = compile_model(build_model("baseline", filters=(4, 4, 4), dense_units=8))
    assert type(paper.optimizer) is keras.optimizers.Adam and paper.loss == "categorical_crossentropy"


@pytest.mark.parametrize("name, expected", [("erase", AUGMENT["erase_rate"]),
                                            ("degrade", 1 - (1 - AUGMENT["degrade_rate"]) ** 3)])
def test_each_group_changes_the_share_of_faces_its_rate_says(name, expected):
    face = np.full((1000, 48, 48, 1), 100.0, dtype="float32")
    face[:, 10:38, 10:38] = 160.0  # edges, so that blur, downscale and JPEG change something
    changed = (np.abs(run(group((name,)), face) - face).reshape(1000, -1).max(axis=1) > 0).mean()
    assert abs(changed - expected) < 0.06, (changed, expected)
