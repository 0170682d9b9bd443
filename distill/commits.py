"""Grouped SQLite commits for writes made at a high rate: the run store's and the response cache's.

Kill -9 loses at most the last window's writes; a resumed run pays again for at most those answers.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable

COMMIT_WINDOW_S = 0.02


class CommitWindow:
    """Group commit for writes made at a high rate: at most one COMMIT per `window_s`.

    A commit costs ~0.05 ms of CPU and 0.3-0.5 ms of blocking I/O on a busy disk; at hundreds of
    answers a second that stalls the event loop. A grouped write (`with window:`) after a quiet
    spell commits at once, as before; one within `window_s` of the last commit joins an open
    transaction that a timer commits at the end of the window. So kill -9 loses, and a resumed run
    pays again for, at most what was answered in the last `window_s`. Outside an event loop every
    grouped write commits at once. Close (or an explicit transaction) commits what is open.
    """

    def __init__(self, db: sqlite3.Connection, window_s: float = COMMIT_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic):
        self.db, self.window_s, self.clock = db, window_s, clock  # clock: injectable, so tests never race it
        self.open = False  # a group transaction of ours is open
        self.last = 0.0  # monotonic time of our last commit
        self.timer: asyncio.TimerHandle | None = None
        self.timer_loop: asyncio.AbstractEventLoop | None = None
        self.failure: sqlite3.Error | None = None  # a timer's commit that failed (a full disk): the next write raises it

    def __enter__(self) -> sqlite3.Connection:
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        if not self.db.in_transaction:  # inside someone's explicit transaction: that one commits
            self.db.execute("BEGIN IMMEDIATE")
            self.open = True
        # One write is all or nothing even inside a shared group: an example never lands without its status.
        self.db.execute("SAVEPOINT grouped_write")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.db.execute("ROLLBACK TO grouped_write")
        self.db.execute("RELEASE grouped_write")
        if not self.open:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        now = self.clock()
        if exc_type is not None or loop is None or now - self.last >= self.window_s:
            self.commit()
        elif self.timer is None or self.timer_loop is not loop:  # (a timer of an ended loop never fires)
            self.timer, self.timer_loop = loop.call_later(self.last + self.window_s - now, self._timed_commit), loop

    def _timed_commit(self) -> None:
        try:
            self.commit()
        except sqlite3.Error as exc:  # raised in the run, not logged by the event loop and lost
            self.failure = exc

    def commit(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.open:
            self.open = False
            try:
                self.db.execute("COMMIT")
            except sqlite3.Error:
                if self.db.in_transaction:  # a full disk: what was committed before stays, this group goes
                    self.db.execute("ROLLBACK")
                raise
            self.last = self.clock()
