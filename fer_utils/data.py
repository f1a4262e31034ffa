"""Load FER2013 into numpy arrays from any of the three forms users have.

Kaggle's `archive.zip` (read in place), its extracted `train/` and `test/` folders, or the
challenge's `fer2013.csv`; every bad file is named in a `DataError`, nothing is dropped. What operating systems leave
in folders and archives (.DS_Store and other dotfiles, __MACOSX/, Thumbs.db) is not data and is passed over.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from .config import CLASSES, CSV_LABELS, DATA_ENV_VAR, IMAGE_SIZE, PREFIX_TO_SPLIT, REPO_ROOT, SPLITS, USAGE_TO_SPLIT
from .dataset import FerData
from .synthetic import make_synthetic_fer

REPO_DATA_DIR = REPO_ROOT / "data"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SYSTEM_FILES = ("thumbs.db", "desktop.ini")
"""Files Windows writes into folders of pictures (compared lower-case); never data."""
SYNTHETIC = "synthetic"
CSV_COLUMNS = ("emotion", "pixels", "Usage")
NO_DATA_MESSAGE = (
    "No FER2013 found: using the SYNTHETIC face data set instead. Results are NOT FER2013 results.\n"
    "To use the real data, download Kaggle's msambare/fer2013 (archive.zip) and either pass its path "
    f"(--data PATH / data_path=...), set {DATA_ENV_VAR}=/path/to/archive.zip, or put it in data/."
)


class DataError(ValueError):
    """The data cannot be used; `problems` lists every problem found, each naming its file."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} problem(s) in the data:\n  {shown}{more}")


def resolve_data_path(path: str | os.PathLike | None = None) -> Path | None:
    """Where the data comes from: explicit path > $FER2013_PATH > data/ in the repo > None (synthetic).

    The path "synthetic" asks for the synthetic stand-in whatever else is present.
    """
    if path == SYNTHETIC:
        return None
    if path not in (None, ""):
        return Path(path).expanduser()
    if os.environ.get(DATA_ENV_VAR):
        return Path(os.environ[DATA_ENV_VAR]).expanduser()
    for candidate in (REPO_DATA_DIR / "archive.zip", REPO_DATA_DIR / "fer2013.csv", REPO_DATA_DIR):
        if candidate.is_file() or (candidate.is_dir() and (candidate / "train").is_dir()):
            return candidate
    return None


def load_data(path: str | os.PathLike | None = None, per_class: int | None = None, seed: int = 0,
              synthetic_fallback: bool = True, quiet: bool = False) -> FerData:
    """Load FER2013 (zip, folders or csv), or the synthetic set, loudly, when none is found (or path="synthetic").

    `per_class` keeps at most that many images per class in each split (stratified, seeded). `quiet=True` leaves
    the synthetic-data announcement to the caller (the notebooks print `describe(data)`, once).
    """
    resolved = resolve_data_path(path)
    if resolved is None:
        if not synthetic_fallback:
            raise DataError([no_data_found(path)])
        if not quiet:
            message = synthetic_banner(path)
            warnings.warn(message, stacklevel=2)
            print(message, file=sys.stderr)
        return subsample(make_synthetic_fer(seed=seed), per_class, seed)
    return read_fer2013(resolved, per_class=per_class, seed=seed)


def no_data_found(path: str | os.PathLike | None = None) -> str:
    """One line: no FER2013 was found (or the synthetic set was asked for), where the loader looked, how to give it."""
    if path == SYNTHETIC:
        return "the synthetic stand-in was asked for (synthetic), not FER2013: pass the path of FER2013 instead"
    where = ", ".join(str(c) for c in (REPO_DATA_DIR / "archive.zip", REPO_DATA_DIR / "fer2013.csv",
                                       REPO_DATA_DIR / "train"))
    return (f"no FER2013 found: no data path given, {DATA_ENV_VAR} unset, and none of {where} exists; pass the path "
            f"of Kaggle's archive.zip, its extracted folder or fer2013.csv (--data PATH), or set {DATA_ENV_VAR}")


def synthetic_banner(path: str | os.PathLike | None) -> str:
    """The loud notice that the synthetic stand-in is in use (asked for, or because no FER2013 was found)."""
    message = "Synthetic data requested: NOT FER2013." if path == SYNTHETIC else NO_DATA_MESSAGE
    return "!" * 72 + "\n" + message + "\n" + "!" * 72


def read_fer2013(path: Path, per_class: int | None = None, seed: int = 0) -> FerData:
    """Read one of the three FER2013 forms at `path`; raise DataError listing every problem."""
    path = Path(path)
    if not path.exists():
        raise DataError([f"{path}: path does not exist"])
    if path.is_dir() and (path / "fer2013.csv").is_file() and not (path / "train").exists():
        path = path / "fer2013.csv"
    if path.is_file() and path.suffix.lower() == ".csv":
        data = _read_csv(path)
        return subsample(data, per_class, seed)
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/") and not is_system_file(n)]
            return _read_image_tree(path, names, zf.read, per_class, seed)
    if path.is_dir():
        names = sorted(rel for rel in (p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
                       if not is_system_file(rel))
        return _read_image_tree(path, names, lambda n: (path / n).read_bytes(), per_class, seed)
    raise DataError([f"{path}: not a zip archive, a folder with train/ and test/, or a .csv file"])


def is_system_file(name: str) -> bool:
    """Whether a path in a data folder or zip (`a/b/c`, relative) is something an operating system left there.

    Args:
        name: the path, with / separators.

    Returns:
        True for hidden files and folders (.DS_Store, macOS's ._* copies, .ipynb_checkpoints/...), macOS's __MACOSX/
        folder in zips, and Windows' Thumbs.db and desktop.ini.
    """
    parts = name.split("/")
    hidden = any(part.startswith(".") and part not in (".", "..") or part == "__MACOSX" for part in parts)
    return hidden or parts[-1].lower() in SYSTEM_FILES


def _read_image_tree(root: Path, names: list[str], read: Callable[[str], bytes],
                     per_class: int | None, seed: int) -> FerData:
    """Parse `<split>/<class>/<file>` entries (zip or folder), decode them, validate them."""
    problems: list[str] = []
    names = _strip_wrapper_folder(names)
    entries = []  # (full name, split, label)
    for full, rel in names:
        parts = rel.split("/")
        if len(parts) != 3 or parts[0] not in ("train", "test"):
            problems.append(f"{root}:{full}: not of the form train|test/<class>/<image>")
            continue
        top, cls, fname = parts
        if cls not in CLASSES:
            problems.append(f"{root}:{full}: unknown class folder {cls!r} (expected one of {', '.join(CLASSES)})")
            continue
        if not fname.lower().endswith(IMAGE_SUFFIXES):
            problems.append(f"{root}:{full}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
            continue
        split = _split_from_name(top, fname)
        if split is None:
            problems.append(f"{root}:{full}: file name starts with neither PublicTest_ nor PrivateTest_, "
                            "so its split cannot be told")
            continue
        entries.append((full, rel, split, CLASSES.index(cls)))
    for top in ("train", "test"):
        present = {e[1].split("/")[1] for e in entries if e[1].startswith(top + "/")}
        if not any(rel.startswith(top + "/") for _, rel in names):
            problems.append(f"{root}: no {top}/ folder")
        else:
            problems += [f"{root}: missing class folder {top}/{c}" for c in CLASSES if c not in present]
    # No raise yet: the well-placed files are still decoded, so one DataError names every bad file.
    entries.sort(key=lambda e: (SPLITS.index(e[2]), e[3], e[1]))
    splits = np.array([e[2] for e in entries])
    labels = np.array([e[3] for e in entries], dtype=np.int64)
    keep = _subsample_indices(splits, labels, per_class, seed)
    images = np.empty((len(keep), IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8)
    for out_i, i in enumerate(keep):
        full = entries[i][0]
        try:
            images[out_i, ..., 0] = decode_image(read(full))
        except ValueError as err:
            problems.append(f"{root}:{full}: {err}")
    if problems:
        raise DataError(problems)
    ids = np.array([entries[i][1] for i in keep])
    return FerData(images, labels[keep], ids, splits[keep], str(root))


def _strip_wrapper_folder(names: list[str]) -> list[tuple[str, str]]:
    """Pair each name with its path below an optional single wrapper folder (`fer2013/train/...`)."""
    tops = {n.split("/")[0] for n in names}
    if len(tops) == 1 and not tops & {"train", "test"}:
        (top,) = tops
        return [(n, n[len(top) + 1:]) for n in names]
    return [(n, n) for n in names]


def _split_from_name(top: str, fname: str) -> str | None:
    """train/ is the train split; in test/, the PublicTest_/PrivateTest_ prefix tells val from test."""
    if top == "train":
        return "train"
    for prefix, split in PREFIX_TO_SPLIT.items():
        if fname.startswith(prefix) and split != "train":
            return split
    return None


def decode_image(raw: bytes) -> np.ndarray:
    """Decode one image file to a (48, 48) uint8 array; ValueError says what is wrong with it."""
    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            mode, size = im.mode, im.size
            arr = np.asarray(im)
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"unreadable or corrupt image ({err})") from None
    if mode != "L":
        raise ValueError(f"colour or non-8-bit-grayscale image (mode {mode}); FER2013 images are 8-bit grayscale")
    if size != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"image is {size[0]}x{size[1]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    return arr


def _read_csv(path: Path) -> FerData:
    """Read the challenge's `fer2013.csv` (emotion,pixels,Usage), mapping its labels to CLASSES.

    The rows are checked one by one; their pixels are parsed together, in one NumPy call (`_csv_pixels`).
    """
    problems: list[tuple[int, str]] = []  # (row, problem), listed in file order
    kept: list[tuple[int, int, str, str]] = []  # (row, class index, split, file id) of the rows kept so far
    texts: list[str] = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError([f"{path}: missing column(s) {', '.join(missing)}; found {reader.fieldnames}"])
        for row_i, row in enumerate(reader):
            where = f"{path}: row {row_i + 2}"  # line number in the file (header is line 1)
            try:
                emotion = int(row["emotion"])
            except (TypeError, ValueError):
                problems.append((row_i, f"{where}: emotion {row['emotion']!r} is not an integer"))
                continue
            if not 0 <= emotion < len(CSV_LABELS):
                problems.append((row_i, f"{where}: emotion {emotion} outside 0..{len(CSV_LABELS) - 1}"))
                continue
            if row["Usage"] not in USAGE_TO_SPLIT:
                problems.append((row_i, f"{where}: unknown Usage {row['Usage']!r} (expected "
                                         f"{', '.join(USAGE_TO_SPLIT)})"))
                continue
            kept.append((row_i, CLASSES.index(CSV_LABELS[emotion]), USAGE_TO_SPLIT[row["Usage"]],
                         f"{path.name}#row{row_i}"))
            texts.append(row["pixels"] or "")
    pixels, bad = _csv_pixels(texts)
    problems += [(kept[i][0], f"{path}: row {kept[i][0] + 2}: {problem}") for i, problem in bad.items()]
    if problems:
        raise DataError([problem for _, problem in sorted(problems)])
    if not kept:
        raise DataError([f"{path}: no rows"])
    _, labels, splits, ids = zip(*kept)
    data = FerData(pixels.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1), np.array(labels, dtype=np.int64), np.array(ids),
                   np.array(splits), str(path))
    order = np.lexsort((data.labels, [SPLITS.index(s) for s in data.splits]))
    return data.select(order)


def _csv_pixels(texts: list[str]) -> tuple[np.ndarray, dict[int, str]]:
    """Parse fer2013.csv pixel strings ("70 80 82 ...", 48*48 integers 0-255 each), all rows in one `np.loadtxt`.

    Args:
        texts: one pixel string per row.

    Returns:
        The pixels, uint8 (len(texts), 48*48), and {row index: problem} for the rows that are not 48*48 integers
        in 0..255 (found row by row when one breaks the joint parse, to name each; their pixels are meaningless).
    """
    n_pixels = IMAGE_SIZE * IMAGE_SIZE
    try:
        pixels = np.loadtxt(texts, dtype=np.int16, ndmin=2, comments=None) if texts else np.zeros((0, n_pixels))
        if pixels.shape != (len(texts), n_pixels):  # every row another count, or empty rows (skipped)
            raise ValueError
    except ValueError:  # a row with other values or another count
        return _csv_pixels_row_by_row(texts)
    out_of_range = (pixels < 0).any(axis=1) | (pixels > 255).any(axis=1)
    return pixels.astype(np.uint8), {int(i): "pixel values outside 0..255" for i in np.flatnonzero(out_of_range)}


def _csv_pixels_row_by_row(texts: list[str]) -> tuple[np.ndarray, dict[int, str]]:
    """`_csv_pixels`, one row at a time: slower, and names each bad row."""
    n_pixels = IMAGE_SIZE * IMAGE_SIZE
    pixels, bad = np.zeros((len(texts), n_pixels), np.uint8), {}
    for i, text in enumerate(texts):
        try:
            row = np.array(text.split(), dtype=np.int64)
        except ValueError:
            bad[i] = "pixels are not all integers"
            continue
        if row.size != n_pixels:
            bad[i] = f"{row.size} pixel values, expected {n_pixels}"
        elif row.min() < 0 or row.max() > 255:
            bad[i] = "pixel values outside 0..255"
        else:
            pixels[i] = row
    return pixels, bad


def _subsample_indices(splits: np.ndarray, labels: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """Indices keeping at most `per_class` rows per (split, class), chosen at random with `seed`."""
    if per_class is None:
        return np.arange(len(labels))
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    rng = np.random.default_rng(seed)
    keep = []
    for split in SPLITS:
        for label in range(len(CLASSES)):
            idx = np.flatnonzero((splits == split) & (labels == label))
            keep.append(rng.permutation(idx)[:per_class])
    return np.sort(np.concatenate(keep))


def subsample(data: FerData, per_class: int | None, seed: int = 0) -> FerData:
    """At most `per_class` images per class in each split (stratified, seeded); all when None."""
    if per_class is None:
        return data
    return data.select(_subsample_indices(data.splits, data.labels, per_class, seed))


def format_counts(counts: dict[str, dict[str, int]], splits: Iterable[str] = (*SPLITS, "test_all")) -> str:
    """A plain-text table of images per class (rows) and split (columns)."""
    splits = list(splits)
    lines = [f"{'class':<10}" + "".join(f"{s:>10}" for s in splits)]
    for c in CLASSES:
        lines.append(f"{c:<10}" + "".join(f"{counts[s][c]:>10}" for s in splits))
    lines.append(f"{'total':<10}" + "".join(f"{sum(counts[s].values()):>10}" for s in splits))
    return "\n".join(lines)


def describe(data: FerData) -> str:
    """A banner saying where the data came from; loud when it is the synthetic stand-in."""
    n = len(data.labels)
    if data.synthetic:
        bar = "!" * 72
        return (f"{bar}\nDATA: SYNTHETIC faces ({data.source}), {n} images - NOT FER2013; results say nothing about "
                f"real faces.\nTo use FER2013: pass data_path / --data, or set {DATA_ENV_VAR}.\n{bar}")
    return f"DATA: FER2013 from {data.source}, {n} images"
