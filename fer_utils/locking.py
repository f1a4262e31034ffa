"""One process at a time trains into a run folder: `one_writer` holds the operating system's lock on its `.lock` file.

The lock goes with the process however it ends, so a folder left by a crashed run is never locked; a second process
is refused at once (`RunFolderBusy`, naming the holder's pid and host).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from .runfolder import RunFolderError, command_line

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
try:
    import msvcrt
except ImportError:  # POSIX
    msvcrt = None

LOCK = ".lock"
"""The file whose OS lock `one_writer` holds while a process trains into the folder; it names the holder."""
_WINDOWS_LOCK_OFFSET = 1 << 20
"""Windows locks a byte range and then refuses reads of it: the lock is taken on a byte far past the holder's
details, which stay readable by the process that is refused."""


class RunFolderBusy(RunFolderError):
    """Another process is training into the run folder (`one_writer`).

    Attributes:
        out: the run folder.
        holder: what the holder wrote into the lock file (pid, host, since, command); {} when unreadable.
    """

    def __init__(self, out: str | os.PathLike, holder: dict):
        self.out, self.holder = Path(out), dict(holder)
        who = (f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}" if holder.get("pid")
               else "a process that has not said which")
        super().__init__(f"{out} is in use by another training process ({who}): wait for it to end, or train into "
                         "another run folder (out= / --out)")


def _try_lock(fd: int) -> bool | None:
    """Lock the open file `fd` for this process without waiting: True when locked, False when another process holds
    it, None when the platform or the file system has no locks (some network shares)."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        elif msvcrt is not None:
            os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            return None
        return True
    except (BlockingIOError, PermissionError):  # EWOULDBLOCK (flock), EACCES (msvcrt): held elsewhere
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP: a file system without locks
        return None


def _unlock(fd: int) -> None:
    """Release `_try_lock`'s lock (closing the file would too; a crashed process's lock goes with it)."""
    with contextlib.suppress(OSError):
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        elif msvcrt is not None:
            os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _still_at(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file at `path` (not deleted or replaced since it was opened)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _holder(path: Path) -> dict:
    """The holder's details written in the lock file `path`, or {} (not yet written, or unreadable)."""
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


@contextlib.contextmanager
def one_writer(out: str | os.PathLike, log=print):
    """Hold the run folder `out` for this process while the block runs; refuse at once if another process holds it.

    The lock is the operating system's (flock on POSIX, msvcrt.locking on Windows) on `out`/.lock, so it is released
    when the block ends, and when the process dies however it dies: a lock file left by a dead process blocks
    nothing. The holder writes its pid, host, start time and command into the file, for the refusal to name, and
    deletes the file when the block ends.
    Where the file system has no locks, a one-line note says the folder is not guarded and the block runs.

    Args:
        out: the run folder (it must exist).
        log: where the note goes.

    Yields:
        Nothing; the folder is held inside the block.

    Raises:
        RunFolderBusy: another process holds `out` (its message names the folder, the holder's pid and host).
    """
    path = Path(out) / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        locked = _try_lock(fd)
        if not locked or _still_at(fd, path):
            break
        os.close(fd)  # the last holder deleted the file after it was opened here: lock the one at `path` now
    try:
        if locked is False:
            raise RunFolderBusy(out, _holder(path))
        if locked is None:
            log(f"Note: {out} is on a file system without file locks: nothing stops a second process from training "
                "into it")
        holder = dict(pid=os.getpid(), host=socket.gethostname(),
                      since=datetime.now(timezone.utc).isoformat(timespec="seconds"), command=command_line())
        with contextlib.suppress(OSError):  # the details are for the refusal's message; the lock is what guards
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(holder) + "\n").encode())
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # the holder is gone
                os.unlink(path)  # while still locked (Windows keeps an open file: it stays, empty)
            if locked:
                _unlock(fd)
    finally:
        os.close(fd)
