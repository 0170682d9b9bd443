"""The rounds in run.db: one row a round (`improve_rounds`) and the plan items each round added (`improve_items`).

A round's row is written with its new plan items in one transaction, before the teacher is asked for any of
them: a round killed after that finds its items pending in the plan and finishes them; one killed before it
plans again (re-planning costs no teacher call). The row's status says which steps are done.
"""

from __future__ import annotations

import json
import time
from collections import Counter

from pydantic import BaseModel, Field

from distill.records import PlanItem
from distill.store import RunStore

PLANNED, GENERATED, TRAINED, DONE = "planned", "generated", "trained", "done"
STEPS = (PLANNED, GENERATED, TRAINED, DONE)


class Round(BaseModel):
    """One round as run.db holds it. `plan`: the re-planning's reasons and quotas (a RoundPlan dumped), plus
    round 0's frozen held-out digest under `eval_sha256`."""

    round: int
    plan: dict = Field(default_factory=dict)
    status: str
    adapter: str | None = None
    eval: str | None = None
    teacher_cost_usd: float = 0.0
    train_minutes: float | None = None

    def reached(self, step: str) -> bool:
        return STEPS.index(self.status) >= STEPS.index(step)


def rounds(store: RunStore) -> list[Round]:
    rows = store.db.execute("SELECT round, plan, status, adapter, eval, teacher_cost_usd, train_minutes "
                            "FROM improve_rounds ORDER BY round")
    return [Round(round=r, plan=json.loads(p), status=s, adapter=a, eval=e, teacher_cost_usd=c or 0.0,
                  train_minutes=t) for r, p, s, a, e, c, t in rows]


def start_round(store: RunStore, entry: Round, items: list[PlanItem]) -> None:
    """The round's row and its new plan items, together."""
    now = time.time()
    with store.transaction():
        store.db.execute("INSERT INTO improve_rounds (round, plan, status, adapter, eval, teacher_cost_usd, "
                         "train_minutes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (entry.round, json.dumps(entry.plan), entry.status, entry.adapter, entry.eval,
                          entry.teacher_cost_usd, entry.train_minutes, now, now))
        store.db.executemany("INSERT OR IGNORE INTO plan_items (id, node_path, axes, idx, ord) VALUES (?, ?, ?, ?, ?)",
                             [(i.id, i.node_path, json.dumps(i.axes), i.index, 0) for i in items])
        store.db.executemany("INSERT OR IGNORE INTO improve_items (plan_item_id, node_path, round) VALUES (?, ?, ?)",
                             [(i.id, i.node_path, entry.round) for i in items])


def update_round(store: RunStore, number: int, **fields: object) -> None:
    """Set some of a round's columns (status, adapter, eval, teacher_cost_usd, train_minutes)."""
    allowed = {"status", "adapter", "eval", "teacher_cost_usd", "train_minutes"}
    assert set(fields) <= allowed, set(fields) - allowed
    columns = ", ".join(f"{name} = ?" for name in fields)
    with store.transaction():
        store.db.execute(f"UPDATE improve_rounds SET {columns}, updated_at = ? WHERE round = ?",
                         (*fields.values(), time.time(), number))


def round_of_items(store: RunStore) -> dict[str, int]:
    """plan item id -> the round that added it."""
    return dict(store.db.execute("SELECT plan_item_id, round FROM improve_items"))


def added_per_leaf(store: RunStore, number: int, kept_ids: set[str]) -> Counter:
    """Examples round `number` added that curation kept, a count a leaf."""
    rows = store.db.execute("SELECT plan_item_id, node_path FROM improve_items WHERE round = ?", (number,))
    return Counter(path for item_id, path in rows if item_id in kept_ids)
