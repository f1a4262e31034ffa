"""FER+ (Microsoft's relabelling of FER2013 by 10 annotators per image): loader, join and agreement statistics.

The votes (`fer2013new.csv`) follow the rows of the original `fer2013.csv`; Kaggle's file names reach them through
the join table `msambare_to_fer2013_row.csv`, by row index (FER+'s own `Image name` numbers drift from the rows).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .config import CLASSES, FERPLUS_ENV_VAR, REPO_ROOT

VOTES_FILE = "fer2013new.csv"
JOIN_FILE = "msambare_to_fer2013_row.csv"
FERPLUS_LABELS: tuple[str, ...] = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                                   "contempt", "unknown", "NF")
"""The 10 vote columns of fer2013new.csv, in its order (NF = not a face)."""
FERPLUS_TO_CLASS = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happiness": "happy",
                    "neutral": "neutral", "sadness": "sad", "surprise": "surprise"}
"""FER+ emotions that are FER2013 classes; contempt, unknown and NF have none."""
JOIN_COLUMNS = ("split", "class", "file", "fer2013_row_index")
SHARED_FERPLUS_DIR = REPO_ROOT.parent / "shared" / "data" / "ferplus"
"""The default location: ../shared/data/ferplus next to the repository."""
NO_MAJORITY = -1
_CSV_ROW = re.compile(r"#row(\d+)$")  # file ids of data read from fer2013.csv: 'fer2013.csv#row123'


@dataclass
class FerPlus:
    """FER+ votes per row of fer2013.csv (`votes`: DataFrame, one column per FERPLUS_LABELS) and the join table
    (`rows`: Kaggle file id 'train/angry/Training_1.jpg' -> 0-based row of `votes`, -1 where FER+ has no row)."""

    votes: pd.DataFrame
    rows: pd.Series
    source: str

    def votes_for(self, file_ids: np.ndarray | list[str]) -> np.ndarray:
        """Votes (N, 10) int, columns FERPLUS_LABELS, for FerData file ids; all zero where FER+ has no row.

        Kaggle ids ('test/happy/PublicTest_1.jpg') go through the join table; ids of data read from fer2013.csv
        ('fer2013.csv#row12') are the row itself. Raises KeyError naming an id found in neither form.
        """
        rows = np.empty(len(file_ids), dtype=np.int64)
        unknown = []
        for i, fid in enumerate(file_ids):
            match = _CSV_ROW.search(str(fid))
            if match:
                rows[i] = int(match.group(1))
            elif fid in self.rows.index:
                rows[i] = self.rows[fid]
            else:
                unknown.append(str(fid))
        if unknown:
            raise KeyError(f"{len(unknown)} file id(s) not in the FER+ join table {self.source}/{JOIN_FILE}, "
                           f"e.g. {unknown[:3]}")
        table = self.votes[list(FERPLUS_LABELS)].to_numpy(dtype=np.int64)
        if (rows >= len(table)).any():
            raise KeyError(f"row index {int(rows.max())} beyond the {len(table)} rows of {self.source}/{VOTES_FILE}")
        out = np.where(rows[:, None] >= 0, table[np.maximum(rows, 0)], 0)
        return out.astype(np.int64)


def resolve_ferplus_path(path: str | os.PathLike | None = None) -> Path | None:
    """Where FER+ is: explicit path > $FERPLUS_PATH > ../shared/data/ferplus (when it exists) > None."""
    if path not in (None, ""):
        return Path(path).expanduser()
    if os.environ.get(FERPLUS_ENV_VAR):
        return Path(os.environ[FERPLUS_ENV_VAR]).expanduser()
    return SHARED_FERPLUS_DIR if SHARED_FERPLUS_DIR.is_dir() else None


def load_ferplus(path: str | os.PathLike | None = None) -> FerPlus:
    """Read fer2013new.csv and msambare_to_fer2013_row.csv from the folder `path` (see resolve_ferplus_path).

    Args:
        path: the folder holding both files; None looks in $FERPLUS_PATH, then ../shared/data/ferplus.
    Returns:
        A FerPlus with the votes per fer2013.csv row and the Kaggle-file-to-row join.
    Raises:
        FileNotFoundError naming the missing folder or file; ValueError naming a file with missing columns.
    """
    folder = resolve_ferplus_path(path)
    if folder is None:
        raise FileNotFoundError(f"no FER+ folder given, {FERPLUS_ENV_VAR} unset and {SHARED_FERPLUS_DIR} absent")
    for name in (VOTES_FILE, JOIN_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: FER+ file not found (expected {VOTES_FILE} and {JOIN_FILE} "
                                    f"in {folder})")
    votes = pd.read_csv(folder / VOTES_FILE)
    missing = [c for c in FERPLUS_LABELS if c not in votes.columns]
    if missing:
        raise ValueError(f"{folder / VOTES_FILE}: missing vote column(s) {', '.join(missing)}")
    join = pd.read_csv(folder / JOIN_FILE, dtype={"fer2013_row_index": "Int64"})
    missing = [c for c in JOIN_COLUMNS if c not in join.columns]
    if missing:
        raise ValueError(f"{folder / JOIN_FILE}: missing column(s) {', '.join(missing)}")
    ids = join["split"] + "/" + join["class"] + "/" + join["file"]
    rows = pd.Series(join["fer2013_row_index"].fillna(NO_MAJORITY).astype(np.int64).to_numpy(), index=ids.to_numpy())
    return FerPlus(votes, rows, str(folder))


def majority(votes: np.ndarray) -> np.ndarray:
    """The FER+ majority as an index into CLASSES, or -1 (NO_MAJORITY) where there is none.

    Args:
        votes: (N, 10) vote counts, columns FERPLUS_LABELS.
    Returns:
        (N,) int: the label with strictly the most votes, mapped to CLASSES; -1 where the top is tied, is
        contempt, unknown or not-a-face, or there are no votes.
    """
    votes = np.asarray(votes)
    top = votes.max(1)
    winner = votes.argmax(1)
    unique = (votes == top[:, None]).sum(1) == 1
    to_class = np.array([CLASSES.index(FERPLUS_TO_CLASS[name]) if name in FERPLUS_TO_CLASS else NO_MAJORITY
                         for name in FERPLUS_LABELS])
    return np.where(unique & (top > 0), to_class[winner], NO_MAJORITY)


def top_votes(votes: np.ndarray) -> np.ndarray:
    """(N,) the number of annotators (of 10) behind the most voted label: how strongly they agree."""
    return np.asarray(votes).max(1)


def disagreement_by_class(labels: np.ndarray, votes: np.ndarray) -> pd.DataFrame:
    """How often the FER+ majority differs from the FER2013 label, per FER2013 class and overall.

    Args:
        labels: (N,) FER2013 labels, indices into CLASSES.
        votes: (N, 10) FER+ votes of the same images.
    Returns:
        One row per class and 'all': images, no majority (tied, contempt, unknown, not a face or no FER+ row),
        with majority, majority differs (count) and differs share (of the images with a majority).
    """
    maj = majority(votes)
    rows = {}
    for name, m in [(c, labels == i) for i, c in enumerate(CLASSES)] + [("all", np.ones(len(labels), bool))]:
        has = m & (maj != NO_MAJORITY)
        differs = int((has & (maj != labels)).sum())
        rows[name] = {"images": int(m.sum()), "no majority": int((m & ~has).sum()), "with majority": int(has.sum()),
                      "majority differs": differs, "differs share": differs / has.sum() if has.any() else np.nan}
    return pd.DataFrame.from_dict(rows, orient="index")


def accuracy_against_ferplus(predicted: np.ndarray, labels: np.ndarray, votes: np.ndarray,
                             min_top_votes: int = 0) -> dict[str, float]:
    """A model's accuracy against the FER2013 labels and against the FER+ majority, on the same images.

    Args:
        predicted: (N,) the model's classes; labels: (N,) FER2013 labels; votes: (N, 10) FER+ votes.
        min_top_votes: keep only images whose majority has at least this many of the 10 votes (7: strong agreement).
    Returns:
        n (images with a FER+ majority and enough votes), accuracy vs FER2013, accuracy vs FER+, mistakes (predicted
        != FER2013 label), mistakes FER+ agrees with (predicted == FER+ majority) and their share of the mistakes.
    """
    maj = majority(votes)
    keep = (maj != NO_MAJORITY) & (top_votes(votes) >= min_top_votes)
    p, y, f = predicted[keep], labels[keep], maj[keep]
    wrong = p != y
    n = int(keep.sum())
    return {"n": n, "accuracy_fer2013": float((p == y).mean()) if n else np.nan,
            "accuracy_ferplus": float((p == f).mean()) if n else np.nan, "mistakes": int(wrong.sum()),
            "mistakes_ferplus_agrees": int((wrong & (p == f)).sum()),
            "mistakes_ferplus_agrees_share": float((p[wrong] == f[wrong]).mean()) if wrong.any() else np.nan}
