"""Folders a command writes into: checked before any work, and a run directory locked for one run at a time.

Two `distill generate` on one `--out` would each see every item as pending and each pay the teacher
for all of them. `run_lock` holds an OS file lock (flock on `run.lock`) for the whole run; the kernel
drops it when the process ends, kill -9 included, so a stale lock never blocks a resume. The holder's
pid and command are written into the file so the second run can say who holds it; a key in the command
(a `--base-url` carrying one) is masked first, since the file and that message reach other users.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distill.errors import DistillError
from distill.redact import redact

LOCK_FILE = "run.lock"
_held: dict[Path, int] = {}  # run directories this process holds -> nesting depth (`distill run` wraps generate)


def writable_folder(path: Path, option: str) -> Path:
    """`path` as a folder this process can write into, made if missing; else one line naming `option`."""
    if path.exists() and not path.is_dir():
        raise DistillError(f"{option} {path} is a file, not a folder; give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DistillError(f"{option} {path}: cannot make this folder ({_reason(exc)}); "
                           "choose a folder you can write to") from None
    if not os.access(path, os.W_OK | os.X_OK):
        why = "read-only file system" if _read_only(path) else "permission denied"
        raise DistillError(f"{option} {path}: cannot write here ({why}); choose a folder you can write to")
    return path


@contextmanager
def run_lock(out: Path, option: str = "--out") -> Iterator[Path]:
    """Hold `out` for this process: a second run on it stops at once, naming the process that holds it."""
    writable_folder(out, option)
    key = out.resolve()
    if key in _held:  # the same process again (`distill run` -> generate): it already holds it
        _held[key] += 1
        try:
            yield out
        finally:
            _held[key] -= 1
        return
    try:
        # O_NOFOLLOW: a run.lock that is a link must not make us truncate whatever it points at.
        fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DistillError(f"{out / LOCK_FILE} is a link and distill did not make it; move it away") from None
        raise DistillError(f"{option} {out}: cannot write here ({_reason(exc)}); "
                           "choose a folder you can write to") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        # Masked again on the way out: a lock file written by an older distill may hold a key.
        holder = redact(os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()) or "another process"
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise DistillError(f"{option} {out}: cannot lock the run directory ({_reason(exc)})") from None
        raise DistillError(f"{out} is in use by another run ({holder}); wait for it to finish, stop it, "
                           f"or give another {option}") from None
    if not _ours(os.pread(fd, 4096, 0)):
        os.close(fd)
        raise DistillError(f"{out / LOCK_FILE} exists and distill did not write it; move it away (distill keeps "
                           "its run lock under that name)")
    os.ftruncate(fd, 0)
    command = redact(" ".join(["distill", *sys.argv[1:]]))[:300]
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}: {command}\n".encode(), 0)
    _held[key] = 1
    try:
        yield out
    finally:
        del _held[key]
        os.close(fd)  # releases the lock; the file stays (removing it would race with a run taking it)


@contextmanager
def hold_run(run_dir: Path, option: str = "DIR") -> Iterator[Path]:
    """Hold an existing run directory while a command reads it and rewrites its derived files (split, export,
    review): none of them may work on a run another process is writing. A folder this process cannot write
    (a colleague's run, read-only) is read as it is: nobody we could wait for writes there either."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DistillError("run directory does not exist; give the folder distill wrote", path=run_dir)
    if not os.access(run_dir, os.W_OK | os.X_OK):
        yield run_dir
        return
    with run_lock(run_dir, option):
        yield run_dir


_LOCK_LINE = re.compile(rb"pid \d+ on [^\n]*: distill")


def _ours(content: bytes) -> bool:
    """Empty (just made), or the line a distill run writes: anything else in run.lock is a user's file."""
    return not content.strip() or _LOCK_LINE.match(content) is not None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
