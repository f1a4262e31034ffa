"""benchmarks/train_speed.py: the clock times the steady-state steps, not the warm-up or the fit call around them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
import numpy as np

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "train_speed.py"
spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
train_speed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_speed)


def tiny_model(steps_per_execution: int = 1) -> keras.Model:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(optimizer="adam", loss="categorical_crossentropy", steps_per_execution=steps_per_execution)
    return model


def fit_with_clock(model: keras.Model, steps: int, skip: int):
    x = np.zeros((steps * 8, 4), np.float32)
    y = keras.utils.to_categorical(np.zeros(steps * 8), 2)
    clock = train_speed.StepClock(skip)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[clock])
    return clock


def test_step_clock_starts_after_the_warm_up_and_ends_with_the_last_step():
    clock = fit_with_clock(tiny_model(), steps=12, skip=5)
    assert (clock.start_step, clock.end_step) == (5, 11)
    assert clock.first < clock.start < clock.end


def test_step_clock_counts_steps_run_several_per_call():
    clock = fit_with_clock(tiny_model(steps_per_execution=4), steps=12, skip=5)
    assert (clock.start_step, clock.end_step) == (8, 11)  # the first call that begins at or after step 5
