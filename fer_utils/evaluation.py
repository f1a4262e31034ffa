"""Evaluate trained models: loss and accuracy per split, confusion matrices, per-class scores, McNemar.

One function computes a split's numbers, so metrics.json, the CLI and the notebooks agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from .config import CLASSES, SPLITS
from .data import FerData

EVAL_BATCH_SIZE = 512


def predict_proba(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Class probabilities (N, 7) as float32; no augmentation (inference mode)."""
    return np.asarray(model.predict(images, batch_size=EVAL_BATCH_SIZE, verbose=0), dtype=np.float32)


def loss_and_accuracy(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Categorical cross-entropy (Keras' clipping) and accuracy of predicted probabilities."""
    eps = keras.config.epsilon()
    p_true = np.clip(probs[np.arange(len(labels)), labels], eps, 1 - eps)
    return {"loss": float(-np.log(p_true).mean()), "accuracy": float((probs.argmax(1) == labels).mean()),
            "n": int(len(labels))}


def evaluate_splits(model: keras.Model, data: FerData) -> tuple[dict, dict]:
    """Loss, accuracy and confusion matrix on train, val, test and test_all; plus test_all predictions."""
    probs = predict_proba(model, data.images)
    metrics: dict = {"classes": list(CLASSES), "splits": {}}
    for split in (*SPLITS, "test_all"):
        m = data.mask(split)
        scores = loss_and_accuracy(probs[m], data.labels[m])
        scores["confusion_matrix"] = confusion_matrix(data.labels[m], probs[m].argmax(1),
                                                      labels=range(len(CLASSES))).tolist()
        metrics["splits"][split] = scores
        metrics[f"{split}_loss"], metrics[f"{split}_accuracy"] = scores["loss"], scores["accuracy"]
    m = data.mask("test_all")
    predictions = dict(probs=probs[m], labels=data.labels[m], file_ids=data.file_ids[m], splits=data.splits[m])
    return metrics, predictions


def evaluate_split(model: keras.Model, data: FerData, split: str) -> dict[str, float]:
    """Loss and accuracy of `model` on one split, recomputed from the images."""
    x, y = data.xy(split)
    return loss_and_accuracy(predict_proba(model, x), y)


def load_run(run_dir: str | Path) -> dict:
    """A run folder's metrics, history, run info and test_all predictions."""
    run_dir = Path(run_dir)
    preds = np.load(run_dir / "predictions.npz")
    return dict(metrics=json.loads((run_dir / "metrics.json").read_text()),
                run_info=json.loads((run_dir / "run_info.json").read_text()),
                history=pd.read_csv(run_dir / "history.csv"),
                predictions={k: preds[k] for k in preds.files}, path=run_dir)


def per_class_scores(labels: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """Precision, recall, F1 and support per class (scikit-learn)."""
    p, r, f, s = precision_recall_fscore_support(labels, predicted, labels=range(len(CLASSES)), zero_division=0)
    return pd.DataFrame({"precision": p, "recall": r, "f1": f, "support": s}, index=list(CLASSES))


def most_confused_pairs(cm: np.ndarray, top: int = 5) -> pd.DataFrame:
    """The off-diagonal (true, predicted) cells with the most images, with their share of the true class."""
    cm = np.asarray(cm)
    rows = [(CLASSES[i], CLASSES[j], int(cm[i, j]), cm[i, j] / max(cm[i].sum(), 1))
            for i in range(len(cm)) for j in range(len(cm)) if i != j]
    df = pd.DataFrame(rows, columns=["true", "predicted", "count", "share_of_true"])
    return df.sort_values("count", ascending=False).head(top).reset_index(drop=True)


def mcnemar(labels: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict:
    """Exact McNemar test: do models A and B differ in accuracy on the same images?

    Only discordant images count: b = A right and B wrong, c = A wrong and B right; under H0 b ~ Bin(b + c, 1/2).
    """
    right_a, right_b = pred_a == labels, pred_b == labels
    b, c = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    return {"a_only_right": b, "b_only_right": c, "p_value": float(p)}
