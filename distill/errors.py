"""User-facing errors: one clear line and an exit code, never a traceback.

Exit codes: 2 a mistake in the input (the line says which file, line and field); 1 the run could not
finish for a reason outside the input (every item failed, the disk is full); 3 the budget was reached;
130 interrupted (143 by SIGTERM, 129 by SIGHUP: the CLI stops for them as for Ctrl-C). Everything saved
before any of them is kept.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path
from typing import overload


class DistillError(Exception):
    """A mistake the user can fix. The CLI prints `error: <message>` and exits with `exit_code`.

    `page` names the docs page that explains this kind of mistake (`docs/taxonomies.md#seeds`); the line then
    ends with `; see <page>`. A subclass may set it for all its errors."""

    exit_code = 2
    page: str | None = None

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 page: str | None = None):
        # The parts, for a caller that lists several problems in its own words.
        self.reason, self.path, self.line = " ".join(message.split()), path, line
        if page is not None:
            self.page = page
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        text = " ".join((where + message).split())  # one line, whatever the message quoted
        see = f"; see {self.page}" if self.page else ""
        # endswith: an error rebuilt from its own text (a copy, a pickle) names its page once
        super().__init__(text if text.endswith(see) else text + see)


class BudgetExceeded(DistillError):
    """The spend cap was reached; everything already answered is saved."""

    exit_code = 3


class ReviewPending(DistillError):
    """The run has a review queue whose gate has not passed (reviews open, or a reject rate too high)."""

    exit_code = 4
    page = "docs/review.md#the-gate"


class RunFailed(DistillError):
    """The run could not do its work (every item failed, the disk is full); what was saved is kept."""

    exit_code = 1


class Interrupted(DistillError):
    """Ctrl-C (SIGINT): everything finished so far is saved, and the same command resumes."""

    exit_code = 130

    def __init__(self, message: str = "interrupted: everything finished so far is saved (run.db, checkpoints); "
                                      "run the same command again to resume") -> None:
        super().__init__(message)


@overload
def explain(exc: DistillError | sqlite3.Error | OSError | UnicodeDecodeError | RecursionError,
            path: str | Path | None = None) -> DistillError: ...
@overload
def explain(exc: BaseException, path: str | Path | None = None) -> DistillError | None: ...
def explain(exc: BaseException, path: str | Path | None = None) -> DistillError | None:
    """The one line for what the machine did to a run (a full disk, a file where a folder should be, a
    corrupt database, a file that is not UTF-8). None for anything else: that is a bug, and keeps its
    traceback. `path` names the file when the exception does not (SQLite's errors never do, unless
    `name_database` gave them theirs)."""
    if isinstance(exc, DistillError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return _database_error(exc, getattr(exc, "database", None) or path)
    if isinstance(exc, UnicodeDecodeError):
        return DistillError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8",
                            path=path or "input")
    if isinstance(exc, RecursionError):
        return DistillError("the input is nested too deeply to read; flatten it", path=path)
    if isinstance(exc, OSError):
        return _os_error(exc, path)
    return None


def _os_error(exc: OSError, path: str | Path | None) -> DistillError:
    name = exc.filename or path
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        error = RunFailed(f"the disk is full ({reason}): free some space and run the same command again; "
                          "everything saved before this is kept", path=name)
        return error
    hints: dict[int | None, str] = {
        errno.ENOENT: "not found; check the path",
        errno.ENOTDIR: "a file is in the way where a folder should be; give a folder path",
        errno.EEXIST: "a file is in the way where a folder should be; give a folder path",
        errno.EISDIR: "is a folder; give a file",
        errno.EACCES: "permission denied; choose a place you can write to (or read from)",
        errno.EPERM: "permission denied; choose a place you can write to (or read from)",
        errno.EROFS: "on a read-only file system; choose a folder you can write to",
    }
    return DistillError(hints.get(exc.errno, reason), path=name)


def name_database(exc: sqlite3.Error, path: str | Path) -> sqlite3.Error:
    """`exc`, with the file it is about (the first one named wins: the connection that raised it knows)."""
    if not getattr(exc, "database", None):
        setattr(exc, "database", str(path))  # an attribute of ours: sqlite3.Error has none for the file
    return exc


def is_busy(exc: sqlite3.Error) -> bool:
    """Another connection holds the lock (SQLITE_BUSY or SQLITE_LOCKED, extended codes included)."""
    return (getattr(exc, "sqlite_errorname", "") or "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def _database_error(exc: sqlite3.Error, path: str | Path | None) -> DistillError:
    name = getattr(exc, "sqlite_errorname", "") or ""
    where = path or "the database"
    if name.startswith("SQLITE_FULL") or "disk is full" in str(exc):
        return RunFailed("the disk is full (SQLite: database or disk is full): free some space and run the same "
                         "command again; everything committed before this is kept", path=path)
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in str(exc) or "not a database" in str(exc):
        if Path(where).name != "run.db":
            return DistillError(f"{where} is corrupt ({exc}): move it aside (or restore it from a backup) and run "
                                "again")
        return DistillError(f"{where} is corrupt ({exc}). The exports beside it (dataset.jsonl, rejected.jsonl, "
                            "stats.json) are untouched: move the database aside (or restore it from a backup) and run "
                            "again; a new one starts over, answering from the response cache what it can")
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")):
        return DistillError(f"cannot write {where} ({exc}); choose a folder you can write to")
    if is_busy(exc):
        return RunFailed(f"{where} is busy ({exc}): another process holds it; wait for it or use another folder")
    if name.startswith("SQLITE_IOERR"):
        return RunFailed(f"{where}: the disk failed to read or write ({exc}); check the disk and run again")
    return RunFailed(f"{where}: {exc}")
