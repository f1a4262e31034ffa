"""Shared fixtures: a tiny FER2013 written in each of the three forms the loader accepts.

The fixture set is built from deterministic synthetic faces (seeded), so every test sees the
same bytes. Expected values (class order, csv codes, file-name prefixes) are written out here
independently of fer_utils.config, so a wrong constant in the package cannot agree with itself.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_utils.synthetic import render_face

# The Kaggle folder order, which is the package's label order.
KAGGLE_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
# fer2013.csv numbers the emotions differently (see shared/data/README.md).
CSV_CODE = {"angry": 0, "disgust": 1, "fear": 2, "happy": 3, "sad": 4, "surprise": 5, "neutral": 6}
PREFIX = {"train": "Training_", "val": "PublicTest_", "test": "PrivateTest_"}
USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
TOP_FOLDER = {"train": "train", "val": "test", "test": "test"}

# Images per class in each split of the fixture set. Keep val/test <= 3 per class: the CLI
# test trains with --subset 3 and evaluates without it, on the same test split.
PER_SPLIT = {"train": 4, "val": 2, "test": 2}


@dataclass(frozen=True)
class Record:
    """One image of the fixture set and where it belongs."""

    split: str
    cls: str
    name: str
    image: np.ndarray  # (48, 48) uint8, the exact pixels (the JPEGs are a lossy copy)

    @property
    def rel(self) -> str:
        """Path inside the Kaggle layout, e.g. test/happy/PublicTest_00012.jpg."""
        return f"{TOP_FOLDER[self.split]}/{self.cls}/{self.name}"


def make_records(per_split: dict[str, int] = PER_SPLIT, seed: int = 0) -> list[Record]:
    """Deterministic faces: `per_split[split]` images of every class, each with a unique file id."""
    rng = np.random.default_rng(seed)
    records = []
    for split, k in per_split.items():
        for cls in KAGGLE_CLASSES:
            for _ in range(k):
                file_id = 10000 + len(records)
                records.append(Record(split, cls, f"{PREFIX[split]}{file_id}.jpg", render_face(cls, rng)))
    return records


def image_bytes(image: np.ndarray, fmt: str = "JPEG", mode: str = "L") -> bytes:
    """Encode a 2-D uint8 array as an image file (grayscale JPEG by default)."""
    buf = io.BytesIO()
    Image.fromarray(image, mode="L").convert(mode).save(buf, format=fmt, quality=95)
    return buf.getvalue()


def write_folder(root: Path, records: list[Record]) -> Path:
    """The extracted Kaggle layout: root/train/<class>/Training_<id>.jpg, root/test/<class>/...jpg."""
    for r in records:
        target = root / r.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(image_bytes(r.image))
    return root


def zip_folder(folder: Path, zip_path: Path, wrapper: str = "") -> Path:
    """Zip a Kaggle-layout folder with entries train/... and test/... (or wrapper/train/...)."""
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, wrapper + p.relative_to(folder).as_posix())
    return zip_path


def write_csv(path: Path, rows: list[dict[str, object]], columns=("emotion", "pixels", "Usage")) -> Path:
    """A fer2013.csv from dict rows (only `columns` are written)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def csv_row(record: Record) -> dict[str, object]:
    """The fer2013.csv row of one record (its own emotion code, pixels and Usage)."""
    return {"emotion": CSV_CODE[record.cls], "pixels": " ".join(map(str, record.image.ravel())),
            "Usage": USAGE[record.split]}


def expected_counts(records: list[Record]) -> dict[str, dict[str, int]]:
    """Images per split and class (test_all = val + test), counted from the records."""
    out = {s: {c: 0 for c in KAGGLE_CLASSES} for s in ("train", "val", "test", "test_all")}
    for r in records:
        out[r.split][r.cls] += 1
        if r.split != "train":
            out["test_all"][r.cls] += 1
    return out


@dataclass(frozen=True)
class FerFiles:
    """The same tiny FER2013 as a folder tree, a zip and a csv."""

    records: list[Record]
    folder: Path
    zip: Path
    csv: Path


@pytest.fixture(scope="session")
def fer_records() -> list[Record]:
    return make_records()


@pytest.fixture(scope="session")
def fer_files(tmp_path_factory, fer_records) -> FerFiles:
    """Read-only: do not modify these files (use `fer_tree` for a private copy)."""
    root = tmp_path_factory.mktemp("fer")
    folder = write_folder(root / "folder", fer_records)
    archive = zip_folder(folder, root / "archive.zip")
    table = write_csv(root / "fer2013.csv", [csv_row(r) for r in fer_records])
    return FerFiles(fer_records, folder, archive, table)


@pytest.fixture
def fer_tree(tmp_path, fer_files) -> Path:
    """A private, modifiable copy of the fixture folder tree."""
    return Path(shutil.copytree(fer_files.folder, tmp_path / "tree"))


@pytest.fixture
def no_data_anywhere(monkeypatch, tmp_path) -> Path:
    """No $FER2013_PATH and an empty repo data/ folder (returned), so nothing real is found."""
    monkeypatch.delenv("FER2013_PATH", raising=False)
    empty = tmp_path / "repo_data"
    empty.mkdir()
    monkeypatch.setattr("fer_utils.data.REPO_DATA_DIR", empty)
    return empty


@pytest.fixture(scope="session")
def tiny_synthetic():
    """A synthetic set small enough to train on in a test: at most 4 images per class and split.

    Three test images are dropped so that val, test and test_all all have different sizes.
    """
    from fer_utils.data import subsample
    from fer_utils.synthetic import make_synthetic_fer

    data = subsample(make_synthetic_fer(scale=0.02, seed=0), per_class=4, seed=0)
    keep = np.ones(len(data.labels), dtype=bool)
    keep[np.flatnonzero(data.splits == "test")[:3]] = False
    return data.select(keep)


REAL_DATA = os.environ.get("FER2013_PATH")
requires_real_data = pytest.mark.skipif(
    not REAL_DATA, reason="FER2013_PATH is not set (point it at the Kaggle archive.zip to check the real data set)")


def sigint_after_epoch(epoch: int):
    """A Keras callback that sends this process SIGINT (Ctrl-C) at the end of epoch `epoch` (1-based): an interrupted
    run, in process. Keras is imported here, not at the top, so tests that never train do not pay for it."""
    import keras

    class SigintAfterEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, done, logs=None):
            if done + 1 == epoch:
                os.kill(os.getpid(), signal.SIGINT)

    return SigintAfterEpoch()


def pytest_configure(config):
    # TensorFlow's tensors call np.array(x) without a `copy` keyword: NumPy 2 warns once per call, from
    # inside Keras, on every predict. Not ours to fix and it drowns the summary; silence only that one.
    config.addinivalue_line(
        "filterwarnings", "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


# --- `make test-fast` trains nothing: a test that is not marked slow cannot call keras.Model.fit ------------


def _refuse_fit(nodeid: str):
    def fit(*args, **kwargs):
        pytest.fail(f"{nodeid} trains a model (keras.Model.fit) but is not marked slow: mark it "
                    "@pytest.mark.slow, so that `make test-fast` (pytest -m 'not slow') trains nothing", pytrace=False)

    return fit


@contextlib.contextmanager
def _fit_refused_unless_slow(item):
    """While a test that is not marked slow sets up or runs (fixtures included), keras.Model.fit fails the test.

    Every training path of the package (train, the CLI, the notebooks' cells) ends in keras.Model.fit; notebooks
    and CLI runs in a subprocess start a kernel or a Python and are slow by construction. pytest.fail raises a
    BaseException, which no `except Exception` in the code under test can swallow.
    """
    if item.get_closest_marker("slow"):
        yield
        return
    import keras

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(keras.Model, "fit", _refuse_fit(item.nodeid))
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with _fit_refused_unless_slow(item):  # a module- or session-scoped fixture is set up here, for its first test
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with _fit_refused_unless_slow(item):
        yield
