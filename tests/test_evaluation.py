"""fer_utils.evaluation: the numbers every report is built on, checked against hand computations."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import KAGGLE_CLASSES
from scipy.stats import binomtest

from fer_utils.evaluation import (load_run, loss_and_accuracy, markdown_table, mcnemar, most_confused_pairs,
                                  per_class_scores, predict_proba)


def random_probs(rng, n):
    logits = rng.normal(size=(n, 7))
    return (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)


def test_loss_and_accuracy_match_a_hand_computation():
    probs = np.full((3, 7), 0.05, dtype=np.float32)
    probs[0, 2], probs[1, 4], probs[2, 0] = 0.7, 0.7, 0.7  # predicted: 2, 4, 0
    labels = np.array([2, 1, 0])  # right, wrong (p_true 0.05), right
    scores = loss_and_accuracy(probs, labels)
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert scores["loss"] == pytest.approx(-(np.log(0.7) + np.log(0.05) + np.log(0.7)) / 3, rel=1e-6)
    assert scores["n"] == 3


def test_loss_matches_keras_categorical_crossentropy():
    rng = np.random.default_rng(0)
    probs, labels = random_probs(rng, 50), rng.integers(0, 7, size=50)
    probs[0, labels[0]] = 0.0  # a certain miss: clipped to epsilon, not an infinite loss
    keras_loss = keras.ops.mean(keras.losses.categorical_crossentropy(np.eye(7)[labels], probs))
    assert loss_and_accuracy(probs, labels)["loss"] == pytest.approx(float(keras_loss), rel=1e-4)


def test_tta_averages_the_predictions_of_each_image_and_its_mirror():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1))
    model = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(inputs)))
    images = np.random.default_rng(0).random((4, 48, 48, 1)).astype(np.float32)
    plain, mirrored = predict_proba(model, images), predict_proba(model, images[:, :, ::-1])
    assert not np.allclose(plain, mirrored)  # the model is not symmetric, so the mirror matters
    np.testing.assert_allclose(predict_proba(model, images, tta=True), (plain + mirrored) / 2, rtol=1e-6)


def test_mcnemar_counts_discordant_pairs_and_uses_exact_binomial():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, size=200)
    pred_a = np.where(rng.random(200) < 0.7, labels, (labels + 1) % 7)
    pred_b = np.where(rng.random(200) < 0.6, labels, (labels + 2) % 7)
    a_only = sum(a == y and b != y for y, a, b in zip(labels, pred_a, pred_b))
    b_only = sum(a != y and b == y for y, a, b in zip(labels, pred_a, pred_b))
    result = mcnemar(labels, pred_a, pred_b)
    assert (result["a_only_right"], result["b_only_right"]) == (a_only, b_only)
    assert result["p_value"] == pytest.approx(binomtest(a_only, a_only + b_only, 0.5).pvalue)


def test_mcnemar_without_discordant_pairs_has_p_value_one():
    labels = np.array([0, 1, 2, 3])
    same = np.array([0, 1, 5, 5])  # both models right and wrong on the same images
    assert mcnemar(labels, same, same.copy()) == {"a_only_right": 0, "b_only_right": 0, "p_value": 1.0}


def test_most_confused_pair_is_the_largest_off_diagonal_cell():
    cm = np.full((7, 7), 2) + np.diag(np.full(7, 50))
    cm[5, 2] = 17  # sad predicted as fear
    cm[1, 3] = 9
    top = most_confused_pairs(cm, top=2)
    assert list(top.iloc[0][["true", "predicted", "count"]]) == ["sad", "fear", 17]
    assert top.iloc[0]["share_of_true"] == pytest.approx(17 / cm[5].sum())
    assert list(top.iloc[1][["true", "predicted", "count"]]) == ["disgust", "happy", 9]


def test_per_class_scores_match_counts_of_true_and_false_positives():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 6, size=300)  # class 6 (surprise) never occurs
    predicted = np.where(rng.random(300) < 0.5, labels, rng.integers(0, 5, size=300))  # 5, 6 rarely/never predicted
    scores = per_class_scores(labels, predicted)
    assert list(scores.index) == list(KAGGLE_CLASSES)
    for k, cls in enumerate(KAGGLE_CLASSES):
        tp = np.sum((predicted == k) & (labels == k))
        n_pred, n_true = np.sum(predicted == k), np.sum(labels == k)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_true if n_true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert scores.loc[cls].tolist() == pytest.approx([precision, recall, f1, n_true]), cls


def test_markdown_table_right_aligns_only_the_columns_named():
    table = pd.DataFrame({"model": ["CNN"], "filters": ["32-64-128"], "acc": [0.65]}).set_index("model")
    lines = markdown_table(table, {"acc": ".2%"}, right=["acc"])
    assert lines == ["| model | filters | acc |", "|---|---|---:|", "| CNN | 32-64-128 | 65.00% |"]


def test_markdown_table_shows_two_columns_under_one_header():
    table = pd.DataFrame({"seed": [0], "gain val": ["+1.00"], "gain test": ["-0.50"]}).set_index("seed")
    lines = markdown_table(table, headers={"gain val": "gain", "gain test": "gain"})
    assert lines[0] == "| seed | gain | gain |" and lines[2] == "| 0 | +1.00 | -0.50 |"


def test_load_run_reads_a_run_folder_and_needs_no_predictions_npz_without_predictions(tmp_path):
    """What the notebooks read through `load_run`: the three files of every finished run, and predictions.npz when
    asked for (a study row is kept without it)."""
    (tmp_path / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5}))
    (tmp_path / "run_info.json").write_text(json.dumps({"epochs_run": 2, "params": {"epochs": 3}}))
    pd.DataFrame({"val_accuracy": [0.4, 0.5]}).to_csv(tmp_path / "history.csv", index=False)
    row = load_run(tmp_path, predictions=False)
    assert row["metrics"] == {"test_accuracy": 0.5} and row["run_info"]["params"] == {"epochs": 3}
    assert list(row["history"]["val_accuracy"]) == [0.4, 0.5] and row["predictions"] is None
    assert row["path"] == tmp_path
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path)  # predictions asked for, and there is no predictions.npz
    np.savez(tmp_path / "predictions.npz", probs=np.eye(7)[:2], file_ids=np.array([3, 4]))
    run = load_run(str(tmp_path))
    assert sorted(run["predictions"]) == ["file_ids", "probs"] and run["predictions"]["file_ids"].tolist() == [3, 4]
