"""A user-level response cache shared by every run: a repeated or edited run pays only for what is new.

Keyed by the request's fingerprint (provider and model, messages, sampling, schema), so editing
one taxonomy node changes only that node's prompts, and only those miss. Only answers are stored,
never errors, and never request headers (so never a key).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import warnings
from pathlib import Path

from distill.commits import COMMIT_WINDOW_S
from distill.records import Usage
from distill.sqlite_wal import open_wal
from distill.teachers.base import GenerationRequest, GenerationResult, Teacher, WrappedTeacher

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    fingerprint TEXT PRIMARY KEY, teacher TEXT NOT NULL, text TEXT, finish_reason TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, cost_usd REAL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS response_extras (fingerprint TEXT PRIMARY KEY, extra TEXT NOT NULL)
"""
# An answer's tool calls and reasoning (GenerationResult.extra()) live in a table of their own, not a new column
# of `responses`: runs of an older distill share this file and insert into `responses` by position.


def default_cache_dir() -> Path:
    if os.environ.get("DISTILL_CACHE_DIR"):
        return Path(os.environ["DISTILL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "distill"


class ResponseCache:
    """Answers by fingerprint. New answers are buffered and written together at most every `window_s`.

    The write transaction lasts one `executemany`, never across awaits: several runs (processes) share
    this file, and one holding SQLite's write lock while its event loop served other requests would
    stall the others in their busy handlers. A kill -9 loses at most the last window's answers, as
    run.db's grouped commits do (see `distill.commits.CommitWindow`).
    """

    def __init__(self, path: str | Path, window_s: float = COMMIT_WINDOW_S):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = open_wal(self.path)  # several runs, and a Ray run's workers, share it at once
        self.db.executescript(SCHEMA)
        self.window_s = window_s
        self.pending: dict[str, tuple] = {}  # fingerprint -> row, not yet written
        self.pending_extras: dict[str, str] = {}  # fingerprint -> tool calls and reasoning, not yet written
        self.timer: asyncio.TimerHandle | None = None
        self.timer_loop: asyncio.AbstractEventLoop | None = None

    def get(self, fingerprint: str) -> GenerationResult | None:
        row = self.pending.get(fingerprint)
        if row is not None:
            row = (*row[2:7], self.pending_extras.get(fingerprint))
        else:
            row = self.db.execute(
                "SELECT text, finish_reason, prompt_tokens, completion_tokens, cost_usd, extra FROM responses"
                " LEFT JOIN response_extras USING (fingerprint) WHERE fingerprint = ?", (fingerprint,)).fetchone()
        if row is None:
            return None
        return GenerationResult(key="", text=row[0], finish_reason=row[1], cached=True,
                                usage=Usage(prompt_tokens=row[2] or 0, completion_tokens=row[3] or 0,
                                            cost_usd=row[4])).with_extra(row[5])

    def put(self, fingerprint: str, teacher: str, result: GenerationResult) -> None:
        if not result.ok or result.cached:
            return
        self.pending[fingerprint] = (fingerprint, teacher, result.text, result.finish_reason,
                                     result.usage.prompt_tokens, result.usage.completion_tokens,
                                     result.usage.cost_usd, time.time())
        extra = result.extra()
        if extra is not None:
            self.pending_extras[fingerprint] = extra
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()  # no loop to run a timer: write now
            return
        if self.timer is None or self.timer_loop is not loop:  # (a timer of an ended loop never fires)
            self.timer, self.timer_loop = loop.call_later(self.window_s, self.flush), loop

    def flush(self) -> None:
        """Write the buffered answers in one short transaction. On a lock timeout they wait for the next
        try; a row SQLite will not take is dropped with a warning, never left to block the rest."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.pending:
            return
        try:
            self._write(list(self.pending.values()))
        except sqlite3.OperationalError:  # another run held the lock past busy_timeout: keep them
            return
        except Exception:  # one bad row (say, an integer too large for SQLite): write the others alone
            for fingerprint, row in list(self.pending.items()):
                try:
                    self._write([row])
                except sqlite3.OperationalError:
                    return
                except Exception as exc:
                    warnings.warn(f"response cache {self.path}: answer {fingerprint[:12]} not cached: {exc}",
                                  stacklevel=2)
                del self.pending[fingerprint]
                self.pending_extras.pop(fingerprint, None)
        self.pending.clear()
        self.pending_extras.clear()

    def _write(self, rows: list[tuple]) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            extras = [(row[0], self.pending_extras[row[0]]) for row in rows if row[0] in self.pending_extras]
            if extras:
                self.db.executemany("INSERT OR REPLACE INTO response_extras VALUES (?, ?)", extras)
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # the cache is a saving, never the reason a run fails
            warnings.warn(f"response cache {self.path}: not written: {exc}", stacklevel=2)
        if self.pending:  # still locked out: the answers are in run.db; only the shared cache misses them
            warnings.warn(f"response cache {self.path}: {len(self.pending)} answers not written (database locked)",
                          stacklevel=2)
        self.db.close()


class CachedTeacher(WrappedTeacher):
    """Answers from the cache where it can, asks `inner` for the rest, and remembers its answers."""

    def __init__(self, inner: Teacher, path: str | Path):
        super().__init__(inner)
        self.cache = ResponseCache(path)
        self.namespace = inner.cache_namespace

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        results: dict[str, GenerationResult] = {}
        missing: list[tuple[GenerationRequest, str]] = []
        for request in requests:
            fingerprint = request.fingerprint(self.namespace)
            hit = self.cache.get(fingerprint)
            if hit is not None:
                results[request.key] = hit.model_copy(update={"key": request.key})
            else:
                missing.append((request, fingerprint))
        if missing:
            answered = await self.inner.generate([r for r, _ in missing])
            for (request, fingerprint), result in zip(missing, answered):
                self.cache.put(fingerprint, self.namespace, result)
                results[request.key] = result
        return [results[r.key] for r in requests]

    def close(self) -> None:
        self.cache.close()
        self.inner.close()

