"""The run store: one SQLite file (WAL) per run directory, the source of truth for a run.

Every teacher call is committed within COMMIT_WINDOW_S (20 ms) of its answer (see CommitWindow), so
kill -9 loses at most the answers of those last milliseconds, and a re-run looks calls up by their
fingerprint instead of paying for them again. The JSONL files beside it are exports, rebuilt from
here at the end of every run.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from distill.commits import COMMIT_WINDOW_S, CommitWindow  # noqa: F401 (COMMIT_WINDOW_S: named in the docs)
from distill.errors import explain
from distill.records import Example, GenerationRequest, GenerationResult, PlanItem, Reject
from distill.sqlite_wal import open_wal

# Ordered and append-only: a store records how far it got in PRAGMA user_version.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE run_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE plan_items (
        id TEXT PRIMARY KEY, node_path TEXT NOT NULL, axes TEXT NOT NULL, idx INTEGER NOT NULL,
        ord INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'pending', error TEXT, updated_at REAL
    );
    CREATE TABLE teacher_calls (
        id INTEGER PRIMARY KEY, plan_item_id TEXT, step TEXT NOT NULL, fingerprint TEXT NOT NULL,
        teacher TEXT NOT NULL, request TEXT NOT NULL, text TEXT, finish_reason TEXT, usage TEXT,
        error TEXT, cached INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL
    );
    CREATE INDEX teacher_calls_fingerprint ON teacher_calls (fingerprint);
    CREATE TABLE examples (
        id TEXT PRIMARY KEY, plan_item_id TEXT, node_path TEXT, body TEXT NOT NULL, created_at REAL NOT NULL
    );
    CREATE TABLE rejects (
        id INTEGER PRIMARY KEY, item_id TEXT NOT NULL, stage TEXT NOT NULL, reason TEXT NOT NULL,
        detail TEXT NOT NULL, node_path TEXT, body TEXT NOT NULL, created_at REAL NOT NULL
    );
    CREATE INDEX rejects_item ON rejects (item_id);
    """,
    # Provider batch jobs (--batch): a re-run finds a job still open here and collects it instead of
    # submitting (and paying for) its requests again. custom_id is the request's fingerprint.
    """
    CREATE TABLE batch_jobs (
        id INTEGER PRIMARY KEY, teacher TEXT NOT NULL, job_id TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
        submitted_at REAL NOT NULL, finished_at REAL
    );
    CREATE TABLE batch_requests (
        batch INTEGER NOT NULL REFERENCES batch_jobs (id), custom_id TEXT NOT NULL, PRIMARY KEY (batch, custom_id)
    );
    CREATE INDEX batch_requests_custom_id ON batch_requests (custom_id);
    """,
    # Creating a provider job is not idempotent, so the intent is recorded first: a row in state
    # 'submitting' with a client-made submission id (uuid4 hex, OpenAI's job metadata carries it) and
    # its custom_ids, committed before the create call; the provider's job id fills in once accepted.
    # job_id loses NOT NULL, which SQLite can only do by rebuilding the table (ids kept, so
    # batch_requests still points at the same rows). The custom_id index goes: every query reads a
    # job's requests by batch, which the primary key covers.
    """
    CREATE TABLE batch_jobs_v3 (
        id INTEGER PRIMARY KEY, teacher TEXT NOT NULL, job_id TEXT, submission TEXT, status TEXT NOT NULL,
        error TEXT, submitted_at REAL NOT NULL, attempted_at REAL, finished_at REAL,
        json_mode INTEGER  -- the structured-output mode its lines were built with (OpenAI's fallbacks)
    );
    INSERT INTO batch_jobs_v3 (id, teacher, job_id, status, error, submitted_at, attempted_at, finished_at)
        SELECT id, teacher, job_id, status, error, submitted_at, submitted_at, finished_at FROM batch_jobs;
    DROP TABLE batch_jobs;
    ALTER TABLE batch_jobs_v3 RENAME TO batch_jobs;
    DROP INDEX batch_requests_custom_id;
    """,
    # The human review (distill/review). Nothing here is ever updated or deleted: a queue grows by new
    # rows, a decision (undo included) is a new row, so two reviewers writing at once never collide.
    # review_items keeps each queued item as it was when queued (the original beside every edit);
    # review_queue holds one row per review wanted (slot 1 = the overlap's second reviewer);
    # review_decisions holds verdicts, with edited messages as a new version and `undoes` pointing
    # at the decision an undo withdraws; client_id makes a retried POST land once.
    # review_reviewers holds sha256 digests of per-reviewer tokens, never the tokens.
    # review_regenerated marks plan items added by `distill review regenerate` and their round.
    """
    CREATE TABLE review_items (
        item_id TEXT PRIMARY KEY, node_path TEXT, body TEXT NOT NULL, signals TEXT NOT NULL,
        neighbour TEXT, added_at REAL NOT NULL
    );
    CREATE TABLE review_queue (
        item_id TEXT NOT NULL REFERENCES review_items (item_id), slot INTEGER NOT NULL, ord INTEGER NOT NULL,
        assigned TEXT, why TEXT NOT NULL, round INTEGER NOT NULL, added_at REAL NOT NULL,
        PRIMARY KEY (item_id, slot)
    );
    CREATE TABLE review_decisions (
        id INTEGER PRIMARY KEY, item_id TEXT NOT NULL, reviewer TEXT NOT NULL,
        verdict TEXT NOT NULL CHECK (verdict IN ('accept', 'reject', 'edit', 'skip', 'undo')),
        reasons TEXT NOT NULL DEFAULT '[]', note TEXT NOT NULL DEFAULT '', messages TEXT,
        undoes INTEGER REFERENCES review_decisions (id), seconds REAL, client_id TEXT UNIQUE,
        created_at REAL NOT NULL
    );
    CREATE INDEX review_decisions_item ON review_decisions (item_id);
    CREATE TABLE review_reviewers (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL, token_sha256 TEXT NOT NULL UNIQUE, created_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE TABLE review_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE review_regenerated (
        plan_item_id TEXT PRIMARY KEY, node_path TEXT NOT NULL, round INTEGER NOT NULL, created_at REAL NOT NULL
    );
    """,
    # A retried review POST is one with the same reviewer, item and client_id: client_id alone was
    # unique, so a page (or script) reusing an id for another item or another reviewer got the earlier
    # decision back and its own was dropped. The inline UNIQUE can only go by rebuilding the table
    # (ids kept, so `undoes` still points at the same rows); NULL client_ids never collide.
    """
    CREATE TABLE review_decisions_v5 (
        id INTEGER PRIMARY KEY, item_id TEXT NOT NULL, reviewer TEXT NOT NULL,
        verdict TEXT NOT NULL CHECK (verdict IN ('accept', 'reject', 'edit', 'skip', 'undo')),
        reasons TEXT NOT NULL DEFAULT '[]', note TEXT NOT NULL DEFAULT '', messages TEXT,
        undoes INTEGER REFERENCES review_decisions (id), seconds REAL, client_id TEXT,
        created_at REAL NOT NULL
    );
    INSERT INTO review_decisions_v5 SELECT id, item_id, reviewer, verdict, reasons, note, messages, undoes, seconds,
        client_id, created_at FROM review_decisions;
    DROP TABLE review_decisions;
    ALTER TABLE review_decisions_v5 RENAME TO review_decisions;
    CREATE INDEX review_decisions_item ON review_decisions (item_id);
    CREATE UNIQUE INDEX review_decisions_retry ON review_decisions (reviewer, item_id, client_id);
    """,
    # An answer's tool calls and reasoning (GenerationResult.extra()), NULL for a plain answer.
    """
    ALTER TABLE teacher_calls ADD COLUMN extra TEXT;
    """,
    # `distill improve` (distill/improve): a row a round (its plan, where it stands, its adapter and eval, what it
    # cost), and the plan items each round added beyond the taxonomy's plan (generation asks for those too).
    """
    CREATE TABLE improve_rounds (
        round INTEGER PRIMARY KEY, plan TEXT NOT NULL, status TEXT NOT NULL, adapter TEXT, eval TEXT,
        teacher_cost_usd REAL NOT NULL DEFAULT 0, train_minutes REAL, created_at REAL NOT NULL, updated_at REAL
    );
    CREATE TABLE improve_items (plan_item_id TEXT PRIMARY KEY, node_path TEXT NOT NULL, round INTEGER NOT NULL);
    """,
]

PENDING, GENERATED, REJECTED, FAILED = "pending", "generated", "rejected", "failed"


@contextmanager
def store_errors(path: Path) -> Iterator[None]:
    """SQLite's errors name no file: say which run.db is corrupt, or on a full disk, in one line."""
    try:
        yield
    except sqlite3.Error as exc:
        raise explain(exc, path) from None


# Databases this process has found sound: the check reads every page once, so it runs once per process and
# file, not every time the review page opens the ledger.
_checked: set[tuple[int, int]] = set()


def check_integrity(db: sqlite3.Connection, path: Path) -> None:
    """Refuse a damaged database before anything writes into it: a write into a corrupt b-tree can spread the
    damage to pages that were still sound. `quick_check` reads every page but skips the index-to-table
    cross-check: 0.13 s for a 191 MB run.db here, warm (benchmarks/bench_integrity.py)."""
    try:
        key = (path.stat().st_dev, path.stat().st_ino)
    except OSError:
        return  # a new file, made by the connection just now: nothing to check
    if key in _checked:
        return
    problem = db.execute("PRAGMA quick_check(1)").fetchone()[0]
    if problem != "ok":
        raise sqlite3.DatabaseError(f"database disk image is malformed: integrity check: {problem}")
    _checked.add(key)


class RunStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = open_wal(self.path)
            check_integrity(self.db, self.path)
        except sqlite3.Error as exc:
            if hasattr(self, "db"):
                self.db.close()
            raise explain(exc, self.path) from None
        self.window = CommitWindow(self.db)
        self._migrate()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                for statement in filter(str.strip, script.split(";")):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")

    def transaction(self):
        self.window.commit()  # an explicit transaction is durable at its end, with what came before it
        return _Transaction(self.db)

    def close(self) -> None:
        self.window.commit()
        self.db.close()

    # run info
    def set_info(self, **values: object) -> None:
        with self.transaction():
            for key, value in values.items():
                self.db.execute("INSERT OR REPLACE INTO run_info VALUES (?, ?)", (key, json.dumps(value)))

    def info(self) -> dict[str, Any]:  # JSON values
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM run_info")}

    # plan
    def add_plan(self, items: Iterable[PlanItem]) -> None:
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO plan_items (id, node_path, axes, idx, ord) VALUES (?, ?, ?, ?, ?)",
                [(i.id, i.node_path, json.dumps(i.axes), i.index, n) for n, i in enumerate(items)],
            )

    def regenerated_plan_items(self) -> list[PlanItem]:
        """Plan items `distill review regenerate` added for a leaf (beyond the taxonomy's plan), oldest first."""
        rows = self.db.execute("SELECT p.id, p.node_path, p.axes, p.idx FROM plan_items p JOIN review_regenerated r"
                               " ON r.plan_item_id = p.id ORDER BY r.rowid")
        return [PlanItem(id=i, node_path=path, axes=json.loads(axes), index=idx) for i, path, axes, idx in rows]

    def improve_plan_items(self) -> list[PlanItem]:
        """Plan items `distill improve` added for its rounds (beyond the taxonomy's plan), oldest first."""
        rows = self.db.execute("SELECT p.id, p.node_path, p.axes, p.idx FROM plan_items p JOIN improve_items r"
                               " ON r.plan_item_id = p.id ORDER BY r.rowid")
        return [PlanItem(id=i, node_path=path, axes=json.loads(axes), index=idx) for i, path, axes, idx in rows]

    def finished_items(self) -> list[PlanItem]:
        """Plan items that are no longer pending (generated, rejected or failed), in plan order."""
        rows = self.db.execute("SELECT id, node_path, axes, idx FROM plan_items WHERE status != 'pending' ORDER BY ord")
        return [PlanItem(id=i, node_path=n, axes=json.loads(a), index=x) for i, n, a, x in rows]

    def statuses(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT id, status FROM plan_items"))

    def set_status(self, item_id: str, status: str, error: str | None = None) -> None:
        self.db.execute(
            "UPDATE plan_items SET status = ?, error = ?, updated_at = ? WHERE id = ?",
            (status, error, time.time(), item_id),
        )

    # teacher calls
    def find_call(self, fingerprint: str) -> GenerationResult | None:
        row = self.db.execute(
            "SELECT text, finish_reason, usage, extra FROM teacher_calls WHERE fingerprint = ? AND error IS NULL "
            "ORDER BY id DESC LIMIT 1",
            (fingerprint,),
        ).fetchone()
        if row is None:
            return None
        return GenerationResult(key="", text=row[0], finish_reason=row[1], usage=json.loads(row[2]),
                                cached=True).with_extra(row[3])

    def answered_calls(self, plan_item_ids: set[str]) -> dict[str, tuple[str, GenerationResult]]:
        """The answers already stored for these items, by fingerprint, with their item (what a resumed item
        does not ask again)."""
        answered: dict[str, tuple[str, GenerationResult]] = {}
        for item_id, fingerprint, text, finish_reason, usage, extra in self.db.execute(
            "SELECT plan_item_id, fingerprint, text, finish_reason, usage, extra FROM teacher_calls"
            " WHERE error IS NULL ORDER BY id"
        ):
            if item_id in plan_item_ids:
                answered[fingerprint] = (item_id, GenerationResult(key="", text=text, finish_reason=finish_reason,
                                                                   usage=json.loads(usage), cached=True
                                                                   ).with_extra(extra))
        return answered

    def step_calls(self, step: str) -> dict[str, str | None]:
        """plan item id -> the text of its latest answered call of `step` (a judged check's verdict)."""
        return {item_id: text for item_id, text in self.db.execute(
            "SELECT plan_item_id, text FROM teacher_calls WHERE step = ? AND error IS NULL AND plan_item_id IS NOT NULL"
            " ORDER BY id", (step,))}

    def add_call(self, plan_item_id: str | None, step: str, teacher: str, request: GenerationRequest,
                 fingerprint: str, result: GenerationResult) -> None:
        with self.window:
            self.db.execute(
                "INSERT INTO teacher_calls (plan_item_id, step, fingerprint, teacher, request, text, finish_reason,"
                " usage, error, cached, created_at, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (plan_item_id, step, fingerprint, teacher, request.model_dump_json(), result.text,
                 result.finish_reason, result.usage.model_dump_json(), result.error, int(result.cached), time.time(),
                 result.extra()),
            )

    def call_counts(self) -> dict[str, int]:
        row = self.db.execute(
            "SELECT COUNT(*), SUM(error IS NOT NULL), SUM(cached) FROM teacher_calls"
        ).fetchone()
        return {"calls": row[0] or 0, "errors": row[1] or 0, "cached": row[2] or 0}

    def usage_totals(self) -> dict[str, float]:
        totals = {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
        for (usage,) in self.db.execute("SELECT usage FROM teacher_calls WHERE cached = 0 AND usage IS NOT NULL"):
            data = json.loads(usage)
            totals["prompt_tokens"] += data.get("prompt_tokens") or 0
            totals["completion_tokens"] += data.get("completion_tokens") or 0
            totals["cost_usd"] += data.get("cost_usd") or 0.0
        return totals

    # provider batch jobs
    def begin_batch_job(self, teacher: str, submission: str, custom_ids: Iterable[str], at: float,
                        json_mode: int | None = None) -> int:
        """Record a job about to be created, committed before the create call: after a kill, the
        resumed run finds it 'submitting' and looks for it at the provider instead of creating it again."""
        with self.transaction():
            row = cast(int, self.db.execute(  # an INSERT's row id (lastrowid is None only before any)
                "INSERT INTO batch_jobs (teacher, submission, status, submitted_at, attempted_at, json_mode) "
                "VALUES (?, ?, 'submitting', ?, ?, ?)", (teacher, submission, at, at, json_mode)).lastrowid)
            self.db.executemany("INSERT OR IGNORE INTO batch_requests VALUES (?, ?)",
                                [(row, custom_id) for custom_id in custom_ids])
        return row

    def batch_create_attempt(self, row: int, at: float) -> None:
        """Another create attempt starts now (committed first): a lookup's window runs from the first
        attempt (submitted_at) to the last one's timeout."""
        with self.transaction():
            self.db.execute("UPDATE batch_jobs SET attempted_at = ? WHERE id = ?", (at, row))

    def accept_batch_job(self, row: int, job_id: str, status: str) -> None:
        """The provider accepted (or was found to hold) the job: its id is durable before the first poll."""
        with self.transaction():
            self.db.execute("UPDATE batch_jobs SET job_id = ?, status = ? WHERE id = ?", (job_id, status, row))

    def update_batch_job(self, row: int, status: str, finished: bool = False, error: str | None = None) -> None:
        self.db.execute("UPDATE batch_jobs SET status = ?, error = COALESCE(?, error), finished_at = ? WHERE id = ?",
                        (status, error, time.time() if finished else None, row))

    def batch_jobs(self, teacher: str) -> list[dict[str, Any]]:
        """The teacher's jobs, oldest first: row, job_id (None while submitting), submission, status, error,
        times and the custom_ids each carries."""
        jobs = {row[0]: dict(row=row[0], job_id=row[1], submission=row[2], status=row[3], error=row[4],
                             submitted_at=row[5], attempted_at=row[6], finished_at=row[7], json_mode=row[8],
                             custom_ids=[])
                for row in self.db.execute("SELECT id, job_id, submission, status, error, submitted_at, attempted_at,"
                                           " finished_at, json_mode"
                                           " FROM batch_jobs WHERE teacher = ? ORDER BY id", (teacher,))}
        for row, custom_id in self.db.execute("SELECT r.batch, r.custom_id FROM batch_requests r JOIN batch_jobs j"
                                              " ON j.id = r.batch WHERE j.teacher = ?", (teacher,)):
            jobs[row]["custom_ids"].append(custom_id)
        return list(jobs.values())

    def batch_job_ids(self) -> set[str]:
        """Every provider job id on record, whichever teacher made it."""
        return {job_id for (job_id,) in self.db.execute("SELECT job_id FROM batch_jobs WHERE job_id IS NOT NULL")}

    # outcomes
    def add_example(self, example: Example) -> None:
        with self.window:  # grouped with the calls it came from (see CommitWindow)
            self.db.execute(
                "INSERT OR REPLACE INTO examples VALUES (?, ?, ?, ?, ?)",
                (example.id, example.meta.plan_item_id, example.meta.taxonomy_path, example.model_dump_json(), time.time()),
            )
            if example.meta.plan_item_id:
                self.set_status(example.meta.plan_item_id, GENERATED)

    def add_reject(self, reject: Reject, plan_status: str | None = REJECTED) -> None:
        with self.window:
            self.db.execute(
                "INSERT INTO rejects (item_id, stage, reason, detail, node_path, body, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (reject.id, reject.stage, reject.reason, reject.detail, reject.node_path,
                 reject.model_dump_json(exclude_none=True), time.time()),
            )
            if plan_status:
                self.set_status(reject.id, plan_status, f"{reject.reason}: {reject.detail}")

    def replace_curation_rejects(self, rejects: Iterable[Reject]) -> None:
        """Curation is recomputed over the whole run each time; its rejects replace the last round's."""
        with self.transaction():
            self.db.execute("DELETE FROM rejects WHERE stage != 'generate'")
            self.db.executemany(
                "INSERT INTO rejects (item_id, stage, reason, detail, node_path, body, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(r.id, r.stage, r.reason, r.detail, r.node_path, r.model_dump_json(exclude_none=True), time.time())
                 for r in rejects],
            )

    def examples(self, plan_item_ids: set[str] | None = None) -> list[Example]:
        rows = self.db.execute("SELECT plan_item_id, body FROM examples ORDER BY rowid")
        return [Example.model_validate_json(body) for pid, body in rows if plan_item_ids is None or pid in plan_item_ids]

    def rejects(self, stage: str | None = None) -> Iterator[Reject]:
        query = "SELECT body FROM rejects" + (" WHERE stage = ?" if stage else "") + " ORDER BY id"
        for (body,) in self.db.execute(query, (stage,) if stage else ()):
            yield Reject.model_validate_json(body)

    def latest_generation_rejects(self, plan_item_ids: set[str]) -> list[Reject]:
        """The last generation reject of each item that is still rejected (a retry may have fixed others)."""
        rows = self.db.execute(
            "SELECT r.item_id, r.body FROM rejects r JOIN plan_items p ON p.id = r.item_id "
            "WHERE r.stage = 'generate' AND p.status IN ('rejected', 'failed') ORDER BY r.id"
        )
        latest = {item_id: body for item_id, body in rows if item_id in plan_item_ids}
        return [Reject.model_validate_json(body) for body in latest.values()]



class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.nested = self.db.in_transaction
        if not self.nested:
            self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        if self.nested:
            return False
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
            except sqlite3.Error:
                self._rollback()  # a failed commit (a full disk) leaves no transaction open behind it
                raise
        else:
            self._rollback()
        return False

    def _rollback(self) -> None:
        if self.db.in_transaction:  # SQLite may have rolled back already (SQLITE_FULL does): keep its error
            self.db.execute("ROLLBACK")
