"""Temperature scaling (Guo et al., 2017): one number that makes a model's confidence match its accuracy.

A network trained to low training loss is over-confident on new faces. Dividing its log-probabilities by a
temperature T > 1 before the softmax softens every prediction alike: the predicted class never changes, only how sure
the model says it is. T is fitted on PublicTest (the split that already chooses the checkpoint), judged on PrivateTest,
and kept in the run folder as calibration.json, beside model.keras; `predict` (fer_utils.predict.load_fer_model) applies
it whenever it is there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops
from scipy.optimize import minimize_scalar

from .runfolder import write_json

CALIBRATION = "calibration.json"
"""The file beside model.keras that holds its temperature."""


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(probs) / temperature), row by row: the same ranking, softer (T > 1) or sharper (T < 1)."""
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class (the cross-entropy)."""
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.05, 20] that minimises the NLL of `apply_temperature(probs, T)` on these labels.

    Args:
        probs: (N, 7) predicted probabilities on the fitting split (PublicTest).
        labels: (N,) true classes.

    Returns:
        T (a float; 1 means the model was already calibrated for NLL).
    """
    result = minimize_scalar(lambda log_t: nll(apply_temperature(probs, np.exp(log_t)), labels),
                             bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def calibration_report(fit: tuple[np.ndarray, np.ndarray], judge: tuple[np.ndarray, np.ndarray]) -> dict:
    """Fit T on `fit` = (probs, labels) and measure NLL and ECE before and after on `judge` = (probs, labels)."""
    from .evaluation import expected_calibration_error

    temperature = fit_temperature(*fit)
    probs, labels = judge
    after = apply_temperature(probs, temperature)
    return dict(temperature=temperature, fitted_on="PublicTest", judged_on="PrivateTest",
                nll_before=nll(probs, labels), nll_after=nll(after, labels),
                ece_before=expected_calibration_error(probs, labels),
                ece_after=expected_calibration_error(after, labels), images=int(len(labels)))


def calibrate_run(run_dir: str | os.PathLike, data) -> dict:
    """Fit the temperature of run_dir/model.keras on PublicTest, judge it on PrivateTest, write calibration.json.

    Args:
        run_dir: a run folder (or a published one) holding model.keras.
        data: FER2013 (fer_utils.dataset.FerData) with its val (PublicTest) and test (PrivateTest) splits.

    Returns:
        What calibration.json holds: temperature, NLL and ECE before and after on PrivateTest.
    """
    from .evaluation import predict_proba
    from .explain import load_float32

    model = load_float32(Path(run_dir, "model.keras"))
    (x_val, y_val), (x_test, y_test) = data.xy("val"), data.xy("test")
    report = calibration_report((predict_proba(model, x_val), y_val), (predict_proba(model, x_test), y_test))
    report["data_source"] = data.source
    write_json(Path(run_dir, CALIBRATION), report)
    return report


def load_temperature(model_path: str | os.PathLike) -> float | None:
    """The temperature in calibration.json beside `model_path`, or None when there is none.

    Raises:
        ValueError naming the file when it is there but holds no positive temperature.
    """
    path = Path(model_path).with_name(CALIBRATION)
    if not path.is_file():
        return None
    try:
        temperature = float(json.loads(path.read_text())["temperature"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: no temperature in it ({type(err).__name__}: {err})") from None
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"{path}: the temperature must be a positive number, got {temperature}")
    return temperature


@keras.saving.register_keras_serializable(package="fer_utils")
class TemperatureSoftmax(layers.Layer):
    """Probabilities in, softmax(log(p) / T) out: a model's last layer after temperature scaling."""

    def __init__(self, temperature: float, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def call(self, probs):
        return ops.softmax(ops.log(ops.clip(probs, 1e-12, 1.0)) / self.temperature, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


def with_temperature(model: keras.Model, temperature: float) -> keras.Model:
    """`model` followed by TemperatureSoftmax(temperature): same inputs, calibrated probabilities out."""
    return keras.Model(model.inputs, TemperatureSoftmax(temperature, name="temperature")(model.outputs[0]),
                       name=f"{model.name}_calibrated")
