"""Evaluate trained models: loss and accuracy per split, confusion matrices, per-class scores, McNemar.

One function computes a split's numbers, so metrics.json, the CLI and the notebooks agree.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from .config import CLASSES, PAPER_TABLE1, SPLITS
from .dataset import FerData
from .runfolder import write_text

EVAL_BATCH_SIZE = 512


def predict_proba(model: keras.Model, images: np.ndarray, tta: bool = False) -> np.ndarray:
    """Class probabilities (N, 7) as float32; no augmentation (inference mode).

    `tta=True` (test-time augmentation) averages the probabilities of each image and its left-right mirror.
    """
    probs = np.asarray(model.predict(images, batch_size=EVAL_BATCH_SIZE, verbose=0), dtype=np.float32)
    if tta:
        probs = (probs + predict_proba(model, images[:, :, ::-1])) / 2
    return probs


def loss_and_accuracy(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Categorical cross-entropy of the probabilities (clipped to [eps, 1 - eps]) and accuracy."""
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


EVALUATION_PRECISION = "float32"
"""The one precision every saved evaluation is computed in (metrics.json, predictions.npz, `evaluate`, the notebooks):
a model trained in mixed bfloat16 computes in whatever the loading machine gives it (bf16 kernels round differently on
another CPU or a GPU), enough to flip a few dozen near-tied images; a float32 copy answers the same everywhere."""


def evaluate_checkpoint(model: keras.Model, data: FerData) -> tuple[dict, dict]:
    """`evaluate_splits` of a trained model as a float32 copy (EVALUATION_PRECISION), whatever it was trained in.

    Args:
        model: a trained model (e.g. a run folder's model.keras, loaded); left unchanged.
        data: the images it was trained on.

    Returns:
        (metrics, predictions) as evaluate_splits gives them; metrics also say `evaluated_in`.
    """
    from .explain import float32_copy

    metrics, predictions = evaluate_splits(float32_copy(model), data)
    metrics["evaluated_in"] = EVALUATION_PRECISION
    return metrics, predictions


def evaluate_split(model: keras.Model, data: FerData, split: str, tta: bool = False) -> dict[str, float]:
    """Loss and accuracy of `model` on one split, recomputed from the images (`tta`: see predict_proba)."""
    x, y = data.xy(split)
    return loss_and_accuracy(predict_proba(model, x, tta), y)


def load_run(run_dir: str | Path, predictions: bool = True) -> dict:
    """A run folder's metrics, history, run info and test_all predictions (None with `predictions=False`, for
    folders kept without predictions.npz, such as the studies' rows)."""
    run_dir = Path(run_dir)
    preds = None
    if predictions:
        with np.load(run_dir / "predictions.npz") as npz:
            preds = {k: npz[k] for k in npz.files}
    return dict(metrics=json.loads((run_dir / "metrics.json").read_text()),
                run_info=json.loads((run_dir / "run_info.json").read_text()),
                history=pd.read_csv(run_dir / "history.csv"), predictions=preds, path=run_dir)


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


def table1(metrics: dict[str, dict]) -> pd.DataFrame:
    """The paper's Table 1 for our runs, beside the paper's own numbers.

    `metrics` maps 'baseline'/'se' to a run's metrics.json. "test" is the 7,178-image test folder (the paper's);
    "PrivateTest" is the half that played no part in training or checkpoint selection (the clean figure).
    """
    names = {"baseline": "Original CNN", "se": "CNN with SE Blocks"}
    rows = []
    for kind, m in metrics.items():
        paper = PAPER_TABLE1[kind]
        rows.append({"model": names.get(kind, kind), "source": "paper", "train loss": paper["train_loss"],
                     "train acc": paper["train_accuracy"], "test loss": paper["test_loss"],
                     "test acc": paper["test_accuracy"], "PrivateTest acc": np.nan})
        rows.append({"model": names.get(kind, kind), "source": "this run", "train loss": m["train_loss"],
                     "train acc": m["train_accuracy"], "test loss": m["test_all_loss"],
                     "test acc": m["test_all_accuracy"], "PrivateTest acc": m["test_accuracy"]})
    return pd.DataFrame(rows).set_index(["model", "source"])


def paired_accuracy_difference(labels: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, level: float = 0.95,
                               n_boot: int = 10_000, seed: int = 0) -> dict:
    """Accuracy of B minus accuracy of A on the same images, with a normal and a paired-bootstrap interval.

    Per image d = [B right] - [A right]; the difference is mean(d). Normal: mean(d) +- z * sd(d) / sqrt(n).
    Bootstrap: `scipy.stats.bootstrap`'s percentile interval over `n_boot` resamples of the images (seeded).

    Returns:
        difference, se, level, normal_low/high, bootstrap_low/high, n, n_boot and the bootstrap `samples`.
    """
    from scipy.stats import bootstrap, norm

    d = (pred_b == labels).astype(np.int8) - (pred_a == labels).astype(np.int8)
    n = len(d)
    diff = float(d.mean()) if n else 0.0
    se = float(d.std() / np.sqrt(n)) if n else 0.0  # std uses 1/n: se^2 = (b + c - (c - b)^2 / n) / n^2
    z = float(norm.ppf(0.5 + level / 2))
    if n and d.any():
        # One per-image difference per image: resampling images keeps each image's pair of predictions together.
        res = bootstrap((d,), np.mean, n_resamples=n_boot, confidence_level=level, method="percentile",
                        rng=np.random.default_rng(seed), batch=max(1, 2_000_000 // n))  # about 2M indices a batch
        low, high, samples = res.confidence_interval.low, res.confidence_interval.high, res.bootstrap_distribution
    else:  # both models right and wrong on the same images: every resample's difference is 0
        low = high = 0.0
        samples = np.zeros(n_boot)
    return {"difference": diff, "se": se, "level": level, "normal_low": diff - z * se, "normal_high": diff + z * se,
            "bootstrap_low": float(low), "bootstrap_high": float(high), "n": int(n), "n_boot": int(n_boot),
            "samples": samples}


def markdown_table(df: pd.DataFrame, formats: dict[str, str] | None = None, right: Collection[str] = (),
                   headers: dict[str, str] | None = None) -> list[str]:
    """A DataFrame (index included) as Markdown table lines; NaN shown as '-'.

    Args:
        df: the table; its index becomes the first column.
        formats: {column: format spec} for float cells (default ".4f"); other cells are written with str().
        right: the columns to right-align (`---:`), e.g. the numeric ones; the others are left as `---`.
        headers: {column: the header shown instead of its name}, so two columns may show the same header.
    """
    frame = df.reset_index()
    formats, headers = formats or {}, headers or {}
    header = [headers.get(str(c), str(c)) for c in frame.columns]
    rule = ["---:" if str(c) in right else "---" for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    for _, row in frame.iterrows():
        cells = []
        for col in frame.columns:
            v = row[col]
            if isinstance(v, (float, np.floating)):
                cells.append("-" if np.isnan(v) else format(v, formats.get(str(col), ".4f")))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_results_md(path: str | Path, table: pd.DataFrame, mcnemar_result: dict, data_description: str,
                     figures: dict[str, str | Path], synthetic: bool = False, difference: dict | None = None,
                     notes: list[str] | tuple[str, ...] = (), alpha: float = 0.05) -> Path:
    """Write the run's results.md: Table 1 (ours vs the paper), McNemar's test, the data source, figure links.

    `table` is `table1(...)`; `mcnemar_result` is `mcnemar(labels, baseline, se)`; `difference` is
    `paired_accuracy_difference(...)` (optional); figures map a caption to a PNG path (absolute, or relative to
    the working directory like `path`), linked relative to the folder of results.md, e.g. `figures/05_x.png`.
    """
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Results: CNN vs CNN with SE blocks on FER2013", ""]
    if synthetic:
        lines += ["> **WARNING: SYNTHETIC DATA. These runs were trained and tested on the synthetic stand-in, "
                  "NOT on FER2013. The numbers below only show that the pipeline works; they say nothing about "
                  "the paper's claims.**", ""]
    lines += [f"**Data:** {data_description}", "", "## Table 1: ours beside the paper's", ""]
    pct = {c: ".2%" for c in table.columns if "acc" in str(c)}
    lines += markdown_table(table, pct)
    lines += ["", "\"test\" is the paper's test set, all test images (PublicTest + PrivateTest, 7,178 in FER2013); "
              "\"PrivateTest acc\" is the half that played no part in training or checkpoint selection.", ""]
    b, c, p = mcnemar_result["a_only_right"], mcnemar_result["b_only_right"], mcnemar_result["p_value"]
    verdict = "significant" if p < alpha else "not significant"
    lines += ["## Baseline vs SE-CNN on the same test images (McNemar's exact test)", "",
              f"- baseline right, SE-CNN wrong: b = {b}",
              f"- baseline wrong, SE-CNN right: c = {c}",
              f"- exact two-sided p-value (b ~ Bin(b + c, 1/2) under H0): p = {p:.4g} "
              f"({verdict} at the {alpha:g} level)"]
    if difference is not None:
        lvl = f"{difference['level']:.0%}"
        lines += [f"- accuracy difference, SE-CNN minus baseline: {difference['difference']:+.2%} "
                  f"(n = {difference['n']:,}); {lvl} interval: normal approximation "
                  f"[{difference['normal_low']:+.2%}, {difference['normal_high']:+.2%}], paired bootstrap "
                  f"({difference['n_boot']:,} resamples) [{difference['bootstrap_low']:+.2%}, "
                  f"{difference['bootstrap_high']:+.2%}]"]
    lines += [""]
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    if figures:
        lines += ["## Figures", ""]
        for caption, fig_path in figures.items():
            rel = Path(os.path.relpath(Path(fig_path).resolve(), path.parent.resolve())).as_posix()
            lines += [f"### {caption}", "", f"![{caption}]({rel})", ""]
        lines += [""]
    write_text(path, "\n".join(lines))
    return path


def calibration_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Confidence (the predicted class's probability) against accuracy, in `n_bins` equal-width confidence bins.

    The one binning that both the ECE and the reliability diagram (`plots.reliability_diagram`) use.

    Args:
        probs: predicted probabilities (N, classes).
        labels: true class indices (N,).
        n_bins: equal-width bins over [0, 1]; bin k holds confidences in [k / n_bins, (k + 1) / n_bins).

    Returns:
        One row per non-empty bin: mean confidence, accuracy and the share of the N images in it.
    """
    confidence, right = probs.max(1), probs.argmax(1) == labels
    frame = pd.DataFrame({"bin": np.minimum((confidence * n_bins).astype(int), n_bins - 1),
                          "confidence": confidence, "accuracy": right.astype(float)})
    bins = frame.groupby("bin").agg(confidence=("confidence", "mean"), accuracy=("accuracy", "mean"),
                                    images=("accuracy", "size"))
    return bins.assign(share=bins["images"] / len(frame))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """ECE: the gap between confidence and accuracy, averaged over `calibration_bins` weighted by their images.

    ECE = sum over bins of (images in bin / n) * |accuracy - confidence|.
    """
    bins = calibration_bins(probs, labels, n_bins)
    return float((bins["share"] * (bins["accuracy"] - bins["confidence"]).abs()).sum())


def recall_intervals(labels: np.ndarray, predicted: np.ndarray, level: float = 0.95) -> pd.DataFrame:
    """Per class: images, how many were recognised, recall and its exact (Clopper-Pearson) `level` interval."""
    from scipy.stats import binomtest

    rows = []
    for i, cls in enumerate(CLASSES):
        n = int((labels == i).sum())
        k = int(((labels == i) & (predicted == i)).sum())
        ci = binomtest(k, n).proportion_ci(level) if n else None
        rows.append({"class": cls, "images": n, "right": k, "recall": k / n if n else np.nan,
                     "low": ci.low if ci else np.nan, "high": ci.high if ci else np.nan})
    return pd.DataFrame(rows).set_index("class")


def paper_and_clean_accuracy(history: pd.DataFrame) -> dict | None:
    """Two readings of one run's per-epoch test accuracies (history.csv), or None when they were not logged.

    paper: the best epoch by accuracy on all test images (the test set choosing the epoch, as the paper did);
    clean: PrivateTest accuracy at the epoch with the best PublicTest accuracy (PublicTest choosing).
    `flatters` = paper - clean, in accuracy (not points).
    """
    needed = ("test_all_accuracy", "public_test_accuracy", "private_test_accuracy")
    if not all(c in history for c in needed):
        return None
    paper = int(np.argmax(history["test_all_accuracy"]))
    clean = int(np.argmax(history["public_test_accuracy"]))
    out = {"paper_epoch": paper + 1, "paper_accuracy": float(history["test_all_accuracy"][paper]),
           "clean_epoch": clean + 1, "clean_accuracy": float(history["private_test_accuracy"][clean])}
    out["flatters"] = out["paper_accuracy"] - out["clean_accuracy"]
    return out
