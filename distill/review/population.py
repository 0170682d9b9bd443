"""The review of a folder as loaded: where each queued item stands, and the items the review judges. The gate,
the queue, the session and the feedback all start from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill.curate.dataset_io import load_examples
from distill.records import Example
from distill.review.ledger import ReviewLedger
from distill.review.state import ReviewState
from distill.rundir import RunDir


@dataclass
class LoadedReview:
    state: ReviewState
    population: list[Example]  # the items the review judges, as curated (queued ones as queued)


def load_review(directory: Path | RunDir) -> LoadedReview | None:
    """The review of a run directory or dataset folder; None when it has no queue."""
    run_dir = directory if isinstance(directory, RunDir) else RunDir(directory)
    if not run_dir.has_store():
        return None
    with ReviewLedger.open(run_dir.root) as ledger:
        state = ReviewState.load(ledger)
        if not state.has_queue:
            return None
        return LoadedReview(state=state, population=load_population(run_dir.root, state))


def load_population(directory: Path, state: ReviewState) -> list[Example]:
    """dataset.jsonl as curated: a rebuilt file lacks the rejected items and holds edited versions, so
    queued items are taken as they were queued."""
    run_dir = RunDir(directory)
    examples = load_examples(run_dir.dataset) if run_dir.has_dataset() else []
    seen = {e.id for e in examples}
    population = [state.items[e.id].item.example if e.id in state.items else e for e in examples]
    return population + [s.item.example for s in state.items.values() if s.item_id not in seen]
