"""Plot helpers that carry a statement (learning-rate drops, probabilities) and the new evaluation scores."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from fer_utils import plots
from fer_utils.evaluation import (calibration_bins, expected_calibration_error, paper_and_clean_accuracy,
                                  recall_intervals)


def test_a_drop_is_dated_to_the_epoch_at_whose_end_it_happened():
    # epochs 1-3 at 0.002, epochs 4-5 at 0.001: ReduceLROnPlateau lowered the rate at the end of epoch 3
    history = pd.DataFrame({"learning_rate": [0.002, 0.002, 0.002, 0.001, 0.001]})
    assert plots.learning_rate_drops(history) == [3]


def test_plateau_curves_mark_each_drop_and_nothing_else():
    history = pd.DataFrame({"loss": [1, 0.9, 0.8, 0.7], "val_loss": [1, 1, 1, 1], "accuracy": [0.1, 0.2, 0.3, 0.4],
                            "val_accuracy": [0.1, 0.2, 0.2, 0.3], "learning_rate": [2e-3, 2e-3, 1e-3, 1e-3]})
    fig = plots.training_curves(history, "t", schedule="plateau")
    lines = [ln for ln in fig.axes[0].lines if ln.get_linestyle() == ":"]
    assert [ln.get_xdata()[0] for ln in lines] == [2.5]


def test_cosine_curves_draw_the_schedule_not_drops():
    lr = 0.002 * (1 + np.cos(np.linspace(0, np.pi, 40))) / 2
    history = pd.DataFrame({"loss": np.ones(40), "val_loss": np.ones(40), "accuracy": np.ones(40),
                            "val_accuracy": np.linspace(0, 1, 40), "learning_rate": lr})
    fig = plots.training_curves(history, "t", schedule="cosine")
    vertical = [ln for ax in fig.axes[:2] for ln in ax.lines if ln.get_linestyle() == ":" and len(ln.get_xdata()) == 2
                and ln.get_xdata()[0] == ln.get_xdata()[1]]
    assert vertical == []
    assert len(fig.axes) == 3  # the rate on a second axis


@pytest.mark.parametrize("p, shown", [(0.99999547, "99.9995%"), (0.9999702, "99.997%"), (0.5, "50.0%"),
                                      (0.9991, "99.91%")])
def test_a_near_certain_probability_does_not_round_to_100_percent(p, shown):
    assert plots.format_probability(p) == shown


def test_class_distribution_title_names_no_path(tiny_synthetic):
    title = plots.class_distribution(tiny_synthetic).axes[0].get_title()
    assert "/" not in title and tiny_synthetic.source not in title


def test_calibration_error_is_zero_when_confidence_equals_accuracy_and_grows_with_overconfidence():
    labels = np.array([0, 0, 0, 1])  # predict class 0 with confidence 0.75 on all four: 3 of 4 right
    calibrated = np.tile([0.75, 0.25, 0, 0, 0, 0, 0], (4, 1))
    assert expected_calibration_error(calibrated, labels) == pytest.approx(0)
    overconfident = np.tile([0.95, 0.05, 0, 0, 0, 0, 0], (4, 1))
    assert expected_calibration_error(overconfident, labels) == pytest.approx(0.2)


def test_the_reliability_diagram_plots_the_bins_the_ece_averages():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(7, 0.3), size=500)
    labels = rng.integers(0, 7, 500)
    bins = calibration_bins(probs, labels)
    assert bins["images"].sum() == 500 and bins["share"].sum() == pytest.approx(1)
    line = plots.reliability_diagram({"model": probs}, labels).axes[0].lines[1]
    np.testing.assert_allclose(line.get_xdata(), bins["confidence"])
    np.testing.assert_allclose(line.get_ydata(), bins["accuracy"])


def test_recall_interval_holds_the_recall_and_is_exact():
    labels = np.array([1] * 111 + [0] * 10)
    predicted = np.array([1] * 57 + [0] * 54 + [0] * 10)
    row = recall_intervals(labels, predicted).loc["disgust"]
    assert row["right"] == 57 and row["images"] == 111
    assert row["low"] < 57 / 111 < row["high"]
    assert row["low"] == pytest.approx(0.4163, abs=1e-3) and row["high"] == pytest.approx(0.6087, abs=1e-3)


def test_paper_and_clean_readings_pick_their_own_epochs():
    history = pd.DataFrame({"test_all_accuracy": [0.5, 0.7, 0.6], "public_test_accuracy": [0.6, 0.5, 0.55],
                            "private_test_accuracy": [0.4, 0.9, 0.65]})
    r = paper_and_clean_accuracy(history)
    assert (r["paper_epoch"], r["paper_accuracy"]) == (2, 0.7)
    assert (r["clean_epoch"], r["clean_accuracy"]) == (1, 0.4)
    assert r["flatters"] == pytest.approx(0.3)


def test_runs_without_per_epoch_test_columns_have_no_paper_reading():
    assert paper_and_clean_accuracy(pd.DataFrame({"val_accuracy": [0.5]})) is None
