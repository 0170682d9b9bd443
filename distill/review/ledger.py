"""The review's tables in run.db (migrations 4 and 5 in distill/store.py): queue, decisions, reviewers.

Append-only: queuing more items adds rows, a decision (an undo too) is a new row. Each write is its
own short transaction, so several reviewers (web pages, terminals, processes) write at once safely:
SQLite serialises them and WAL lets readers go on meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from distill.errors import DistillError
from distill.records import Decision, Example
from distill.review.model import Neighbour, QueuedItem, QueueRow, ReviewSettings, Signal
from distill.rundir import RunDir
from distill.store import RunStore


def token_digest(token: str) -> str:
    # Tokens are 32 random bytes, so a plain digest is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ReviewLedger:
    """Reads and appends the review tables of one run.db."""

    def __init__(self, store: RunStore):
        self.store = store
        self.db = store.db

    @classmethod
    def open(cls, directory: Path) -> ReviewLedger:
        directory = Path(directory)
        if not directory.is_dir():
            raise DistillError("not a directory: give a run directory or a curated dataset folder", path=directory)
        return cls(RunDir(directory).open_store())

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> ReviewLedger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # settings
    def settings(self) -> ReviewSettings:
        values = {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM review_settings")}
        return ReviewSettings.model_validate(values)

    def save_settings(self, settings: ReviewSettings) -> None:
        with self.store.transaction():
            for key, value in settings.model_dump().items():
                self.db.execute("INSERT OR REPLACE INTO review_settings VALUES (?, ?)", (key, json.dumps(value)))

    # queue
    def has_queue(self) -> bool:
        return self.db.execute("SELECT 1 FROM review_queue LIMIT 1").fetchone() is not None

    def add_to_queue(self, items: Iterable[QueuedItem], rows: Iterable[QueueRow]) -> None:
        """New items and their rows, in one transaction; rows already there are left as they are."""
        now = time.time()
        with self.store.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO review_items VALUES (?, ?, ?, ?, ?, ?)",
                [(i.item_id, i.node_path, i.example.model_dump_json(exclude_none=True),
                  json.dumps([s.model_dump() for s in i.signals]),
                  i.neighbour.model_dump_json() if i.neighbour else None, now) for i in items],
            )
            self.db.executemany(
                "INSERT OR IGNORE INTO review_queue VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(r.item_id, r.slot, r.ord, r.assigned, r.why, r.round, now) for r in rows],
            )

    def queue(self) -> list[QueueRow]:
        rows = self.db.execute("SELECT item_id, slot, ord, assigned, why, round FROM review_queue ORDER BY ord, slot")
        return [QueueRow(item_id=r[0], slot=r[1], ord=r[2], assigned=r[3], why=r[4], round=r[5]) for r in rows]

    def next_ord(self) -> int:
        return (self.db.execute("SELECT MAX(ord) FROM review_queue").fetchone()[0] or -1) + 1

    def items(self) -> dict[str, QueuedItem]:
        out = {}
        for item_id, node_path, body, signals, neighbour in self.db.execute(
                "SELECT item_id, node_path, body, signals, neighbour FROM review_items ORDER BY rowid"):
            out[item_id] = QueuedItem(
                item_id=item_id, node_path=node_path, example=Example.model_validate_json(body),
                signals=[Signal.model_validate(s) for s in json.loads(signals)],
                neighbour=Neighbour.model_validate_json(neighbour) if neighbour else None,
            )
        return out

    # decisions
    def add_decision(self, decision: Decision) -> Decision:
        """Append a decision; one with the reviewer, item and client_id of a stored one is a retry of it,
        and returns the stored decision."""
        if decision.client_id:
            existing = self.retried(decision)
            if existing is not None:
                return existing
        now = time.time()
        try:
            with self.store.transaction():
                row = self.db.execute(
                    "INSERT INTO review_decisions (item_id, reviewer, verdict, reasons, note, messages, undoes, seconds,"
                    " client_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (decision.item_id, decision.reviewer, decision.verdict, json.dumps(decision.reasons), decision.note,
                     json.dumps([m.model_dump() for m in decision.messages]) if decision.messages is not None else None,
                     decision.undoes, decision.seconds, decision.client_id, now),
                ).lastrowid
        except sqlite3.IntegrityError:  # a concurrent retry of the same decision won the race
            existing = self.retried(decision) if decision.client_id else None
            if existing is None:
                raise
            return existing
        return decision.model_copy(update={"id": row, "created_at": now})

    def retried(self, decision: Decision) -> Decision | None:
        """The stored decision with this one's reviewer, item and client_id (what a retry finds), if any."""
        rows = list(self._select_decisions("WHERE reviewer = ? AND item_id = ? AND client_id = ?",
                                           (decision.reviewer, decision.item_id, decision.client_id)))
        return rows[0] if rows else None

    def undo_by_client_id(self, reviewer: str, client_id: str) -> Decision | None:
        """This reviewer's undo sent with `client_id` (a retried undo finds the one that already landed)."""
        rows = list(self._select_decisions("WHERE reviewer = ? AND client_id = ? AND verdict = 'undo'",
                                           (reviewer, client_id)))
        return rows[0] if rows else None

    def decisions(self, after: int = 0) -> list[Decision]:
        """Every decision (or those with an id above `after`), oldest first."""
        return list(self._select_decisions("WHERE id > ?", (after,)))

    def queue_size(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM review_queue").fetchone()[0]

    def _select_decisions(self, where: str, args: tuple) -> Iterable[Decision]:
        query = ("SELECT id, item_id, reviewer, verdict, reasons, note, messages, undoes, seconds, client_id, created_at"
                 f" FROM review_decisions {where} ORDER BY id")
        for row in self.db.execute(query, args):
            yield Decision(id=row[0], item_id=row[1], reviewer=row[2], verdict=row[3], reasons=json.loads(row[4]),
                           note=row[5], messages=json.loads(row[6]) if row[6] is not None else None, undoes=row[7],
                           seconds=row[8], client_id=row[9], created_at=row[10])

    # reviewers
    def add_reviewer(self, name: str) -> str:
        """A new token for `name` (any earlier one is revoked); only its digest is stored."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self.store.transaction():
            self.db.execute("UPDATE review_reviewers SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                            (now, name))
            self.db.execute("INSERT INTO review_reviewers (name, token_sha256, created_at) VALUES (?, ?, ?)",
                            (name, token_digest(token), now))
        return token

    def revoke_reviewer(self, name: str) -> bool:
        with self.store.transaction():
            cursor = self.db.execute("UPDATE review_reviewers SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                                     (time.time(), name))
        return cursor.rowcount > 0

    def reviewer_digests(self) -> dict[str, str]:
        """token digest -> reviewer name, for the tokens in force."""
        return dict(self.db.execute("SELECT token_sha256, name FROM review_reviewers WHERE revoked_at IS NULL"))

    # regeneration rounds
    def add_regenerated(self, plan_items: Iterable[tuple[str, str]], round_: int) -> None:
        now = time.time()
        with self.store.transaction():
            self.db.executemany("INSERT OR IGNORE INTO review_regenerated VALUES (?, ?, ?, ?)",
                                [(pid, path, round_, now) for pid, path in plan_items])

    def regenerated(self) -> dict[str, tuple[str, int]]:
        """plan item id -> (leaf, round) of every item `distill review regenerate` added."""
        return {pid: (path, r) for pid, path, r in
                self.db.execute("SELECT plan_item_id, node_path, round FROM review_regenerated ORDER BY rowid")}
