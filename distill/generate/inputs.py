"""What a run reads besides the taxonomy and its seeds, checked before the first teacher call.

Held-out sets are read by curation at the end of a run, and the answer template renders only after
the question was paid for: a mistake in either would otherwise cost the whole run first.
"""

from __future__ import annotations

import asyncio
import json

from distill.generate.parse import Rejected
from distill.generate.tasks import TASKS, ItemContext
from distill.records import PlanItem
from distill.taxonomy import LoadedTaxonomy
from distill.teachers.base import GenerationRequest, GenerationResult

# Stand-in answers, one for each step of each task, that every step's parser accepts.
REHEARSAL_ANSWERS = {
    "instruction": "What should a person check first when this problem starts?",
    "response": "A short rehearsal answer that is long enough to pass.",
    "draft": json.dumps({"text": "A rehearsal message from a customer.", "rationale": "A rehearsal rationale."}),
}


def check_inputs(loaded: LoadedTaxonomy, plan: list[PlanItem]) -> None:
    """Read every held-out set and render every prompt of the first item; a mistake is one line (file:line)."""
    if loaded.taxonomy.heldout:
        from distill.curate.heldout import load_all

        load_all(loaded.taxonomy.heldout)
    if plan:
        rehearse(loaded, plan[0])


def rehearse(loaded: LoadedTaxonomy, item: PlanItem) -> None:
    """Run the task for one item against stand-in answers: every template it renders is rendered once."""
    leaf = next(leaf for leaf in loaded.leaves if leaf.path == item.node_path)

    async def answer(step: str, request: GenerationRequest) -> GenerationResult:
        return GenerationResult(key=request.key, text=REHEARSAL_ANSWERS[step], finish_reason="stop")

    try:
        asyncio.run(TASKS[loaded.taxonomy.task](ItemContext(loaded, item, leaf, "rehearsal", answer)))
    except Rejected:
        pass  # a parser judged the stand-in answer: the templates rendered
