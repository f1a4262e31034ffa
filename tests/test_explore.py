"""fer_utils.explore finds planted defects (duplicates, leakage, conflicts, blanks, repeated names) in tiny FerData."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fer_utils.config import CLASSES
from fer_utils.dataset import FerData
from fer_utils import explore

ANGRY, DISGUST, FEAR, HAPPY = (CLASSES.index(c) for c in ("angry", "disgust", "fear", "happy"))
PREFIX = {"train": ("train", "Training_"), "val": ("test", "PublicTest_"), "test": ("test", "PrivateTest_")}


def face(seed: int) -> np.ndarray:
    """A distinct random 48x48 uint8 image."""
    return np.random.default_rng(seed).integers(0, 256, (48, 48), dtype=np.uint8)


def make_data(rows: list[tuple[np.ndarray, int, str]], names: list[str] | None = None) -> FerData:
    """FerData from (image, label, split) rows; file ids like `train/angry/Training_<row>.jpg`."""
    ids = []
    for k, (_, label, split) in enumerate(rows):
        top, prefix = PREFIX[split]
        ids.append(f"{top}/{CLASSES[label]}/{names[k] if names else f'{prefix}{k}.jpg'}")
    return FerData(np.stack([r[0] for r in rows])[..., None], np.array([r[1] for r in rows], dtype=np.int64),
                   np.array(ids), np.array([r[2] for r in rows]), source="test fixture")


@pytest.fixture
def planted() -> FerData:
    """0-1: a duplicate pair in train; 2 (train) = 3 (val) = 4 (test): leaked; 5 (train) = 6 (val), other label;
    7, 8: one-off images; 9: blank (all 0), 10: grey with 3 levels of noise."""
    a, b, c, d = face(1), face(2), face(3), face(4)
    noisy_grey = np.full((48, 48), 128, np.uint8)
    noisy_grey[0, :3] = (127, 129, 130)
    return make_data([
        (a, HAPPY, "train"), (a.copy(), HAPPY, "train"),
        (b, ANGRY, "train"), (b.copy(), ANGRY, "val"), (b.copy(), ANGRY, "test"),
        (c, FEAR, "train"), (c.copy(), DISGUST, "val"),
        (d, FEAR, "train"), (face(5), FEAR, "test"),
        (np.zeros((48, 48), np.uint8), HAPPY, "train"), (noisy_grey, ANGRY, "test"),
    ])


def as_sets(groups):
    return sorted(tuple(int(i) for i in g) for g in groups)


def test_duplicate_groups_are_exactly_the_identical_images(planted):
    assert as_sets(explore.duplicate_groups(planted.images)) == [(0, 1), (2, 3, 4), (5, 6)]


def test_images_differing_in_one_pixel_are_not_duplicates():
    a = face(7)
    b = a.copy()
    b[10, 10] ^= 1
    assert explore.duplicate_groups(np.stack([a, b])) == []


def test_no_duplicates_gives_empty_list_and_zero_redundant_copies():
    data = make_data([(face(i), HAPPY, "train") for i in range(4)])
    assert explore.duplicate_groups(data.images) == []
    assert explore.redundant_copies([]) == 0


def test_split_duplicate_groups_index_into_the_whole_data(planted):
    # within train only 0-1 are duplicated; 2 is duplicated only across splits
    assert as_sets(explore.split_duplicate_groups(planted, "train")) == [(0, 1)]
    assert as_sets(explore.split_duplicate_groups(planted, "test_all")) == [(3, 4)]


def test_redundant_copies_counts_all_but_one_per_group():
    assert explore.redundant_copies([np.array([0, 1]), np.array([2, 3, 4])]) == 3


def test_leakage_table_counts_eval_images_with_a_copy_in_train(planted):
    table = explore.leakage_table(planted)
    assert table.loc["val", "images"] == 2 and table.loc["test", "images"] == 3
    assert table.loc["val", "copy_in_train"] == 2  # rows 3 and 6
    assert table.loc["test", "copy_in_train"] == 1  # row 4
    assert table.loc["test_all", "copy_in_train"] == 3
    assert table.loc["val", "train_copy_same_label"] == 1  # row 6's train copy is fear, it is disgust
    assert table.loc["test", "copy_in_train_pct"] == pytest.approx(100 / 3)


def test_val_test_duplicates_without_train_copy_are_not_leakage():
    a = face(1)
    data = make_data([(face(2), HAPPY, "train"), (a, HAPPY, "val"), (a.copy(), HAPPY, "test")])
    assert explore.leakage_table(data)["copy_in_train"].sum() == 0
    assert explore.leaked_groups(data) == []


def test_conflicting_label_groups_keep_only_groups_with_two_classes(planted):
    conflicts = explore.conflicting_label_groups(planted)
    assert as_sets(conflicts) == [(5, 6)]
    assert explore.conflict_class_sets(planted, conflicts).to_dict() == {"disgust / fear": 1}


def test_accuracy_ceiling_allows_only_the_majority_label_of_identical_images():
    a = face(1)
    rows = [(a, HAPPY, "test"), (a.copy(), HAPPY, "test"), (a.copy(), FEAR, "test"), (face(2), ANGRY, "test")]
    data = make_data(rows + [(face(3), ANGRY, "train")])
    assert explore.accuracy_ceiling(data, "test") == pytest.approx(3 / 4)
    assert explore.accuracy_ceiling(data, "train") == 1.0


def test_blank_images_tolerance_counts_grey_levels(planted):
    assert explore.blank_images(planted).tolist() == [9]
    assert explore.blank_images(planted, tol=3).tolist() == [9, 10]
    assert explore.blank_images(planted, tol=2).tolist() == [9]


def test_repeated_file_names_found_across_class_folders_and_compared_by_pixels():
    a = face(1)
    rows = [(a, ANGRY, "train"), (face(2), HAPPY, "train"), (a.copy(), FEAR, "train"), (a.copy(), HAPPY, "train"),
            (face(3), HAPPY, "train")]
    names = ["Training_1.jpg", "Training_1.jpg", "Training_2.jpg", "Training_2.jpg", "Training_3.jpg"]
    table = explore.repeated_file_names(make_data(rows, names))
    assert table["index"].tolist() == [0, 1, 2, 3]
    assert table.groupby("file_name")["same_pixels"].first().to_dict() == {"Training_1.jpg": False,
                                                                            "Training_2.jpg": True}
    assert set(table["class"]) == {"angry", "happy", "fear"}


def test_unique_file_names_give_an_empty_table(planted):
    table = explore.repeated_file_names(planted)
    assert table.empty and "file_id" in table.columns


def test_pixel_stats_per_class_match_numpy():
    img0 = np.full((48, 48), 10, np.uint8)
    img1 = np.full((48, 48), 30, np.uint8)
    img2 = np.tile(np.array([0, 200], np.uint8), (48, 24))
    data = make_data([(img0, ANGRY, "train"), (img1, ANGRY, "train"), (img2, HAPPY, "train"),
                      (face(9), FEAR, "test")])
    stats = explore.pixel_stats(data, "train")
    assert stats.loc["angry", "images"] == 2
    assert stats.loc["angry", "mean"] == pytest.approx(20)
    assert stats.loc["angry", "std"] == pytest.approx(10)
    assert stats.loc["angry", "contrast"] == pytest.approx(0)  # each image is flat
    assert stats.loc["happy", "contrast"] == pytest.approx(100)
    assert np.isnan(stats.loc["fear", "mean"])  # fear has no train image
    assert stats.loc["all", "images"] == 3
    assert stats.loc["all", "mean"] == pytest.approx(np.stack([img0, img1, img2]).mean())


def test_mean_faces_average_each_class_and_leave_empty_classes_nan():
    data = make_data([(np.full((48, 48), 10, np.uint8), ANGRY, "train"),
                      (np.full((48, 48), 30, np.uint8), ANGRY, "train")])
    faces = explore.mean_faces(data)
    assert faces.shape == (len(CLASSES), 48, 48)
    assert np.allclose(faces[ANGRY], 20)
    assert np.isnan(faces[HAPPY]).all()


def test_galleries_draw_one_row_per_group_and_survive_empty_input(planted):
    fig = explore.group_gallery(planted, explore.duplicate_groups(planted.images), "dups")
    assert len(fig.axes) == 3 * 3  # 3 groups, widest has 3 images
    empty = explore.group_gallery(planted, [], "none")
    assert "none found" in empty.axes[0].texts[0].get_text()
    assert len(explore.image_gallery(planted, np.array([], int), "blank").axes) == 1
    plt.close("all")


def test_group_gallery_shows_every_label_of_a_large_group_first():
    blank = np.zeros((48, 48), np.uint8)
    data = make_data([(blank, ANGRY, "train")] * 7 + [(blank, HAPPY, "train")])
    fig = explore.group_gallery(data, explore.duplicate_groups(data.images), "conflict", max_per_group=6)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 6 and any("happy" in t for t in titles)
    assert "8 copies" in fig.axes[0].get_ylabel() and "6 shown" in fig.axes[0].get_ylabel()
    plt.close("all")
