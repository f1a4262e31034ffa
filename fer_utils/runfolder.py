"""Crash-safe run folders: atomic file writes, and finding the last good state of an interrupted run.

Every file of a run folder is written to a temporary file in the same folder, flushed to disk, then renamed over
the old one, so a reader (or a resumed run) sees the old file or the new one, never half of one. The training
backup is one folder that is replaced as a whole (`commit_backup`): weights, epoch, history rows and the best
checkpoint of the same epoch, so a resumed run restores all of them from one instant (`resume_state`). Where the
platform lacks a step (flushing a folder on Windows, hard links on FAT or exFAT), the step is skipped or done by
copying. One process at a time writes into a folder: `locking.one_writer`. Tests can end a process just before any
of these renames, as a kill would (FER_UTILS_EXIT_BEFORE_REPLACE).
"""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

BACKUP = "backup"
WEIGHTS = "latest.weights.h5"
METADATA = "training_metadata.json"
HISTORY = "history.csv"
BEST = "best.keras"
FIT_FINISHED = "fit_finished.json"
SETTINGS = "run_settings.json"
"""In backup/: the training settings, the data's fingerprint and the command a run was started with
(`run_settings.run_settings`), compared with those asked when the run is resumed."""
_PAUSE_ENV = "FER_UTILS_PAUSE_IN_WRITES"
"""Tests only: seconds to sleep inside every atomic write (between the temporary file and the rename), so that a
test that kills a real process (tests/test_lifecycle.py) finds it in the middle of its epoch-end writes."""
_EXIT_ENV = "FER_UTILS_EXIT_BEFORE_REPLACE"
"""Tests only (fault injection): `N` or `N:NAME`. The process ends at once, as if killed, just before its Nth rename
in this module, or its Nth rename from or onto a file or folder called NAME (e.g. `3:backup`, `1:metrics.json`),
counted from 1 in each process. Every rename here goes through `_replace`: the one of each atomic write (onto the
file written), both of a backup swap (`backup` onto `backup.old`, then the new folder onto `backup`), the one of a
folder being deleted (from its name), and those of `resume_state`. The process writes one line on stderr naming the
rename, then exits with status `EXIT_BEFORE_REPLACE_STATUS` through os._exit: no `finally` block, no atexit
handler, so temporary files stay behind as after a SIGKILL. tests/test_crash_safety.py stops a run at chosen steps
of its writes this way, the same steps on every machine, where a timed kill lands wherever it happens to. Counting by
NAME keeps a step the same whether or not an epoch improved the checkpoint (which writes model.keras)."""
EXIT_BEFORE_REPLACE_STATUS = 97
"""The exit status of a process ended by FER_UTILS_EXIT_BEFORE_REPLACE (none that Python or a signal gives)."""
_replaced: dict[str, int] = {}
"""Renames made (or about to be) by `_replace` in this process: "" for all of them, else by the name renamed from
or onto."""


def _pause() -> None:
    delay = float(os.environ.get(_PAUSE_ENV, 0) or 0)
    if delay:
        time.sleep(delay)


def _replace(source: Path, target: Path) -> None:
    """`os.replace(source, target)`; first, the fault injection of FER_UTILS_EXIT_BEFORE_REPLACE."""
    source, target = Path(source), Path(target)
    for name in {"", source.name, target.name}:
        _replaced[name] = _replaced.get(name, 0) + 1
    count, _, name = os.environ.get(_EXIT_ENV, "").partition(":")
    if count and name in ("", source.name, target.name) and _replaced[name] == int(count):
        os.write(2, f"{_EXIT_ENV}={count}{':' if name else ''}{name}: exiting before renaming {source.name} to "
                    f"{target.name}\n".encode())
        os._exit(EXIT_BEFORE_REPLACE_STATUS)
    os.replace(source, target)


class RunFolderError(ValueError):
    """A run folder cannot be trained into as asked; the message (one line) names it, says why and the ways out."""


def command_line(argv: list[str] | None = None) -> str:
    """`argv` (default: sys.argv) as one command line that splits back into the same words, paths with spaces too.

    Args:
        argv: the words of the command.

    Returns:
        `shlex.join(argv)` (POSIX shells), or `subprocess.list2cmdline(argv)` on Windows.
    """
    argv = [str(word) for word in (sys.argv if argv is None else argv)]
    return subprocess.list2cmdline(argv) if os.name == "nt" else shlex.join(argv)


def _can_open_folders() -> bool:
    """Whether this platform opens a folder as a file, to flush its entries (not Windows; needs O_DIRECTORY)."""
    return os.name != "nt" and hasattr(os, "O_DIRECTORY")


def _fsync_path(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk; a no-op for folders where the platform cannot open them."""
    is_dir = path.is_dir()
    if is_dir and not _can_open_folders():
        return  # Windows cannot open a folder to flush it: the rename is left to the file system
    flags = os.O_RDONLY | (os.O_DIRECTORY if is_dir else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path beside `path`; when the block ends without error, flush it and rename it over `path`.

    Args:
        path: the file to (re)write.
        suffix: ending the temporary name must keep (e.g. ".keras" or ".npz", for writers that check it).

    Yields:
        The temporary Path to write to. On an exception it is removed and `path` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial{suffix}")
    try:
        yield tmp
        replace_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_file(tmp: Path, path: Path) -> None:
    """Flush the finished temporary file `tmp` to disk and rename it over `path` (one atomic step)."""
    _fsync_path(tmp)
    _pause()
    _replace(tmp, path)
    _fsync_path(path.parent)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically, in UTF-8 whatever the locale (newlines as the platform writes them)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: dict) -> None:
    """Write `obj` as indented JSON to `path` atomically; NaN and infinities (the loss of an empty split) become
    null, as JSON has no such numbers (Python would write a bare NaN, which strict parsers reject)."""
    write_text(path, json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n")


def _finite(obj):
    """`obj` with every float that is NaN or infinite, at any depth of its dicts, lists and tuples, replaced by None."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    return obj


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    """Write `frame` (without its index) to `path` atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """`np.savez_compressed(path, **arrays)`, atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def copy_file(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy `source` to `target` atomically (the target is never half-copied)."""
    with atomic_path(target) as tmp:
        shutil.copy2(source, tmp)


def save_without_optimizer(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Write `source`'s model to `target` (atomically) with its architecture and weights but no optimizer state.

    Keras 3 saves a compiled model's optimizer variables into a .keras file (Adam's two moments triple its size) and
    honours `include_optimizer=False` for legacy .h5 files only; a model loaded with `compile=False` has no
    optimizer, so saving it writes the architecture and weights alone. Published models are for prediction and
    evaluation, which need no optimizer. The written file is reloaded in safe mode and its weights compared.

    Args:
        source: a .keras file (with or without optimizer state).
        target: where to write it (may be `source`).

    Raises:
        ValueError: the written file does not reload with the same weights (naming it).
    """
    import keras
    from . import augment  # noqa: F401  (registers the augmentation layers a model may hold)

    model = keras.saving.load_model(source, compile=False, safe_mode=True)
    with atomic_path(target, suffix=".keras") as tmp:
        model.save(tmp)
        back = keras.saving.load_model(tmp, compile=False, safe_mode=True)
        same = len(back.get_weights()) == len(model.get_weights()) and all(
            np.array_equal(a, b) for a, b in zip(model.get_weights(), back.get_weights()))
        if not same:
            raise ValueError(f"{target}: the model saved without optimizer state does not reload with the same "
                             "weights")


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link `source` as `target` (no bytes copied; the link keeps the content if `source` is later replaced),
    falling back to a copy where the platform or the file system has no hard links (FAT, exFAT, some network shares).
    """
    link = getattr(os, "link", None)  # absent from some Python builds
    if link is not None:
        try:
            link(source, target)
            return
        except OSError:
            pass
    shutil.copy2(source, target)


def commit_backup(current: Path, write_into) -> None:
    """Replace the folder `current` (a run's backup/) as a whole by a new one that `write_into(folder)` fills.

    The new folder is written beside the old one (`backup.PID.new`, this process's), flushed, then swapped in by two
    renames; the old one is deleted last. At every instant `backup/` or `backup.old/` holds a complete state
    (`resume_state` looks at both).
    """
    current = Path(current)
    out = current.parent
    new, old = out / f"{current.name}.{os.getpid()}.new", out / f"{current.name}.old"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    write_into(new)
    for f in new.iterdir():
        _fsync_path(f)
    _fsync_path(new)
    _pause()
    if current.exists():
        remove_folder(old)
        _replace(current, old)
    _replace(new, current)
    _fsync_path(out)
    remove_folder(old)


def check_backup(folder: Path) -> str | None:
    """What is wrong with the backup in `folder` (one line), or None when it is complete and readable."""
    import h5py

    try:
        meta = json.loads((folder / METADATA).read_text())
        epoch = int(meta["epoch"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"{folder / METADATA}: {type(err).__name__}: {err}"
    try:
        with h5py.File(folder / WEIGHTS, "r") as f:
            f.visit(lambda name: None)
    except (OSError, ValueError) as err:
        return f"{folder / WEIGHTS}: cannot be read ({err})"
    try:
        rows = len(pd.read_csv(folder / HISTORY)) if (folder / HISTORY).exists() else 0
    except (OSError, ValueError, pd.errors.ParserError) as err:
        return f"{folder / HISTORY}: cannot be read ({err})"
    if rows != epoch:
        return f"{folder}: its history has {rows} rows for {epoch} epochs"
    if (folder / SETTINGS).exists():
        try:
            json.loads((folder / SETTINGS).read_text())
        except (OSError, ValueError) as err:
            return f"{folder / SETTINGS}: cannot be read ({err})"
    if (folder / BEST).exists():
        return check_model_file(folder / BEST)
    return None


def check_model_file(path: Path) -> str | None:
    """What is wrong with a saved .keras file (one line), or None when it loads in safe mode."""
    import keras
    from . import augment  # noqa: F401  (registers the augmentation layers a model may hold)

    try:
        keras.models.load_model(path, compile=False)
    except Exception as err:  # noqa: BLE001 - any failure to load means the file is not usable
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return f"{path}: cannot be loaded ({type(err).__name__}: {first[:200]})"
    return None


def remove_folder(folder: Path) -> None:
    """Delete `folder` in one visible step: rename it to a hidden trash name (`.NAME.PID.trash`), then delete that.

    A process killed part-way through a plain delete leaves a half-deleted folder under its own name (a backup/
    without its weights); killed here, it leaves a trash folder, which `resume_state` deletes.
    """
    folder = Path(folder)
    if not folder.exists():
        return
    trash = folder.with_name(f".{folder.name}.{os.getpid()}.trash")
    shutil.rmtree(trash, ignore_errors=True)
    _replace(folder, trash)
    _fsync_path(folder.parent)
    shutil.rmtree(trash, ignore_errors=True)


def resume_state(out: Path, log=print, fresh: bool = False) -> int:
    """Make `out` hold the last good state of an interrupted run, or a fresh start; return its completed epochs.

    The backup (`backup/`, else `backup.old/` left by a swap that was cut short) is checked; a damaged one is
    reported in one line and the next candidate tried. From the good one, history.csv and model.keras are restored
    (so both describe the same epochs as the weights). With none, or with `fresh`, the folder's history, checkpoint
    and backups are removed and training starts afresh, which is said when there was something to discard.
    Temporary files and folders of writes that were cut short are deleted first: call it only while holding the
    folder (`locking.one_writer`), so that they cannot be another process's writes in progress.

    Args:
        out: the run folder.
        log: where the one-line reports go.
        fresh: discard an interrupted run instead of resuming it.

    Returns:
        The number of epochs the restored state has completed (0 for a fresh start).
    """
    for stale in out.glob(f"{BACKUP}*.new"):  # never complete until renamed
        shutil.rmtree(stale, ignore_errors=True)
    for stale in out.glob(".*.trash"):  # folders whose deletion was cut short (`remove_folder`)
        shutil.rmtree(stale, ignore_errors=True)
    for stale in out.glob(".*.partial*"):  # temporary files of writes that were cut short
        stale.unlink(missing_ok=True)
    interrupted = ((out / BACKUP).exists() or (out / f"{BACKUP}.old").exists()
                   or ((out / HISTORY).exists() and not (out / "metrics.json").exists()))
    restored = None if fresh else _restore_backup(out, log)
    if restored is not None:
        return restored
    if interrupted:
        log(f"Discarding the interrupted run in {out} (fresh start asked): starting afresh" if fresh
            else f"No usable backup of an interrupted run in {out}: starting afresh")
    for name in (HISTORY, "model.keras", "metrics.json", "predictions.npz", "run_info.json"):
        (out / name).unlink(missing_ok=True)
    remove_folder(out / BACKUP)
    remove_folder(out / f"{BACKUP}.old")
    return 0


def _restore_backup(out: Path, log) -> int | None:
    """Restore history.csv and model.keras of `out` from its first good backup (backup/, then backup.old/, damaged
    ones reported and removed), which becomes backup/; return its completed epochs, or None when there is none."""
    current, old = out / BACKUP, out / f"{BACKUP}.old"
    for candidate in (current, old):
        if not candidate.exists():
            continue
        problem = check_backup(candidate)
        if problem:
            log(f"Backup not usable, falling back: {problem}")
            remove_folder(candidate)
            continue
        if candidate != current:
            remove_folder(current)
            _replace(candidate, current)
        remove_folder(old)
        for kept, name in ((HISTORY, HISTORY), (BEST, "model.keras")):
            if (current / kept).exists():
                copy_file(current / kept, out / name)
            else:
                (out / name).unlink(missing_ok=True)
        return int(json.loads((current / METADATA).read_text())["epoch"])
    return None
