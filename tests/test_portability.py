"""Run folders, data and commands on Windows, macOS and other file systems (issue 29, item 3).

Each platform is simulated here: no os.O_DIRECTORY (Windows), no hard links (FAT, exFAT, some network shares: os.link
raising OSError, or missing), no SIGTERM or a signal Python may not handle, paths with spaces, and the files macOS
and Windows leave in folders and zips. Each test names the broken implementation it catches.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import expected_counts, zip_folder

from fer_utils import cli, commands, runfolder
from fer_utils.callbacks import StopOnSignal, TrainingInterrupted
from fer_utils.data import is_system_file, load_data

# --- no O_DIRECTORY: folders cannot be opened to flush them ----------------------------------------------------


def test_an_atomic_write_works_where_the_platform_has_no_o_directory(tmp_path, monkeypatch):
    # Breaks on `os.O_RDONLY | os.O_DIRECTORY` unguarded: AttributeError on every write on Windows.
    opened = []
    real_open = os.open
    monkeypatch.delattr(os, "O_DIRECTORY", raising=False)
    monkeypatch.setattr(os, "open", lambda path, flags, *a: opened.append(Path(path)) or real_open(path, flags, *a))
    runfolder.write_json(tmp_path / "metrics.json", {"a": 1})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": 1}
    assert opened and not any(p.is_dir() for p in opened)  # files are flushed, folders left alone


def test_an_atomic_write_works_where_opening_a_folder_fails(tmp_path, monkeypatch):
    real_open = os.open

    def no_folders(path, flags, *args):
        if Path(path).is_dir():
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", no_folders)
    runfolder.write_text(tmp_path / "history.csv", "epoch\n0\n")
    assert (tmp_path / "history.csv").read_text() == "epoch\n0\n"


# --- a locale that is not UTF-8 -------------------------------------------------------------------------------------


def test_write_text_writes_utf8_whatever_the_locale(tmp_path):
    # Breaks on Path.write_text without encoding=: the locale's encoding (cp1252 on many Windows machines; ASCII in
    # the C locale simulated here) fails on, or garbles, a path or label with accents. Newlines stay the platform's.
    text = "data: C:/Donn\u00e9es/archive.zip \u2713\nsecond line\n"
    target = tmp_path / "results.md"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
           "PYTHONIOENCODING": "utf-8"}
    script = ("import locale, sys; from fer_utils import runfolder; print(locale.getpreferredencoding(False)); "
              "runfolder.write_text(sys.argv[1], sys.argv[2].encode('ascii').decode('unicode_escape'))")
    escaped = text.encode("unicode_escape").decode("ascii")  # the command line itself stays ASCII
    child = subprocess.run([sys.executable, "-X", "utf8=0", "-c", script, str(target), escaped], env=env,
                           capture_output=True, text=True, encoding="utf-8")
    assert child.returncode == 0, child.stderr
    if "utf" in child.stdout.lower():
        pytest.skip(f"this platform's C locale is UTF-8 ({child.stdout.strip()}): nothing to tell apart")
    assert target.read_bytes() == text.replace("\n", os.linesep).encode("utf-8")


# --- no hard links ------------------------------------------------------------------------------------------------


def _backup_with_links(tmp_path: Path) -> Path:
    """A backup swap (as after every epoch) whose folder takes history.csv by `link_or_copy`."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "history.csv").write_text("epoch\n0\n")
    runfolder.commit_backup(out / "backup", lambda folder: runfolder.link_or_copy(out / "history.csv",
                                                                                    folder / "history.csv"))
    return out


def test_the_backup_copies_where_hard_links_fail(tmp_path, monkeypatch):
    def refuse(*args):
        raise OSError(1, "Operation not permitted")  # what FAT/exFAT and some network shares answer

    monkeypatch.setattr(os, "link", refuse)
    out = _backup_with_links(tmp_path)
    assert (out / "backup" / "history.csv").read_text() == "epoch\n0\n"


def test_the_backup_copies_where_the_platform_has_no_os_link(tmp_path, monkeypatch):
    # Breaks on an unguarded os.link: AttributeError where Python was built without it.
    monkeypatch.delattr(os, "link")
    out = _backup_with_links(tmp_path)
    copy = out / "backup" / "history.csv"
    assert copy.read_text() == "epoch\n0\n" and copy.stat().st_ino != (out / "history.csv").stat().st_ino


# --- signals ------------------------------------------------------------------------------------------------------


def test_stop_on_signal_hooks_only_the_signals_the_platform_has(monkeypatch):
    # Breaks on `signal.SIGTERM` read unguarded (AttributeError where the platform has none).
    before = signal.getsignal(signal.SIGINT)
    monkeypatch.delattr(signal, "SIGTERM")
    stop = StopOnSignal()
    stop.on_train_begin()
    assert list(stop._previous) == [signal.SIGINT] and signal.getsignal(signal.SIGINT) == stop._raise_flag
    stop.restore()
    assert signal.getsignal(signal.SIGINT) == before


def test_stop_on_signal_tolerates_a_signal_python_may_not_handle(monkeypatch):
    # Breaks if a ValueError/OSError from signal.signal (a signal the platform will not hand to Python) left fit.
    real = signal.signal

    def picky(sig, handler):
        if sig == signal.SIGTERM:
            raise ValueError("signal number out of range")
        return real(sig, handler)

    monkeypatch.setattr(signal, "signal", picky)
    stop = StopOnSignal()
    stop.on_train_begin()
    assert list(stop._previous) == [signal.SIGINT]
    stop.restore()


# --- command lines with spaces --------------------------------------------------------------------------------------

ARGV = ["/home/me/my courses/fer_utils/__main__.py", "train", "--data", "C:/Data Sets/archive.zip", "--out", "a'b"]


def test_a_command_with_spaces_splits_back_into_the_same_words():
    # Breaks on " ".join(sys.argv): "my courses" would come back as two words.
    assert shlex.split(runfolder.command_line(ARGV)) == ARGV


def test_on_windows_a_command_is_quoted_for_windows(monkeypatch):
    with monkeypatch.context() as windows:  # undone before anything else, pytest's reporting included, sees it
        windows.setattr(os, "name", "nt")
        line = runfolder.command_line(ARGV)
    assert line == subprocess.list2cmdline(ARGV) and '"C:/Data Sets/archive.zip"' in line


def test_the_cli_resume_hint_quotes_paths_and_leaves_fresh_out(monkeypatch, capsys, tiny_synthetic):
    # The hint after Ctrl-C must be a command that resumes: quoted, and without --fresh (which would discard the run).
    def stopped(*args, **kwargs):
        raise TrainingInterrupted("Stopped by SIGINT: the run keeps its last complete epoch (1)")

    monkeypatch.setattr(commands, "load_data_once", lambda *a, **k: tiny_synthetic)
    monkeypatch.setattr(commands, "_train", stopped)
    args = ["train", "--model", "se", "--out", "/runs/my run", "--fresh"]
    assert cli.main(args) == 130
    hint = capsys.readouterr().err.strip().rsplit("(1): ", 1)[1]
    assert shlex.split(hint) == ["python", "-m", "fer_utils", *args[:-1]]


# --- files the operating system leaves in data folders and zips -----------------------------------------------------

LITTER = [".DS_Store", "train/.DS_Store", "train/angry/.DS_Store", "train/happy/._Training_10040.jpg",
          "test/happy/Thumbs.db", "test/.ipynb_checkpoints/notes.txt", "train/fear/desktop.ini"]


def _litter(root: Path) -> None:
    for rel in LITTER:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"\x00\x05\x16\x07 not an image")


def test_a_folder_from_a_mac_or_windows_loads_without_its_system_files(fer_tree, fer_files):
    # Breaks if .DS_Store and the others were reported as bad images (a DataError: the data could not be used).
    _litter(fer_tree)
    data = load_data(fer_tree)
    assert data.counts() == expected_counts(fer_files.records)


def test_a_zip_made_on_a_mac_loads_without_its_macosx_folder(fer_tree, fer_files, tmp_path):
    # Finder's "Compress" wraps the folder and adds __MACOSX/ with a ._ copy of every file, and .DS_Store files.
    _litter(fer_tree)
    archive = zip_folder(fer_tree, tmp_path / "archive.zip", wrapper="fer2013/")
    with zipfile.ZipFile(archive, "a") as zf:
        for rel in ("__MACOSX/fer2013/train/angry/._Training_10000.jpg", "__MACOSX/fer2013/._train"):
            zf.writestr(rel, b"\x00\x05\x16\x07")
    data = load_data(archive)
    assert data.counts() == expected_counts(fer_files.records)


@pytest.mark.parametrize("name, system", [
    ("train/angry/Training_1.jpg", False), ("./train/angry/Training_1.jpg", False), (".DS_Store", True),
    ("__MACOSX/train/._x.jpg", True), ("test/sad/THUMBS.DB", True), ("fer2013/.hidden/x.jpg", True)])
def test_system_files_are_told_from_data(name, system):
    assert is_system_file(name) is system
