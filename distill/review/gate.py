"""The gate: may this data train a model? A yes/no from the review, which training respects.

It passes when every queued review is in and, for the whole set and for each taxonomy branch with
enough reviewed items to be judged alone, the upper end of the 95% interval on the reject rate is
under the threshold (default 10%). "Enough" is the fewest reviews that could pass at all (35 at 10%
with Wilson's interval: a bound under 10% needs that many clean reviews), so a leaf with fewer is
judged with its siblings, inside its parent's branch. A branch whose every current item was read
passes whatever its rate: its rejects are gone from the data and nothing unread remains. When every one of
them was rejected it is "emptied", not "pass": nothing of it is left to train on, which a person should see;
the gate fails only when the whole set is emptied (there is no data at all).

After `distill review regenerate` a leaf is judged on its newest round only: the earlier round's
unread items leave the data (feedback.py), so its old reject rate no longer describes what trains.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from distill.errors import ReviewPending
from distill.records import Example
from distill.review import intervals
from distill.review.population import load_review
from distill.review.state import ACCEPT, EDIT, REJECT, ReviewState
from distill.tally import ALL, Tallies


class Unit(BaseModel):
    """The whole set or one taxonomy branch, as the gate sees it."""

    name: str
    items: int  # current items in the data before review
    reviewed: int
    rejected: int
    edited: int
    accepted: int
    reject_rate: float | None
    ci: tuple[float, float] | None  # the 95% (or configured) interval on the reject rate
    judged: bool  # enough reviews to be judged on its own (always true for the whole set)
    verdict: str  # pass | fail | undecided | small (not judged alone) | unread | emptied (read, all rejected)
    more: int | None = None  # reviews that would decide it (None: cannot say)

    @property
    def unread(self) -> int:
        return self.items - self.reviewed


class GateResult(BaseModel):
    verdict: str  # pass | fail | waiting (reviews still open) | none (no queue)
    message: str
    threshold: float
    interval: str
    confidence: float
    min_reviews: int  # to judge a branch alone
    open_reviews: int
    queued_reviews: int
    units: list[Unit]

    @property
    def passed(self) -> bool:
        return self.verdict in ("pass", "none")


@dataclass
class Census:
    """What the gate needs of the data, counted once: each item's leaf and regeneration round. A review
    session keeps one, so judging after each decision costs the queue's size, not the dataset's."""

    where: dict[str, tuple[str, int]]  # item id -> (leaf, round)
    counts: dict[tuple[str, int], int]  # (leaf, round) -> items

    @classmethod
    def of(cls, state: ReviewState, population: list[Example]) -> Census:
        where = {e.id: (e.meta.taxonomy_path or "", state.round_of(e.id, e.meta.plan_item_id)) for e in population}
        return cls(where=where, counts=dict(Counter(where.values())))

    def is_current(self, leaf: str, round_: int, latest: dict[str, int]) -> bool:
        """Each leaf's newest round is judged (every item, when nothing was regenerated)."""
        return round_ >= latest.get(leaf, 0)


def census_of(state: ReviewState, population: list[Example] | Census) -> Census:
    return population if isinstance(population, Census) else Census.of(state, population)


def units(state: ReviewState, population: list[Example] | Census) -> list[Unit]:
    settings = state.settings
    census = census_of(state, population)
    latest = state.latest_rounds()
    need = intervals.min_reviews_to_pass(settings.threshold, settings.interval, settings.confidence)
    tallies = Tallies()  # `kept`: the items in the data, before review
    for (leaf, round_), count in census.counts.items():
        if census.is_current(leaf, round_, latest):
            tallies.add(leaf or None, count, kept=1)
    for item in state.items.values():
        leaf, round_ = census.where.get(item.item_id, ("", -1))
        outcome = item.outcome
        if round_ < 0 or outcome is None or not census.is_current(leaf, round_, latest):
            continue
        tallies.add(leaf or None, rejected=outcome == REJECT, edited=outcome == EDIT, accepted=outcome == ACCEPT)
    out = []
    for name in [ALL, *sorted(n for n in tallies if n != ALL)]:
        t = tallies[name]
        judged = name == ALL or t.reviewed >= need
        ci = (intervals.interval(t.rejected, t.reviewed, settings.interval, settings.confidence)
              if t.reviewed else None)
        more = None
        if t.reviewed == t.kept:
            verdict = "unread" if not t.kept else "emptied" if t.rejected == t.reviewed else "pass"
        elif not judged:
            verdict = "small"
        elif ci is not None and ci[1] < settings.threshold:
            verdict = "pass"
        else:
            verdict = "fail" if ci is not None and ci[0] > settings.threshold else "undecided"
            more = intervals.reviews_to_decide(t.rejected, t.reviewed, settings.threshold, settings.interval,
                                               settings.confidence)
            more = t.kept - t.reviewed if more is None else min(more, t.kept - t.reviewed)
        out.append(Unit(name=name, items=t.kept, reviewed=t.reviewed, rejected=t.rejected, edited=t.edited,
                        accepted=t.accepted, reject_rate=t.rejected / t.reviewed if t.reviewed else None,
                        ci=ci, judged=judged, verdict=verdict, more=more))
    return out


def evaluate(state: ReviewState, population: list[Example] | Census, directory: Path | str = "DIR") -> GateResult:
    settings = state.settings
    need = intervals.min_reviews_to_pass(settings.threshold, settings.interval, settings.confidence)
    common = dict(threshold=settings.threshold, interval=settings.interval, confidence=settings.confidence,
                  min_reviews=need)
    if not state.has_queue:
        return GateResult(verdict="none", message="no review queue: the gate does not apply", open_reviews=0,
                          queued_reviews=0, units=[], **common)
    census = census_of(state, population)
    live = [s for s in state.items.values() if s.item_id in census.where]
    queued = sum(s.slots for s in live)
    open_reviews = sum(len(s.open_slots()) for s in live)
    found = units(state, census)
    failing = [u for u in found if u.verdict in ("fail", "undecided")]
    if open_reviews:
        verdict = "waiting"
        message = (f"waiting for review: {open_reviews} of {queued} queued reviews still open; review with "
                   f"`distill review {directory} --serve` (or --cli), then run this again")
    elif found and found[0].verdict == "emptied":
        verdict = "fail"
        message = (f"review gate: every one of the {found[0].reviewed} items was rejected in review, so nothing "
                   f"is left to train on: regenerate the data (`distill review regenerate {directory} --leaf LEAF "
                   "--taxonomy FILE`) or generate again with a stronger teacher")
    elif failing:
        verdict = "fail"
        message = _failure_message(failing, settings, directory)
    else:
        verdict = "pass"
        overall = found[0]
        message = (f"review passed: {overall.rejected} rejects in {overall.reviewed} reviews, reject rate at most "
                   f"{_pct(overall.ci[1]) if overall.ci else 'n/a'} < {_pct(settings.threshold)}")
        emptied = [u.name for u in found if u.verdict == "emptied"]
        if emptied:
            message += f"; every item of {', '.join(emptied)} was rejected: nothing of it trains"
    return GateResult(verdict=verdict, message=message, open_reviews=open_reviews, queued_reviews=queued,
                      units=found, **common)


def _failure_message(failing: list[Unit], settings, directory) -> str:
    # The branch most clearly over the line first: the highest lower bound.
    worst = max(failing, key=lambda u: (u.verdict == "fail", u.ci[0] if u.ci else 0.0))
    where = "the whole set" if worst.name == ALL else worst.name
    # (No interval: the whole set with nothing reviewed, when no queued item is current any more.)
    bound = f"up to {_pct(worst.ci[1])} ({settings.confidence:.0%} {settings.interval} bound)" if worst.ci \
        else "unknown (nothing reviewed)"
    head = (f"review gate: {where}: {worst.rejected} rejects in {worst.reviewed} reviews, reject rate {bound}, "
            f"threshold {_pct(settings.threshold)}")
    if worst.verdict == "fail":
        fix = (f"regenerate it (`distill review regenerate {directory} --leaf {worst.name} --taxonomy FILE`)"
               if worst.name != ALL
               else "regenerate the worst leaves (`distill review status` lists them)")
        tail = f"; it is above the threshold: {fix} or review all {worst.unread} unread items"
    else:
        tail = f"; about {worst.more} more reviews would decide it (`distill review {directory} --more {worst.more}`)"
    others = len(failing) - 1
    return head + tail + (f"; {others} more branch(es) fail too" if others else "")


def _pct(value: float) -> str:
    return f"{value:.1%}"


def require_pass(directory: Path, force: bool = False, say=None) -> GateResult:
    """The gate for a run directory, for `distill train` and `distill run`: raises ReviewPending
    (exit code 4) unless it passes, there is no queue, or `force` (which is said and returned)."""
    review = load_review(Path(directory))
    if review is None:
        return GateResult(verdict="none", message="no review queue", threshold=0.0, interval="wilson",
                          confidence=0.95, min_reviews=0, open_reviews=0, queued_reviews=0, units=[])
    result = evaluate(review.state, review.population, directory)
    if result.passed:
        return result
    if force:
        if say:
            say(f"--force: training despite the review gate ({result.message})")
        return result
    raise ReviewPending(result.message)


def top_reasons(state: ReviewState, present: Container[str] | None = None) -> dict[str, int]:
    counts: Counter = Counter()
    for item in state.items.values():
        if item.outcome == REJECT and (present is None or item.item_id in present):
            counts.update(item.reasons)
    return dict(counts.most_common())
