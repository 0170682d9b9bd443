"""The review, applied to the data: what leaves, what changes, and the figures for stats.json.

`apply_review` is the one place verdicts act on examples, and it runs only where a run's files are rebuilt:
the end of every generation (`review_in_store`, from `finish_run`) and `rebuild`, the review stage, which
rewrites dataset.jsonl, rejected.jsonl, stats.json["review"] and the split (train.jsonl, eval.jsonl) from the
decisions. `distill review status`, the end of a review session, `distill run`, `distill train` and every reader
of the split (`train.data.load_splits`) rebuild first, so a split written before the review never trains on a
rejected item or an unedited original, even where dataset.jsonl is the user's and left as written. It is
idempotent: applying it to data it already shaped changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from statistics import median
from typing import Any

from distill.records import REVIEW_REASONS, Example, Reject
from distill.review.agreement import reject_agreement
from distill.review.calibration import calibration_table, check_settings, judge_calls
from distill.review.gate import Census, census_of, evaluate, top_reasons
from distill.review.ledger import ReviewLedger
from distill.review.population import LoadedReview, load_review
from distill.review.state import ACCEPT, EDIT, REJECT, ReviewState
from distill.rundir import DATASET, REJECTED, STATS, RunDir
from distill.store import RunStore


def review_in_store(store, curated: list[Example], directory: Path) -> tuple[list[Example], list[Reject], dict | None]:
    """For a run's export (`finish_run`): the review applied to what curation kept, and its figures for
    stats.json; (curated, [], None) when the run has no queue."""
    state = ReviewState.load(ReviewLedger(store))
    if not state.has_queue:
        return curated, [], None
    population = [state.items[e.id].item.example if e.id in state.items else e for e in curated]
    kept, rejects = apply_review(population, state)
    figures = summary(state, population, directory)
    figures["calibration"] = _calibration(state, store, directory)
    return kept, rejects, figures


def apply_review(examples: list[Example], state: ReviewState) -> tuple[list[Example], list[Reject]]:
    """(kept, rejects): rejected items leave with the reviewer's reason; edited items carry the latest
    edit, with provenance in meta["review"]; a regenerated leaf's earlier round leaves unless a
    reviewer kept it. Items nobody reviewed pass as they are."""
    latest = state.latest_rounds()
    kept: list[Example] = []
    rejects: list[Reject] = []
    for example in examples:
        item = state.items.get(example.id)
        outcome = item.outcome if item else None
        leaf = example.meta.taxonomy_path or ""
        if item is not None and outcome == REJECT:
            reviews = [d for d in item.reviews.values() if d.verdict == REJECT]
            notes = "; ".join(f"{d.reviewer}: {d.note}" for d in reviews if d.note)
            labels = ", ".join(REVIEW_REASONS.get(r, r) for r in item.reasons)
            detail = f"rejected by {', '.join(d.reviewer for d in reviews)} ({labels})" + (f": {notes}" if notes else "")
            rejects.append(Reject(id=example.id, stage="review", reason=item.reasons[0], detail=detail,
                                  example=item.item.example, node_path=example.meta.taxonomy_path))
            continue
        if outcome is None and state.round_of(example.id, example.meta.plan_item_id) < latest.get(leaf, 0):
            rejects.append(Reject(id=example.id, stage="review", reason="superseded", example=example,
                                  detail=f"unread item of {leaf} from before its regeneration (round {latest[leaf]})",
                                  node_path=example.meta.taxonomy_path))
            continue
        if outcome in (EDIT, ACCEPT):
            example = _with_provenance(example, item, outcome)
        kept.append(example)
    return kept, rejects


def _with_provenance(example: Example, item, outcome: str) -> Example:
    original = item.item.example
    review: dict[str, Any] = {"verdict": outcome, "reviewers": sorted(item.reviews)}
    if outcome == EDIT:
        edit = item.latest_edit()
        review.update(decision=edit.id, edited_by=edit.reviewer, original_sha256=_messages_sha256(original))
        example = example.model_copy(update={"messages": list(edit.messages)})
    meta = example.meta.model_copy(update={"review": review})
    return example.model_copy(update={"meta": meta})


def _messages_sha256(example: Example) -> str:
    payload = json.dumps([m.model_dump() for m in example.messages], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def summary(state: ReviewState, population: list[Example] | Census, directory: Path | str = "DIR") -> dict[str, Any]:
    """The review's figures, as stats.json's "review" key and the model card show them."""
    census = census_of(state, population)
    gate = evaluate(state, census, directory)
    present = census.where
    live = [s for s in state.items.values() if s.item_id in present]
    outcomes = [s.outcome for s in live]
    skipped = sum(1 for s in live if s.outcome is None and any(d.verdict == "skip" for d in s.standing.values()))
    overall = gate.units[0] if gate.units else None
    seconds = [d.seconds for d in state.decisions if d.seconds and d.verdict in ("accept", "reject", "edit")]
    reviewers: dict[str, int] = {}
    for s in live:
        for name in s.reviews:
            reviewers[name] = reviewers.get(name, 0) + 1
    pairs = []  # (reviewer, verdict) of the first two reviews of each item two people read
    for s in live:
        if len(s.reviews) >= 2:
            (a, first), (b, second) = list(s.reviews.items())[:2]
            pairs.append(((a, str(first.verdict)), (b, str(second.verdict))))
    agreement = reject_agreement(pairs)
    return {
        "queued": len(live),
        "reviewed": sum(o is not None for o in outcomes),
        "accepted": outcomes.count(ACCEPT),
        "rejected": outcomes.count(REJECT),
        "edited": outcomes.count(EDIT),
        "skipped": skipped,
        "open_reviews": gate.open_reviews,
        "items_judged": overall.items if overall else 0,
        "reject_rate": overall.reject_rate if overall else None,
        "reject_rate_ci": list(overall.ci) if overall and overall.ci else None,
        "interval": f"{gate.confidence:.0%} {gate.interval}",
        "gate": {"verdict": gate.verdict, "threshold": gate.threshold, "message": gate.message,
                 "min_reviews_per_branch": gate.min_reviews,
                 "reviews_to_decide": overall.more if overall else None},
        "top_reasons": top_reasons(state, present),
        "agreement": agreement.model_dump() if agreement else None,
        "reviewers": reviewers,
        "median_seconds_per_item": round(median(seconds), 1) if seconds else None,
        "overall": _unit(overall) if overall else None,
        "branches": {u.name: _unit(u) for u in gate.units if u.name != "(all)"},
    }


def _calibration(state: ReviewState, store: RunStore, directory: Path) -> list[dict[str, Any]]:
    """Each automated check's precision and recall against the reviewers (calibration.py), for stats.json."""
    return [row.model_dump(mode="json") for row in calibration_table(state, judge_calls(store),
                                                                      check_settings(directory))]


def _unit(u) -> dict[str, Any]:
    return {"items": u.items, "reviewed": u.reviewed, "rejected": u.rejected, "edited": u.edited,
            "accepted": u.accepted, "reject_rate": u.reject_rate, "ci": list(u.ci) if u.ci else None,
            "judged": u.judged, "verdict": u.verdict, "reviews_to_decide": u.more}


def refresh_files(directory: Path | RunDir, say: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """`rebuild` for a folder given by its path (`distill review status` and the end of a review session)."""
    return rebuild(directory if isinstance(directory, RunDir) else RunDir(directory), say)


def rebuild(run_dir: RunDir, say: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """The review stage: rewrite dataset.jsonl, rejected.jsonl, stats.json["review"] and the split (train.jsonl,
    eval.jsonl, when there is one) from the decisions; the summary, or None when there is no queue. Originals
    stay in run.db, so every rewrite can be undone. A dataset.jsonl, rejected.jsonl or stats.json distill did not
    write (a dataset the user made) is left as it is, and `say` is told: the split, which is distill's, still
    gets the review, so training and export read what it decided."""
    with run_dir.hold():  # not while a generate rewrites dataset.jsonl
        review = load_review(run_dir)
        if review is None:
            return None
        return _rebuild(run_dir, review, say)


def _rebuild(run_dir: RunDir, review: LoadedReview, say: Callable[[str], None] | None) -> dict[str, Any]:
    kept, rejects = apply_review(review.population, review.state)
    figures = summary(review.state, review.population, run_dir.root)
    with closing(run_dir.open_store()) as store:
        figures["calibration"] = _calibration(review.state, store, run_dir.root)
    theirs = run_dir.users_files((DATASET, REJECTED, STATS))
    if theirs and say is not None:
        say(f"note: {', '.join(theirs)} in {run_dir.root} {'is' if len(theirs) == 1 else 'are'} not distill's: left "
            "as written; training and export apply the review when they read it")
    if DATASET not in theirs:
        run_dir.write_dataset(kept)
    if REJECTED not in theirs:
        earlier = [row for row in run_dir.read_rejected_rows() if row.get("stage") != "review"]
        run_dir.write_rejected([*earlier, *rejects])
    if STATS not in theirs:
        stats = run_dir.read_stats()
        stats["review"] = figures
        if isinstance(stats.get("counts"), dict):
            stats["counts"]["kept"] = len(kept)
        run_dir.write_stats(stats)
    _review_split(run_dir, review)
    return figures


def rebuild_split(run_dir: RunDir) -> bool:
    """The review applied to the split alone (train.jsonl, eval.jsonl), for a reader of the split that did not
    rebuild the rest (`train.data.load_splits`); whether the folder has a review."""
    with run_dir.hold():
        review = load_review(run_dir)
        if review is not None:
            _review_split(run_dir, review)
        return review is not None


def _review_split(run_dir: RunDir, review: LoadedReview) -> None:
    """Rejected items out of both sides of the split, edits in (written only when that changes them)."""
    if not run_dir.has_split():
        return
    train, held_out = run_dir.read_split()
    reviewed = apply_review(train, review.state)[0], apply_review(held_out, review.state)[0]
    if reviewed != (train, held_out):
        run_dir.write_split(*reviewed)
