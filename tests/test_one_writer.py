"""One writer per run folder (issue 29, item 2): a second process cannot train into a folder in use.

Two notebooks with the same run_dir, or a notebook and the CLI, would otherwise delete each other's writes in
progress (a resumed run clears temporary files) and interleave their epochs. Each test names the broken
implementation it catches.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fer_utils import locking, runfolder, training
from fer_utils.callbacks import SafeModelCheckpoint
from fer_utils.runfolder import BACKUP, FIT_FINISHED, WEIGHTS

REPO = Path(__file__).resolve().parent.parent
TINY = dict(precision="float32", verbose=0, filters=(4, 8, 16), dense_units=8)


class _Stop(Exception):
    pass


def test_a_second_train_into_a_folder_in_use_is_refused_naming_the_folder_and_the_holder(tiny_synthetic, tmp_path,
                                                                                          monkeypatch):
    # Breaks if nothing guards the folder: the second train reaches fit (after clearing the first one's files).
    out, fits, refusals = tmp_path / "run", [], []

    def fit_while_a_second_writer_asks(*args, **kwargs):
        fits.append(len(fits))
        if len(fits) == 1:  # the first run is training: a second one asks for the same folder
            try:
                training.train("se", tiny_synthetic, out, epochs=1, **TINY)
            except Exception as err:  # noqa: BLE001 - whatever the second writer got is checked below
                refusals.append(err)
        raise _Stop

    monkeypatch.setattr(training, "fit_model", fit_while_a_second_writer_asks)
    with pytest.raises(_Stop):
        training.train("se", tiny_synthetic, out, epochs=1, **TINY)
    assert fits == [0], f"the second writer trained too: {refusals}"
    message = str(refusals[0])
    assert isinstance(refusals[0], locking.RunFolderBusy) and "\n" not in message
    assert str(out) in message and f"pid {os.getpid()}" in message and socket.gethostname() in message
    with locking.one_writer(out):  # released when train left with an exception
        pass


def test_a_holder_killed_with_sigkill_does_not_block_the_folder(tmp_path):
    # Breaks on a lock file that outlives its process (a crashed run would block the folder forever).
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from fer_utils.locking import one_writer\n"
         "with one_writer(sys.argv[1]):\n    print('held', flush=True); time.sleep(120)", str(out)],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(locking.RunFolderBusy, match=f"pid {holder.pid} on {socket.gethostname()}"):
            with locking.one_writer(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    with locking.one_writer(out):
        pass


def test_a_lock_file_left_by_a_dead_process_does_not_block_the_folder(tmp_path):
    # The lock is the OS's, not the file: a lock file naming a process that is gone is not a holder.
    out = tmp_path / "run"
    out.mkdir()
    (out / locking.LOCK).write_text('{"pid": 999999999, "host": "%s"}' % socket.gethostname())
    with locking.one_writer(out):
        assert str(os.getpid()) in (out / locking.LOCK).read_text()


def test_temporary_names_are_per_process(tmp_path, monkeypatch):
    # Breaks on a fixed temporary name (.model.partial.keras, backup.new): two processes would write one file.
    names = []
    for pid in (111, 222):
        monkeypatch.setattr(os, "getpid", lambda pid=pid: pid)
        names.append(Path(SafeModelCheckpoint(tmp_path / "model.keras").filepath).name)
        runfolder.commit_backup(tmp_path / BACKUP, lambda folder: names.append(folder.name))
        with runfolder.atomic_path(tmp_path / "metrics.json") as tmp:
            tmp.write_text("{}")
            names.append(tmp.name)
    assert len(set(names)) == len(names), names


@pytest.mark.slow
def test_a_kill_while_the_finished_runs_backup_is_deleted_leaves_no_half_backup(tiny_synthetic, tmp_path,
                                                                                monkeypatch):
    # The last step of a run deletes backup/. Killed part-way through a plain rmtree, backup/ is left without its
    # weights, and the next run reports "no usable backup" of a run that had finished. Renamed first, it is gone.
    out, real_rmtree = tmp_path / "run", shutil.rmtree

    def killed_part_way(path, *args, **kwargs):
        if (Path(path) / FIT_FINISHED).exists():  # the finished run's backup (fit_finished.json is written last)
            (Path(path) / WEIGHTS).unlink()
            raise SystemExit("killed")
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", killed_part_way)
    with pytest.raises(SystemExit):
        training.train("se", tiny_synthetic, out, epochs=1, **TINY)
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    lines = []
    assert runfolder.resume_state(out, log=lines.append) == 0
    assert lines == []
    assert not [p.name for p in out.iterdir() if BACKUP in p.name]


def test_the_cli_refuses_a_folder_in_use_in_one_line_with_exit_2(tiny_synthetic, tmp_path, monkeypatch, capsys):
    # Breaks if RunFolderBusy reached the terminal as a traceback.
    from fer_utils import cli, commands

    monkeypatch.setattr(commands, "load_data_once", lambda *a, **k: tiny_synthetic)
    out = tmp_path / "run"
    out.mkdir()
    with locking.one_writer(out):
        assert cli.main(["train", "--model", "se", "--out", str(out), "--precision", "float32"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and f"{out} is in use" in err
