"""fer_utils.ferplus: FER+ votes joined to Kaggle files by row index, and the agreement numbers, on a tiny fixture."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import KAGGLE_CLASSES

from fer_utils import ferplus

VOTE_COLUMNS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"]
# (Usage, Image name, votes). The names drift from the row index after row 1, as FER+'s do after row 59, and the
# not-a-face row has no name.
VOTE_ROWS = [
    ("PublicTest", "fer0000000.png", dict(happiness=8, neutral=2)),  # row 0: happy, 8 votes
    ("Training", "", dict(NF=10)),  # row 1: not a face
    ("PublicTest", "fer0000001.png", dict(sadness=4, neutral=4, anger=2)),  # row 2: tie, no majority
    ("PrivateTest", "fer0000002.png", dict(surprise=6, fear=3, unknown=1)),  # row 3: surprise, 6 votes
    ("PublicTest", "fer0000003.png", dict(contempt=5, anger=3, disgust=2)),  # row 4: contempt, no FER2013 class
    ("PrivateTest", "fer0000004.png", dict(anger=10)),  # row 5: angry, 10 votes
]
# Kaggle file -> (FER+ image name as the join table records it, row index); None: FER+ has no row.
JOIN = {
    "test/happy/PublicTest_1.jpg": ("fer0000000.png", 0),
    "test/fear/PrivateTest_2.jpg": ("fer0000002.png", 3),  # name number 2, but row 3: join by row, never by name
    "test/sad/PublicTest_3.jpg": ("fer0000001.png", 2),
    "test/angry/PrivateTest_4.jpg": ("fer0000004.png", 5),
    "test/disgust/PublicTest_5.jpg": ("fer0000003.png", 4),
    "test/neutral/PublicTest_6.jpg": None,
    "train/happy/Training_7.jpg": ("", 1),
}
TEST_IDS = [fid for fid in JOIN if fid.startswith("test/")]
LABELS = np.array([KAGGLE_CLASSES.index(fid.split("/")[1]) for fid in TEST_IDS])  # happy fear sad angry disgust neutral


def write_ferplus(folder: Path, votes: bool = True, join: bool = True) -> Path:
    """The two FER+ files for VOTE_ROWS and JOIN in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    if votes:
        with open(folder / "fer2013new.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["Usage", "Image name", *VOTE_COLUMNS])
            for usage, name, v in VOTE_ROWS:
                w.writerow([usage, name, *(v.get(c, 0) for c in VOTE_COLUMNS)])
    if join:
        with open(folder / "msambare_to_fer2013_row.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["split", "class", "file", "ferplus_image", "fer2013_row_index", "mean_abs_pixel_diff",
                        "n_candidate_matches"])
            for fid, match in JOIN.items():
                split, cls, file = fid.split("/")
                name, row = match if match else ("", "")
                w.writerow([split, cls, file, name, row, 1.3 if match else 40.0, 1 if match else ""])
    return folder


@pytest.fixture
def fp(tmp_path) -> ferplus.FerPlus:
    return ferplus.load_ferplus(write_ferplus(tmp_path / "ferplus"))


def test_votes_are_joined_by_row_index_even_where_the_image_name_drifts(fp):
    votes = fp.votes_for(["test/fear/PrivateTest_2.jpg"])[0]
    assert dict(zip(VOTE_COLUMNS, votes)) == {**dict.fromkeys(VOTE_COLUMNS, 0), "surprise": 6, "fear": 3, "unknown": 1}


def test_a_file_without_a_ferplus_row_gets_no_votes_and_no_majority(fp):
    votes = fp.votes_for(["test/neutral/PublicTest_6.jpg"])
    assert votes.sum() == 0 and ferplus.majority(votes)[0] == ferplus.NO_MAJORITY


def test_ids_of_data_read_from_fer2013_csv_are_their_own_row(fp):
    assert (fp.votes_for(["fer2013.csv#row5"]) == fp.votes_for(["test/angry/PrivateTest_4.jpg"])).all()


def test_an_unknown_file_id_is_named_in_the_error(fp):
    with pytest.raises(KeyError, match="Training_999.jpg"):
        fp.votes_for(["train/sad/Training_999.jpg"])


def test_majority_maps_to_fer2013_classes_and_has_none_for_ties_contempt_and_not_a_face(fp):
    votes = fp.votes_for(TEST_IDS + ["train/happy/Training_7.jpg"])
    expected = ["happy", "surprise", None, "angry", None, None, None]
    assert [KAGGLE_CLASSES[m] if m >= 0 else None for m in ferplus.majority(votes)] == expected
    assert list(ferplus.top_votes(votes)) == [8, 6, 4, 10, 5, 0, 10]


def test_disagreement_per_class_counts_only_images_with_a_majority(fp):
    table = ferplus.disagreement_by_class(LABELS, fp.votes_for(TEST_IDS))
    assert table.loc["all"].to_dict() == {"images": 6, "no majority": 3, "with majority": 3, "majority differs": 1,
                                          "differs share": pytest.approx(1 / 3)}
    assert table.loc["fear", "differs share"] == 1.0  # FER2013 fear, FER+ surprise
    assert table.loc["happy", "differs share"] == 0.0
    assert np.isnan(table.loc["sad", "differs share"])  # its only image is a tie


def test_accuracy_against_both_labels_and_the_mistakes_ferplus_agrees_with(fp):
    votes = fp.votes_for(TEST_IDS)
    predicted = np.array([KAGGLE_CLASSES.index(c) for c in ("happy", "surprise", "sad", "fear", "disgust", "neutral")])
    # Images with a majority: happy (right for both), fear/surprise (wrong for FER2013, right for FER+),
    # angry/fear (wrong for both).
    assert ferplus.accuracy_against_ferplus(predicted, LABELS, votes) == {
        "n": 3, "accuracy_fer2013": pytest.approx(1 / 3), "accuracy_ferplus": pytest.approx(2 / 3), "mistakes": 2,
        "mistakes_ferplus_agrees": 1, "mistakes_ferplus_agrees_share": 0.5}
    strong = ferplus.accuracy_against_ferplus(predicted, LABELS, votes, min_top_votes=7)  # drops the 6-vote image
    assert (strong["n"], strong["accuracy_fer2013"], strong["accuracy_ferplus"], strong["mistakes_ferplus_agrees"]) \
        == (2, 0.5, 0.5, 0)


@pytest.mark.parametrize("missing", ["fer2013new.csv", "msambare_to_fer2013_row.csv"])
def test_a_missing_ferplus_file_is_named_in_the_error(tmp_path, missing):
    folder = write_ferplus(tmp_path / "fp", votes=missing != "fer2013new.csv",
                           join=missing != "msambare_to_fer2013_row.csv")
    with pytest.raises(FileNotFoundError, match=str(folder / missing)):
        ferplus.load_ferplus(folder)


def test_the_environment_variable_is_used_and_an_explicit_path_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("FERPLUS_PATH", str(tmp_path / "from_env"))
    assert ferplus.resolve_ferplus_path() == tmp_path / "from_env"
    assert ferplus.resolve_ferplus_path(tmp_path / "explicit") == tmp_path / "explicit"


REAL = ferplus.resolve_ferplus_path()
requires_real_ferplus = pytest.mark.skipif(
    REAL is None or not (REAL / "fer2013new.csv").is_file(),
    reason="FER+ not found: set FERPLUS_PATH to the folder with fer2013new.csv and msambare_to_fer2013_row.csv "
           "(default ../shared/data/ferplus)")


@requires_real_ferplus
def test_real_ferplus_join_covers_every_kaggle_file_and_agrees_as_documented():
    """shared/data/README.md: 175 files without a row; majority = Kaggle class for ~63%, ~91% where all 10 agree."""
    fp = ferplus.load_ferplus(REAL)
    assert len(fp.rows) == 35_887 and int((fp.rows < 0).sum()) == 175
    ids = fp.rows.index.to_numpy()
    labels = np.array([KAGGLE_CLASSES.index(fid.split("/")[1]) for fid in ids])
    votes = fp.votes_for(ids)
    has_row = fp.rows.to_numpy() >= 0
    to_class = np.array([KAGGLE_CLASSES.index(ferplus.FERPLUS_TO_CLASS[c]) if c in ferplus.FERPLUS_TO_CLASS else -1
                         for c in VOTE_COLUMNS])
    plain_argmax = to_class[votes.argmax(1)]  # ties go to the first column, as a plain argmax does
    assert 0.61 < (plain_argmax == labels)[has_row].mean() < 0.65
    unanimous = ferplus.top_votes(votes) == 10
    assert 0.89 < (ferplus.majority(votes) == labels)[unanimous].mean() < 0.93
