"""fer_utils.synthetic: a seeded stand-in for FER2013 with the real loader's structure."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import KAGGLE_CLASSES, PREFIX, TOP_FOLDER

from fer_utils.synthetic import make_synthetic_fer, render_face

REAL_TRAIN_COUNTS = (3995, 436, 4097, 7215, 4965, 4830, 3171)


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_fer(scale=0.1, seed=0)


def test_same_seed_gives_identical_data():
    a, b = make_synthetic_fer(scale=0.01, seed=3), make_synthetic_fer(scale=0.01, seed=3)
    for field in ("images", "labels", "splits", "file_ids"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_different_seed_gives_different_images():
    a, b = make_synthetic_fer(scale=0.01, seed=3), make_synthetic_fer(scale=0.01, seed=4)
    assert a.images.shape == b.images.shape
    assert not np.array_equal(a.images, b.images)


def test_synthetic_arrays_have_the_real_loaders_shapes_and_types(synthetic):
    n = len(synthetic.labels)
    assert synthetic.images.shape == (n, 48, 48, 1) and synthetic.images.dtype == np.uint8
    assert synthetic.labels.shape == (n,) and np.issubdtype(synthetic.labels.dtype, np.integer)
    assert synthetic.labels.min() >= 0 and synthetic.labels.max() <= 6
    assert set(synthetic.splits) == {"train", "val", "test"}
    assert synthetic.synthetic


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_every_split_holds_all_seven_classes(synthetic, split):
    assert set(synthetic.labels[synthetic.mask(split)]) == set(range(7))


def test_synthetic_file_ids_follow_the_kaggle_layout(synthetic):
    for file_id, label, split in zip(synthetic.file_ids, synthetic.labels, synthetic.splits):
        top, cls, name = file_id.split("/")
        assert (top, cls) == (TOP_FOLDER[split], KAGGLE_CLASSES[label]) and name.startswith(PREFIX[split])
    assert len(set(synthetic.file_ids)) == len(synthetic.file_ids)


def test_synthetic_train_counts_keep_fer2013_proportions(synthetic):
    counts = synthetic.counts()["train"]
    assert [counts[c] for c in KAGGLE_CLASSES] == [round(n * 0.1) for n in REAL_TRAIN_COUNTS]


def test_class_mean_images_differ_between_expressions(synthetic):
    """A permutation test: labels explain more image variance than any of 20 random relabellings (p < 1/21)."""
    x, y = synthetic.xy("train")
    x = x[..., 0].astype(np.float64)

    def between_class_scatter(labels):
        grand = x.mean(0)
        return sum((labels == k).sum() * ((x[labels == k].mean(0) - grand) ** 2).sum() for k in range(7))

    rng = np.random.default_rng(0)
    shuffled = [between_class_scatter(rng.permutation(y)) for _ in range(20)]
    assert between_class_scatter(y) > max(shuffled)


def test_expressions_differ_under_the_same_pose_light_and_noise():
    faces = {e: render_face(e, np.random.default_rng(11)) for e in KAGGLE_CLASSES}
    same = [(a, b) for a, b in itertools.combinations(KAGGLE_CLASSES, 2) if np.array_equal(faces[a], faces[b])]
    assert same == []


def test_render_face_is_deterministic_for_a_generator_state():
    np.testing.assert_array_equal(render_face("fear", np.random.default_rng(5)),
                                  render_face("fear", np.random.default_rng(5)))
