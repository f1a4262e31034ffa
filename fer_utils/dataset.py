"""FerData: a FER2013-like data set in memory (images, labels, splits and where each image came from).

The loaders (`data`) and the synthetic stand-in (`synthetic`) both return one; the rest of the package reads it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .config import CLASSES, SPLITS


@dataclass
class FerData:
    """Images (N, 48, 48, 1) uint8, labels (N,) indices into CLASSES, and where each came from."""

    images: np.ndarray
    labels: np.ndarray
    file_ids: np.ndarray
    splits: np.ndarray
    source: str
    synthetic: bool = False

    def mask(self, split: str) -> np.ndarray:
        """Boolean mask of a split: train, val, test, or test_all (= val + test)."""
        if split == "test_all":
            return np.isin(self.splits, ("val", "test"))
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: expected one of {(*SPLITS, 'test_all')}")
        return self.splits == split

    def xy(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of one split."""
        m = self.mask(split)
        return self.images[m], self.labels[m]

    def select(self, mask: np.ndarray) -> FerData:
        """A new FerData holding only the rows where `mask` is true."""
        return FerData(self.images[mask], self.labels[mask], self.file_ids[mask], self.splits[mask],
                       self.source, self.synthetic)

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the images, labels and splits, in order: equal exactly when the same images, labelled and
        split the same way, come in the same order (whatever the source's path or form)."""
        digest = hashlib.sha256()
        for array in (self.images, self.labels, self.splits):
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of images per split and class (test_all included)."""
        out = {}
        for split in (*SPLITS, "test_all"):
            y = self.labels[self.mask(split)]
            out[split] = {c: int((y == i).sum()) for i, c in enumerate(CLASSES)}
        return out
