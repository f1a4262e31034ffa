"""Find FER2013's defects by computation: exact duplicates, train/test leakage, conflicting labels,
blank images, repeated file names; plus per-class pixel statistics and galleries to look at them.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .config import CLASSES
from .dataset import FerData


def image_keys(images: np.ndarray) -> list[bytes]:
    """SHA-1 digest of each image's raw bytes: equal digests <=> pixel-for-pixel identical images."""
    flat = np.ascontiguousarray(images).reshape(len(images), int(np.prod(images.shape[1:])))
    return [hashlib.sha1(row.tobytes()).digest() for row in flat]


def duplicate_groups(images: np.ndarray) -> list[np.ndarray]:
    """Groups (sorted index arrays, 2+ members) of pixel-identical images, ordered by first index."""
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for i, key in enumerate(image_keys(images)):
        by_key[key].append(i)
    return [np.array(ix) for ix in by_key.values() if len(ix) > 1]  # dicts keep insertion order


def split_duplicate_groups(data: FerData, split: str) -> list[np.ndarray]:
    """Duplicate groups inside one split, as indices into the whole of `data`."""
    idx = np.flatnonzero(data.mask(split))
    return [idx[g] for g in duplicate_groups(data.images[idx])]


def redundant_copies(groups: list[np.ndarray]) -> int:
    """Images that could be deleted leaving one of each: sum of (group size - 1)."""
    return int(sum(len(g) - 1 for g in groups))


def leaked_groups(data: FerData, groups: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Duplicate groups with members both in train and in val or test (train images seen at test time)."""
    groups = duplicate_groups(data.images) if groups is None else groups
    return [g for g in groups if (data.splits[g] == "train").any() and (data.splits[g] != "train").any()]


def train_copy_masks(data: FerData, groups: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two boolean masks over all images: `in_train` (a val/test image with an identical copy in train) and
    `same_label` (... and a train copy carries its label: memorisation gets it right)."""
    groups = duplicate_groups(data.images) if groups is None else groups
    in_train = np.zeros(len(data.labels), dtype=bool)
    same_label = np.zeros(len(data.labels), dtype=bool)
    for g in leaked_groups(data, groups):
        train_labels = set(data.labels[g][data.splits[g] == "train"])
        for i in g[data.splits[g] != "train"]:
            in_train[i] = True
            same_label[i] = data.labels[i] in train_labels
    return in_train, same_label


def leakage_table(data: FerData, groups: list[np.ndarray] | None = None) -> pd.DataFrame:
    """Per evaluation split: images, how many have an identical copy in train, and whether a copy's label agrees."""
    in_train, same_label = train_copy_masks(data, groups)
    rows = {}
    for split in ("val", "test", "test_all"):
        m = data.mask(split)
        n, leaked = int(m.sum()), int(in_train[m].sum())
        rows[split] = {"images": n, "copy_in_train": leaked, "copy_in_train_pct": 100 * leaked / max(n, 1),
                       "train_copy_same_label": int(same_label[m].sum())}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("split")


def conflicting_label_groups(data: FerData, groups: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Duplicate groups whose members are filed under more than one class."""
    groups = duplicate_groups(data.images) if groups is None else groups
    return [g for g in groups if len(np.unique(data.labels[g])) > 1]


def conflict_class_sets(data: FerData, groups: list[np.ndarray]) -> pd.Series:
    """How often each set of classes (e.g. `fear / surprise`) is given to one and the same image."""
    sets = [" / ".join(CLASSES[i] for i in np.unique(data.labels[g])) for g in groups]
    return pd.Series(sets, dtype=object).value_counts().rename_axis("classes").rename("groups")


def accuracy_ceiling(data: FerData, split: str = "test_all") -> float:
    """Best accuracy any classifier can reach on `split`: identical images get one prediction, so only a group's
    majority label can be right."""
    idx = np.flatnonzero(data.mask(split))
    if len(idx) == 0:
        return float("nan")
    lost = sum(len(g) - np.bincount(data.labels[idx[g]]).max() for g in duplicate_groups(data.images[idx]))
    return 1 - lost / len(idx)


def blank_images(data: FerData, tol: int = 0) -> np.ndarray:
    """Indices of (nearly) constant images: brightest minus darkest pixel <= `tol` grey levels."""
    flat = data.images.reshape(len(data.images), int(np.prod(data.images.shape[1:])))
    return np.flatnonzero(flat.max(axis=1).astype(int) - flat.min(axis=1) <= tol)


def repeated_file_names(data: FerData) -> pd.DataFrame:
    """Files whose name (e.g. `Training_123.jpg`) occurs in more than one class folder; one row per file."""
    by_name: dict[str, list[int]] = defaultdict(list)
    for i, file_id in enumerate(data.file_ids):
        by_name[str(file_id).rsplit("/", 1)[-1]].append(i)
    rows = []
    for name, idx in sorted(by_name.items()):
        if len(np.unique(data.labels[idx])) > 1:
            same = len(set(image_keys(data.images[idx]))) == 1  # is it the same picture, or another?
            rows += [{"file_name": name, "index": i, "file_id": str(data.file_ids[i]), "split": str(data.splits[i]),
                      "class": CLASSES[data.labels[i]], "same_pixels": same} for i in idx]
    return pd.DataFrame(rows, columns=["file_name", "index", "file_id", "split", "class", "same_pixels"])


def _image_moments(images: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per image: mean pixel value and mean squared pixel value (computed in chunks to bound memory)."""
    flat = images.reshape(len(images), int(np.prod(images.shape[1:])))
    means, squares = np.empty(len(flat)), np.empty(len(flat))
    for start in range(0, len(flat), chunk):
        x = flat[start:start + chunk].astype(np.float64)
        means[start:start + chunk] = x.mean(axis=1)
        squares[start:start + chunk] = (x * x).mean(axis=1)
    return means, squares


def pixel_stats(data: FerData, split: str = "train") -> pd.DataFrame:
    """Per class (and all): images, mean and std of pixel values (0-255), mean per-image std (contrast)."""
    m = data.mask(split)
    means, squares = _image_moments(data.images[m])
    labels = data.labels[m]
    rows = {}
    for name, sel in [*((c, labels == i) for i, c in enumerate(CLASSES)), ("all", np.ones(len(labels), bool))]:
        mu, sq = means[sel], squares[sel]
        rows[name] = {"images": int(sel.sum()),
                      "mean": mu.mean() if sel.any() else np.nan,
                      "std": np.sqrt(max(sq.mean() - mu.mean() ** 2, 0)) if sel.any() else np.nan,
                      "contrast": np.sqrt(np.maximum(sq - mu ** 2, 0)).mean() if sel.any() else np.nan}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("class")


def mean_faces(data: FerData, split: str = "train") -> np.ndarray:
    """(7, 48, 48) float array: the average image of each class in `split` (NaN where a class is empty)."""
    m = data.mask(split)
    out = np.full((len(CLASSES), *data.images.shape[1:3]), np.nan)
    for i in range(len(CLASSES)):
        sel = m & (data.labels == i)
        if sel.any():
            out[i] = data.images[sel, ..., 0].mean(axis=0, dtype=np.float64)
    return out


def _caption(data: FerData, i: int) -> str:
    """Short caption of image i: split and class."""
    return f"{data.splits[i]}\n{CLASSES[data.labels[i]]}"


def _empty_figure(title: str) -> plt.Figure:
    """A small figure saying that there is nothing to show."""
    fig, ax = plt.subplots(figsize=(5, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, "none found in this data", ha="center", va="center", fontsize=11)
    ax.set_title(title)
    return fig


def _diverse_first(data: FerData, group: np.ndarray) -> np.ndarray:
    """The group reordered so that the first image of each (split, class) comes first: truncation keeps the variety."""
    seen, first, rest = set(), [], []
    for i in group:
        key = (data.splits[i], data.labels[i])
        (rest if key in seen else first).append(i)
        seen.add(key)
    return np.array(first + rest, dtype=int)


def group_gallery(data: FerData, groups: list[np.ndarray], title: str, max_groups: int = 6,
                  max_per_group: int = 6, row_label: str = "{n} copies") -> plt.Figure:
    """One row per group of images (e.g. duplicates), each face captioned with its split and class."""
    groups = [_diverse_first(data, np.asarray(g)) for g in groups[:max_groups]]
    if not groups:
        return _empty_figure(title)
    cols = min(max(len(g) for g in groups), max_per_group)
    fig, axes = plt.subplots(len(groups), cols, figsize=(max(cols, 3) * 1.25, len(groups) * 1.55 + 0.4),
                             squeeze=False)
    for r, g in enumerate(groups):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c < min(len(g), max_per_group):
                ax.imshow(data.images[g[c], ..., 0], cmap="gray", vmin=0, vmax=255)
                ax.set_title(_caption(data, g[c]), fontsize=7)
            else:
                ax.axis("off")
        shown = "" if len(g) <= max_per_group else f"\n({max_per_group} shown)"
        axes[r, 0].set_ylabel(row_label.format(n=len(g)) + shown, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def image_gallery(data: FerData, indices: np.ndarray, title: str, cols: int = 8, max_images: int = 16) -> plt.Figure:
    """A grid of the given images, each captioned with its split and class."""
    indices = np.asarray(indices)[:max_images]
    if len(indices) == 0:
        return _empty_figure(title)
    cols = min(cols, len(indices))
    rows = int(np.ceil(len(indices) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.25, rows * 1.55 + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, indices):
        ax.imshow(data.images[i, ..., 0], cmap="gray", vmin=0, vmax=255)
        ax.set_title(_caption(data, i), fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig

