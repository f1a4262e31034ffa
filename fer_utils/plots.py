"""Figures for the notebooks: data overview, training curves, confusion matrices, per-class scores, galleries.

Each function returns a matplotlib Figure with a title and labelled axes; `save` writes it as PNG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from .config import CLASSES, SPLITS
from .dataset import FerData


def save(fig: plt.Figure, path: str | Path) -> Path:
    """Write `fig` as a PNG (creating folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def class_distribution(data: FerData) -> plt.Figure:
    """Bar chart of images per class in each split."""
    counts = data.counts()
    df = pd.DataFrame([(s, c, counts[s][c]) for s in SPLITS for c in CLASSES], columns=["split", "class", "images"])
    fig, ax = plt.subplots(figsize=(9, 4))
    sns.barplot(df, x="class", y="images", hue="split", ax=ax)
    where = "synthetic stand-in" if data.synthetic else "FER2013"
    ax.set(title=f"Images per class and split ({where})", xlabel="emotion", ylabel="number of images")
    return fig


def sample_grid(data: FerData, split: str = "train", per_class: int = 8, seed: int = 0) -> plt.Figure:
    """A grid of random faces, one row per class."""
    rng = np.random.default_rng(seed)
    m = data.mask(split)
    fig, axes = plt.subplots(len(CLASSES), per_class, figsize=(per_class * 1.1, len(CLASSES) * 1.2))
    for row, cls in enumerate(CLASSES):
        idx = np.flatnonzero(m & (data.labels == row))
        pick = rng.choice(idx, min(per_class, len(idx)), replace=False) if len(idx) else []
        for col, ax in enumerate(axes[row]):
            ax.axis("off")
            if col < len(pick):
                ax.imshow(data.images[pick[col], ..., 0], cmap="gray", vmin=0, vmax=255)
        axes[row, 0].set_title(cls, loc="left", fontsize=9)
    fig.suptitle(f"Random {split} images per class")
    return fig


def learning_rate_drops(history: pd.DataFrame) -> list[int]:
    """Epochs (1-based) at whose end the learning rate was lowered, read from history.csv's `learning_rate`.

    The history records the rate used *during* each epoch, so a drop after epoch e shows first in epoch e + 1's row.
    """
    if "learning_rate" not in history:
        return []
    lr = history["learning_rate"].to_numpy()
    return (np.flatnonzero(lr[1:] < lr[:-1]) + 1).tolist()


def training_curves(history: pd.DataFrame, title: str, schedule: str = "plateau") -> plt.Figure:
    """Loss and accuracy per epoch (train and validation) and the epoch kept.

    `schedule="plateau"`: dotted lines where ReduceLROnPlateau lowered the rate (between the last epoch at the old
    rate and the first at the new one). Any other schedule (cosine) changes the rate every step: its rate is drawn
    on a second axis of the loss panel instead.
    """
    epochs = np.arange(1, len(history) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, history[metric], label=f"train {metric}")
        ax.plot(epochs, history[f"val_{metric}"], label=f"validation {metric}")
        if schedule == "plateau":
            for k, e in enumerate(learning_rate_drops(history)):
                ax.axvline(e + 0.5, color="grey", ls=":", label="learning rate lowered" if k == 0 else None)
        ax.set(xlabel="epoch", ylabel=metric, title=f"{title}: {metric}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="center right" if metric == "loss" else "lower right")
    if schedule != "plateau" and "learning_rate" in history:
        lr_ax = axes[0].twinx()
        lr_ax.plot(epochs, history["learning_rate"], color="grey", ls=":")
        lr_ax.set_ylabel(f"learning rate ({schedule} schedule, dotted)", color="grey")
    best = int(np.argmax(history["val_accuracy"])) + 1
    axes[1].axvline(best, color="green", ls="--", alpha=0.5)
    axes[1].annotate(f"best epoch {best}", (best, history["val_accuracy"].max()), textcoords="offset points",
                     xytext=(5, -15), color="green")
    fig.tight_layout()
    return fig


def compared_training_curves(histories: dict[str, pd.DataFrame]) -> plt.Figure:
    """Both models' loss and accuracy per epoch on the same axes (solid: train, dashed: validation)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for (name, history), color in zip(histories.items(), ("tab:blue", "tab:orange", "tab:green")):
        epochs = np.arange(1, len(history) + 1)
        for ax, metric in zip(axes, ("loss", "accuracy")):
            ax.plot(epochs, history[metric], color=color, label=f"{name}, train")
            ax.plot(epochs, history[f"val_{metric}"], color=color, ls="--", label=f"{name}, validation")
        best = int(np.argmax(history["val_accuracy"]))
        axes[1].plot(best + 1, history["val_accuracy"][best], "o", color=color, label=f"{name}, epoch kept")
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.set(xlabel="epoch", ylabel=metric, title=f"{metric.capitalize()} per epoch (validation: PublicTest)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def test_accuracy_curves(histories: dict[str, pd.DataFrame]) -> plt.Figure:
    """Per model: accuracy per epoch on all test images and on PrivateTest, with the epoch each way picks.

    The paper's way picks the epoch with the best accuracy on all test images (the test set choosing); the clean
    way keeps the epoch PublicTest chose and reads PrivateTest there. Needs history.csv's `test_all_accuracy` and
    `private_test_accuracy` columns (logged by `callbacks.TestSplitsLog`).
    """
    fig, axes = plt.subplots(1, len(histories), figsize=(6 * len(histories), 4), squeeze=False, sharey=True)
    for ax, (name, history) in zip(axes[0], histories.items()):
        epochs = np.arange(1, len(history) + 1)
        ax.plot(epochs, history["test_all_accuracy"], label="all test images")
        ax.plot(epochs, history["private_test_accuracy"], label="PrivateTest")
        paper = int(np.argmax(history["test_all_accuracy"]))
        clean = int(np.argmax(history["public_test_accuracy"]))
        ax.plot(paper + 1, history["test_all_accuracy"][paper], "v", color="tab:red", markersize=9,
                label=f"paper's way: epoch {paper + 1}, {history['test_all_accuracy'][paper]:.2%}")
        ax.plot(clean + 1, history["private_test_accuracy"][clean], "^", color="tab:green", markersize=9,
                label=f"clean: epoch {clean + 1}, {history['private_test_accuracy'][clean]:.2%}")
        ax.set(title=name, xlabel="epoch", ylabel="accuracy")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Test accuracy per epoch: the test set choosing the epoch (paper) vs PublicTest choosing (clean)")
    fig.tight_layout()
    return fig


def reliability_diagram(probs: dict[str, np.ndarray], labels: np.ndarray, n_bins: int = 10) -> plt.Figure:
    """Accuracy against confidence (the top class's probability), in `n_bins` equal-width bins, per model (the ECE's
    bins: `evaluation.calibration_bins`).

    A calibrated model lies on the diagonal; below it, the model is more confident than it is right.
    """
    from .evaluation import calibration_bins

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", ls=":", label="perfectly calibrated")
    for name, p in probs.items():
        bins = calibration_bins(p, labels, n_bins)
        ax.plot(bins["confidence"], bins["accuracy"], "o-", label=name)
    ax.set(xlabel="confidence (probability of the predicted class)", ylabel="accuracy in the bin",
           title="Reliability diagram", xlim=(0, 1), ylim=(0, 1))
    ax.legend()
    return fig


def confusion_matrices(cms: dict[str, np.ndarray], normalize: bool = False) -> plt.Figure:
    """Confusion matrices side by side (counts, or rows normalised to the true class)."""
    fig, axes = plt.subplots(1, len(cms), figsize=(6 * len(cms), 5), squeeze=False)
    for ax, (name, cm) in zip(axes[0], cms.items()):
        cm = np.asarray(cm, dtype=float)
        shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
        sns.heatmap(shown, annot=True, fmt=".2f" if normalize else ".0f", cmap="Blues", cbar=False, ax=ax,
                    xticklabels=CLASSES, yticklabels=CLASSES, square=True)
        ax.set(title=f"{name}" + (" (row-normalised)" if normalize else " (counts)"), xlabel="predicted",
               ylabel="true")
    fig.tight_layout()
    return fig


def per_class_f1(scores: dict[str, pd.DataFrame]) -> plt.Figure:
    """F1 per class for each model (scores from evaluation.per_class_scores)."""
    df = pd.concat([s.assign(model=name).rename_axis("class").reset_index() for name, s in scores.items()])
    fig, ax = plt.subplots(figsize=(9, 4))
    sns.barplot(df, x="class", y="f1", hue="model", ax=ax)
    ax.set(title="F1 score per emotion", xlabel="emotion", ylabel="F1", ylim=(0, 1))
    return fig


def format_probability(p: float) -> str:
    """A probability as a percentage with as many decimals as it takes not to round to 100%: 0.99995 -> '99.995%'."""
    p = float(p)
    decimals = 1 if p >= 1 or p < 0.999 else max(1, int(np.ceil(-np.log10(1 - p))) - 2)
    return f"{p:.{decimals}%}"


def gallery(images: np.ndarray, true: np.ndarray, pred: np.ndarray, confidence: np.ndarray,
            title: str, cols: int = 8) -> plt.Figure:
    """Faces with their true and predicted labels and the predicted class's probability."""
    rows = max(1, int(np.ceil(len(images) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.5, rows * 2.1), squeeze=False,
                             gridspec_kw={"hspace": 0.5})
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, t, p, c in zip(axes.flat, images, true, pred, confidence):
        ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"true {CLASSES[t]}\npred {CLASSES[p]} {format_probability(c)}", fontsize=8)
    fig.suptitle(title)
    return fig


def se_gate_heatmaps(gates: dict[str, dict[str, np.ndarray]], row_labels: list[str], title: str) -> plt.Figure:
    """SE gates s as heatmaps: one row of panels per model, one panel per SE block (rows x channels), scale 0..1.

    `gates[model][block]` is an array (len(row_labels), C), e.g. the mean gate per emotion class.
    """
    models = list(gates)
    blocks = list(gates[models[0]])
    widths = [gates[models[0]][b].shape[1] for b in blocks]
    fig, axes = plt.subplots(len(models), len(blocks), figsize=(14, 2.2 + 2.2 * len(models)), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    cbar_ax = fig.add_axes((0.92, 0.15, 0.012, 0.7))
    for r, model in enumerate(models):
        for c, block in enumerate(blocks):
            ax = axes[r, c]
            sns.heatmap(gates[model][block], vmin=0, vmax=1, center=0.5, cmap="vlag", ax=ax, cbar=c == 0 and r == 0,
                        cbar_ax=cbar_ax if c == 0 and r == 0 else None, cbar_kws={"label": "gate $s_c$"},
                        yticklabels=row_labels if c == 0 else False, xticklabels=False)
            ax.set(title=f"{model}: {block} (C = {widths[c]})", xlabel="channel c",
                   ylabel="emotion" if c == 0 else "")
    fig.suptitle(title)
    fig.subplots_adjust(left=0.08, right=0.9, wspace=0.08, hspace=0.45)
    return fig
