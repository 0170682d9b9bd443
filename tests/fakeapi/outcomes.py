"""Each plan item's outcome as the fake server's faults decide it, and as the run recorded it.

A test compares the two item by item: a fault mapped to the wrong reject reason (or kept when it
should not be) fails, where comparing sets of reasons would not notice.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from .server import FakeAPI, conversation_key

# The reject reason each content fault must give, by task step (None: the answer is usable).
# A question cut at 20 characters asks nothing; a filtered Anthropic answer is a refusal stop.
STEP_REASONS = {
    "instruction": {"length": "no_question", "refusal": "refusal", "filter": "content_filter",
                    "empty": "empty_output", "prose": "no_question"},
    "response": {"length": "truncated", "refusal": "refusal", "filter": "content_filter", "empty": "empty_output"},
    "draft": {"length": "truncated", "refusal": "refusal", "filter": "content_filter", "empty": "empty_output",
              "prose": "unparseable_json", "truncated_json": "schema_invalid"},
}
STEPS = {"qa": ("instruction", "response"), "classification": ("draft",)}


def expected_outcomes(api: FakeAPI, run_dir: Path, task: str, provider: str) -> dict[str, str]:
    """item id -> "kept" or the reject reason the server's faults call for ("teacher_failed" when a step
    never got an answer). Read from the requests run.db recorded, matched to what the server answered."""
    calls: dict[str, dict[str, dict]] = {}
    with sqlite3.connect(run_dir / "run.db") as db:
        for item, step, request, error in db.execute(
                "SELECT plan_item_id, step, request, error FROM teacher_calls ORDER BY id"):
            if error is None:
                calls.setdefault(item, {})[step] = json.loads(request)
        items = [row[0] for row in db.execute("SELECT id FROM plan_items")]
    outcomes = {}
    for item in items:
        outcome = "kept"
        for step in STEPS[task]:
            request = calls.get(item, {}).get(step)
            if request is None:
                outcome = "teacher_failed"
                break
            seed = request["sampling"]["seed"] if provider == "openai" else None
            kind = api.kinds[conversation_key(request["messages"], seed)]
            reason = STEP_REASONS[step].get(kind)
            if reason == "content_filter" and provider == "anthropic":
                reason = "refusal"  # the fake answers a filtered Anthropic message with a refusal stop
            if reason is not None:
                outcome = reason
                break
        outcomes[item] = outcome
    return outcomes


def recorded_outcomes(run_dir: Path) -> dict[str, str]:
    """item id -> "kept" (generated) or the reason of its latest generation reject."""
    with sqlite3.connect(run_dir / "run.db") as db:
        statuses = dict(db.execute("SELECT id, status FROM plan_items"))
        reasons = dict(db.execute("SELECT item_id, reason FROM rejects WHERE stage = 'generate' ORDER BY id"))
    return {item: "kept" if status == "generated" else reasons.get(item, status) for item, status in statuses.items()}


def kinds_seen(api: FakeAPI) -> set[str]:
    return {kind for kind in api.kinds.values() if kind}
