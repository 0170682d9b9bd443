"""Shared by the review tests: a small curated dataset folder with several leaves, and decision helpers."""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

from cli_helpers import TINY
from distill.owned import OwnedFolder
from distill.records import Decision
from distill.review.ledger import ReviewLedger

TOPICS = {
    "respiratory/asthma": ("inhaler", "wheeze", "trigger", "spacer", "peak flow"),
    "respiratory/common-cold": ("runny nose", "sore throat", "rest", "fluids", "fever"),
    "cardiology/arrhythmias": ("palpitations", "atrial fibrillation", "heart rate", "ECG", "anticoagulation"),
    "cardiology/heart-failure": ("breathlessness", "ankle swelling", "diuretics", "ejection fraction", "salt"),
}
WORDS = ("patients", "doctors", "often", "should", "careful", "daily", "symptoms", "treatment", "morning",
         "evening", "usually", "rarely", "monitor", "review", "dose", "advice", "follow", "plan", "weeks", "months")


def example_row(item_id: str, leaf: str, question: str, answer: str, **meta) -> dict:
    return {"id": item_id,
            "messages": [{"role": "system", "content": "You are a careful medical expert."},
                         {"role": "user", "content": question},
                         {"role": "assistant", "content": answer}],
            "meta": {"taxonomy": "toy", "taxonomy_path": leaf, "teacher": "local", "task": "qa",
                     "seed_ids": [f"seed-{leaf.split('/')[-1]}-1"], "axes": {"audience": "patient"},
                     "plan_item_id": item_id, **meta}}


ORDER_TOOL = {"type": "function", "function": {
    "name": "lookup_order", "description": "An order's status and total, by its id.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}


def conversation_row(item_id: str, leaf: str, order_id: str = "A-1001", result_note: str = "shipped",
                     reasoning: str = "The customer gave an order id: look it up before answering.") -> dict:
    """A support conversation of seven turns as issue 21 makes them: the assistant calls a tool (with reasoning),
    reads its result, answers, and answers a follow-up."""
    result = json.dumps({"order_id": order_id, "status": "shipped", "total": "42.50 EUR", "note": result_note})
    return {"id": item_id,
            "messages": [{"role": "system", "content": "You are a support agent for a web shop."},
                         {"role": "user", "content": f"Where is my order {order_id}?"},
                         {"role": "assistant", "content": "", "reasoning": reasoning,
                          "tool_calls": [{"id": "call_1", "type": "function",
                                          "function": {"name": "lookup_order", "arguments": {"order_id": order_id}}}]},
                         {"role": "tool", "content": result, "tool_call_id": "call_1", "name": "lookup_order"},
                         {"role": "assistant", "content": f"Order {order_id} has shipped; its total was 42.50 EUR."},
                         {"role": "user", "content": "Can I still change the address?"},
                         {"role": "assistant", "content": "Not once it has shipped; the carrier can redirect it."}],
            "tools": [ORDER_TOOL],
            "meta": {"taxonomy": "toy", "taxonomy_path": leaf, "teacher": "local", "task": "support",
                     "seed_ids": [], "axes": {"channel": "chat"}, "plan_item_id": item_id,
                     "persona": "a customer in a hurry", "simulated_tools": True}}


def make_dataset(directory: Path, per_leaf: int | dict[str, int] = 12, seed: int = 0,
                 extra: list[dict] | None = None) -> Path:
    """A dataset folder: `per_leaf` distinct Q&A items in each of four leaves (or as many as a dict says)."""
    rng = random.Random(seed)
    rows = []
    for leaf, terms in TOPICS.items():
        for i in range(per_leaf if isinstance(per_leaf, int) else per_leaf.get(leaf, 0)):
            term = terms[i % len(terms)]
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 30)))
            rows.append(example_row(f"{leaf.split('/')[-1]}-{i:03d}", leaf,
                                    f"What should I know about {term} (case {i})?",
                                    f"About {term}: {words}. See a clinician if it gets worse."))
    rows += extra or []
    # Written as `distill curate` writes its folder (a dataset of distill's own, which the review may rewrite);
    # a dataset.jsonl the user wrote is left as it is (tests/test_owned_outputs.py).
    folder = OwnedFolder.claim(directory, "curated", force=True)
    folder.write_text("dataset.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return directory


def decide(directory: Path, item_id: str, verdict: str, reviewer: str = "alice", **fields) -> Decision:
    with ReviewLedger.open(directory) as ledger:
        return ledger.add_decision(Decision(item_id=item_id, reviewer=reviewer, verdict=verdict, **fields))


def review_all(directory: Path, reviewer: str = "alice", reject: set[str] = frozenset(), reason: str = "wrong") -> None:
    """Every open review of `reviewer`: reject the ids in `reject`, accept the rest."""
    from distill.review.state import ReviewState

    with ReviewLedger.open(directory) as ledger:
        for item in ReviewState.load(ledger).for_reviewer(reviewer):
            verdict = "reject" if item.item_id in reject else "accept"
            ledger.add_decision(Decision(item_id=item.item_id, reviewer=reviewer, verdict=verdict,
                                         reasons=[reason] if verdict == "reject" else []))


def queue_ids(directory: Path, ids: list[str]) -> None:
    """Queue exactly these items (the gate tests choose what was read, not the sampler)."""
    from distill.curate.dataset_io import load_examples
    from distill.review.model import QueuedItem, QueueRow, ReviewSettings

    examples = {e.id: e for e in load_examples(directory)}
    with ReviewLedger.open(directory) as ledger:
        ledger.save_settings(ReviewSettings())
        ledger.add_to_queue([QueuedItem(item_id=i, node_path=examples[i].meta.taxonomy_path, example=examples[i])
                             for i in ids],
                            [QueueRow(item_id=i, slot=0, ord=k, why="sample") for k, i in enumerate(ids)])


def leaf_ids(leaf: str, count: int, start: int = 0) -> list[str]:
    return [f"{leaf.split('/')[-1]}-{i:03d}" for i in range(start, start + count)]


SERVER_IDS = leaf_ids("respiratory/asthma", 6) + leaf_ids("cardiology/arrhythmias", 6)  # run_dir's queue


def wait_for_decisions(directory: Path, count: int, timeout: float = 20.0) -> list[Decision]:
    """The decisions once `count` have landed (pages and terminals save as they go, in other processes)."""
    deadline = time.time() + timeout
    while True:
        with ReviewLedger.open(directory) as ledger:
            found = ledger.decisions()
        if len(found) >= count or time.time() > deadline:
            return found
        time.sleep(0.05)


def tiny_taxonomy(tmp_path: Path, per_leaf: int) -> Path:
    """tests/fixtures/tiny's QA taxonomy copied, with `per_leaf` items in each of its two leaves."""
    shutil.copytree(TINY, tmp_path / "tiny")
    taxonomy = tmp_path / "tiny" / "qa.yaml"
    taxonomy.write_text(taxonomy.read_text().replace("per_leaf: 2", f"per_leaf: {per_leaf}"))
    return taxonomy
