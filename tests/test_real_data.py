"""The real FER2013 (Kaggle archive.zip at $FER2013_PATH): sizes documented in shared/data/README.md."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import KAGGLE_CLASSES, REAL_DATA, requires_real_data

from fer_utils.data import read_fer2013

pytestmark = requires_real_data

TRAIN_COUNTS = dict(zip(KAGGLE_CLASSES, (3995, 436, 4097, 7215, 4965, 4830, 3171)))
TEST_ALL_COUNTS = dict(zip(KAGGLE_CLASSES, (958, 111, 1024, 1774, 1233, 1247, 831)))


@pytest.fixture(scope="session")
def real_fer():
    """The whole archive, loaded once per session (about 5 s)."""
    return read_fer2013(REAL_DATA)


@pytest.mark.parametrize("split, size", [("train", 28709), ("test_all", 7178), ("val", 3589), ("test", 3589)])
def test_real_split_size(real_fer, split, size):
    assert real_fer.mask(split).sum() == size


def test_real_train_counts_per_class(real_fer):
    assert real_fer.counts()["train"] == TRAIN_COUNTS


def test_real_test_all_counts_per_class(real_fer):
    assert real_fer.counts()["test_all"] == TEST_ALL_COUNTS


def test_real_images_are_48x48_uint8_and_not_all_blank(real_fer):
    assert real_fer.images.shape == (35887, 48, 48, 1) and real_fer.images.dtype == np.uint8
    every_100th = real_fer.images[::100].astype(np.float32)
    assert every_100th.std(axis=(1, 2, 3)).mean() > 10
