"""What a run reads besides the taxonomy and its seeds, checked before the first teacher call.

Held-out sets are read by curation at the end of a run, and the answer template renders only after
the question was paid for: a mistake in either would otherwise cost the whole run first.
"""

from __future__ import annotations

import asyncio

from distill.curate.heldout import load_all
from distill.records import PlanItem
from distill.tasks.parse import Rejected
from distill.taxonomy import LoadedTaxonomy
from distill.teachers.base import GenerationRequest, GenerationResult


def check_inputs(loaded: LoadedTaxonomy, plan: list[PlanItem]) -> None:
    """Read every held-out set and render every prompt of the first item; a mistake is one line (file:line)."""
    if loaded.taxonomy.heldout:
        load_all(loaded.taxonomy.heldout)
    if plan:
        rehearse(loaded, plan[0])
    if loaded.task.code_loaded:  # generating: the task's own Python may be imported now
        loaded.task.check_code()


def rehearse(loaded: LoadedTaxonomy, item: PlanItem) -> None:
    """Run the task for one item against stand-in answers (each step's own: text, or a value of its
    schema): every template it renders is rendered once."""

    async def answer(step: str, request: GenerationRequest) -> GenerationResult:
        return GenerationResult(key=request.key, text=loaded.task.stand_in_answer(step), finish_reason="stop")

    try:
        asyncio.run(loaded.task.run(loaded, item, "rehearsal", answer))
    except Rejected:
        pass  # a parser judged the stand-in answer: the templates rendered
