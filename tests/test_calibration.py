"""fer_utils.calibration: temperature scaling, and predict's use of it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer_utils.calibration import (apply_temperature, calibration_report, fit_temperature, load_temperature, nll,
                                   with_temperature)


def overconfident(n=2000, seed=0):
    """Probabilities of a model right 60% of the time yet about 95% sure: logits of a calibrated model, times 4."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, n)
    logits = rng.normal(0, 1, (n, 7))
    right = rng.random(n) < 0.6
    logits[np.arange(n), np.where(right, labels, (labels + 1) % 7)] += 2.0
    z = 4 * logits
    p = np.exp(z - z.max(1, keepdims=True))
    return (p / p.sum(1, keepdims=True)).astype(np.float32), labels


def test_temperature_scaling_lowers_the_nll_and_leaves_every_prediction_alone():
    probs, labels = overconfident()
    t = fit_temperature(probs, labels)
    after = apply_temperature(probs, t)
    assert t > 2  # the fixture is over-confident, so it is softened
    assert nll(after, labels) < nll(probs, labels) - 0.1
    np.testing.assert_array_equal(after.argmax(1), probs.argmax(1))
    np.testing.assert_allclose(after.sum(1), 1, atol=1e-5)


def test_a_calibrated_model_keeps_a_temperature_near_one():
    probs, labels = overconfident()
    t = fit_temperature(probs, labels)
    assert fit_temperature(apply_temperature(probs, t), labels) == pytest.approx(1.0, abs=0.02)


def test_the_report_judges_on_other_images_than_it_fits_on():
    fit, judge = overconfident(seed=1), overconfident(seed=2)
    report = calibration_report(fit, judge)
    assert report["ece_after"] < report["ece_before"] and report["nll_after"] < report["nll_before"]
    assert report["images"] == len(judge[1])


def test_the_temperature_layer_computes_what_apply_temperature_does():
    import keras

    probs, _ = overconfident(n=16)
    inputs = keras.Input((7,))
    model = with_temperature(keras.Model(inputs, inputs), 2.5)
    np.testing.assert_allclose(model.predict(probs, verbose=0), apply_temperature(probs, 2.5), atol=1e-5)


def test_load_temperature_reads_the_file_beside_the_model_and_names_a_broken_one(tmp_path):
    model = tmp_path / "model.keras"
    assert load_temperature(model) is None
    (tmp_path / "calibration.json").write_text(json.dumps({"temperature": 1.7}))
    assert load_temperature(model) == 1.7
    (tmp_path / "calibration.json").write_text(json.dumps({"temperature": -1}))
    with pytest.raises(ValueError, match="calibration.json"):
        load_temperature(model)
