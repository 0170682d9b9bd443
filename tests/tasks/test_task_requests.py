"""The task engine builds, for the built-in tasks, exactly the teacher requests and examples of before.

Every response cache and every resumable run.db is keyed by request fingerprints: a built-in task that
rendered one byte differently would ask (and pay) again for everything already answered. The golden
file holds what the hand-written qa and classification tasks built (captured at c71fdc5f, before the
task engine) for 115 plan items of the tiny fixtures, medical and support-tickets, with stand-in answers.
"""

import asyncio
import gzip
import json

import pytest

from cli_helpers import ROOT as REPO, TESTS
from distill.records import PlanItem
from distill.taxonomy import build_plan, load_taxonomy
from distill.teachers.base import GenerationResult

GOLDEN = TESTS / "fixtures" / "requests" / "before-tasks.jsonl.gz"


def stand_in(step: str, item: PlanItem) -> str:
    # The answers the golden file was captured with.
    if step == "instruction":
        return f"What should a person ask first about case {item.id[:6]} today?"
    if step == "response":
        return f"A stand-in answer for item {item.id}."
    return json.dumps({"text": f"A customer message number {item.id}", "rationale": f"Rationale for {item.id}."})


def golden_rows() -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            rows.setdefault(row["taxonomy"], []).append(row)
    return rows


GOLDEN_ROWS = golden_rows()


@pytest.mark.parametrize("taxonomy", sorted(GOLDEN_ROWS))
def test_built_in_tasks_build_the_requests_and_examples_of_before(taxonomy):
    loaded = load_taxonomy(REPO / taxonomy)
    plan = {item.id: item for item in build_plan(loaded)}  # (the golden file's JSON sorted the axes' keys)
    for row in GOLDEN_ROWS[taxonomy]:
        item = plan[row["item"]["id"]]
        assert item.model_dump() == PlanItem.model_validate(row["item"]).model_dump()
        asked = []

        async def call(step, request, item=item):
            asked.append((step, request))
            return GenerationResult(key=request.key, text=stand_in(step, item), finish_reason="stop")

        example = asyncio.run(loaded.task.run(loaded, item, "openai:gpt-4o-mini", call))
        assert [step for step, _ in asked] == [r["step"] for r in row["requests"]]
        for (step, request), before in zip(asked, row["requests"]):
            assert json.loads(request.model_dump_json()) == before["request"], (item.id, step)
            assert request.fingerprint("openai:gpt-4o-mini") == before["fingerprint"], (item.id, step)
        assert json.loads(example.model_dump_json()) == row["example"], item.id
