"""Figures for the notebooks: data overview, training curves, confusion matrices, per-class scores, galleries.

Each function returns a matplotlib Figure with a title and labelled axes; `save` writes it as PNG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import pandas as pd
import seaborn as sns

from .config import CLASSES, SPLITS
from .data import FerData


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
    ax.set(title=f"Images per class and split ({data.source})", xlabel="emotion", ylabel="number of images")
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


def training_curves(history: pd.DataFrame, title: str) -> plt.Figure:
    """Loss and accuracy per epoch (train and validation), with learning-rate drops marked."""
    epochs = np.arange(1, len(history) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, history[metric], label=f"train {metric}")
        ax.plot(epochs, history[f"val_{metric}"], label=f"validation {metric}")
        if "learning_rate" in history:
            lr = history["learning_rate"].to_numpy()
            for k, e in enumerate(np.flatnonzero(lr[1:] < lr[:-1]) + 2):
                ax.axvline(e, color="grey", ls=":", label="learning rate reduced" if k == 0 else None)
        ax.set(xlabel="epoch", ylabel=metric, title=f"{title}: {metric}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    best = int(np.argmax(history["val_accuracy"])) + 1
    axes[1].axvline(best, color="green", ls="--", alpha=0.5)
    axes[1].annotate(f"best epoch {best}", (best, history["val_accuracy"].max()), textcoords="offset points",
                     xytext=(5, -15), color="green")
    fig.tight_layout()
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
        ax.set_title(f"true {CLASSES[t]}\npred {CLASSES[p]} {c:.0%}", fontsize=8)
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
