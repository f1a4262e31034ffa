"""benchmarks/: the clocks time what they say they time (the steady-state steps; an epoch's parts)."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
train_speed = importlib.import_module("train_speed")
epoch_time = importlib.import_module("epoch_time")

pytestmark = pytest.mark.slow  # each test fits a (tiny) model: `make test-fast` trains nothing


def tiny_model(steps_per_execution: int = 1) -> keras.Model:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(optimizer="adam", loss="categorical_crossentropy", steps_per_execution=steps_per_execution)
    return model


def tiny_data(steps: int):
    return np.zeros((steps * 8, 4), np.float32), keras.utils.to_categorical(np.zeros(steps * 8), 2)


def fit_with_clock(model: keras.Model, steps: int, skip: int):
    x, y = tiny_data(steps)
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


def test_epoch_clock_prints_one_line_per_epoch_with_its_parts(capsys):
    x, y = tiny_data(5)
    tiny_model().fit(x, y, batch_size=8, epochs=2, verbose=0, validation_data=(x, y),
                     callbacks=[epoch_time.EpochClock()])
    lines = capsys.readouterr().out.splitlines()
    number = r"\d+\.\d s"
    epoch_line = rf"epoch \d: wait for first step {number} \| steps {number} \| validation {number} \| total {number}"
    assert [bool(re.fullmatch(epoch_line, line)) for line in lines] == [True, False, True]
    assert re.fullmatch(rf"  callbacks between epochs {number}", lines[1])
