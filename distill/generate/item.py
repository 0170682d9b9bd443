"""One plan item through its task: the example, or the reject with its reason.

The same for every executor: the local runner and the Ray workers both call `run_item` and differ only
in how a request reaches the teacher (`ask`) and where the outcome is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import BaseModel

from distill.records import Example, GenerationRequest, GenerationResult, PlanItem, Reject
from distill.store import FAILED, REJECTED
from distill.tasks.parse import Rejected

Ask = Callable[[str, GenerationRequest], Awaitable[GenerationResult]]


class TeacherFailed(Exception):
    """A teacher call came back with an error (after the teacher's own retries): the item failed, and
    `--retry-failed` asks again."""

    def __init__(self, step: str, error: str):
        super().__init__(f"{step}: {error}")
        self.step, self.error = step, error


class ItemOutcome(BaseModel):
    """What became of one item: exactly one of `example` and `reject`; `failed` when the teacher failed."""

    item_id: str
    example: Example | None = None
    reject: Reject | None = None
    failed: bool = False


async def run_item(loaded, item: PlanItem, teacher_spec: str, ask: Ask) -> ItemOutcome:
    """Run `item`'s task, asking the teacher through `ask` (which raises `TeacherFailed` on an error result).

    Other exceptions (a budget stop, a cancellation) pass through: the item then stays pending."""
    try:
        example = await loaded.task.run(loaded, item, teacher_spec, ask)
        return ItemOutcome(item_id=item.id, example=example)
    except Rejected as rejected:
        return ItemOutcome(item_id=item.id, reject=Reject(
            id=item.id, stage="generate", reason=rejected.reason, detail=rejected.detail, raw=rejected.raw,
            node_path=item.node_path))
    except TeacherFailed as failed:
        return ItemOutcome(item_id=item.id, failed=True, reject=Reject(
            id=item.id, stage="generate", reason="teacher_failed", detail=f"{failed.step}: {failed.error}",
            node_path=item.node_path))


def save_outcome(store, outcome: ItemOutcome) -> None:
    """Write an outcome into run.db: the example, or the reject (a failed item is marked for --retry-failed)."""
    if outcome.example is not None:
        store.add_example(outcome.example)
    else:
        store.add_reject(outcome.reject, plan_status=FAILED if outcome.failed else REJECTED)
