"""Building the review queue: every leaf, a risk slice first, the rest in proportion to the leaves.

Deterministic for a seed: choices are ranked by a hash of (seed, item id), never by file order.
Adding to a queue (a larger size, `--more`, a regenerated leaf) only appends rows, so decisions
already made stay exactly as they were.

The risk slice over-samples items a reviewer should see first (risk.py); it makes the reject rate
the gate reads, if anything, higher than the set's (a conservative gate).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from distill.errors import DistillError
from distill.records import Example
from distill.review import intervals
from distill.review.ledger import ReviewLedger
from distill.review.model import Neighbour, QueuedItem, QueueRow, ReviewSettings, Signal
from distill.review.neighbours import nearest_neighbours
from distill.review.population import load_population
from distill.review.risk import signals as risk_signals
from distill.review.state import ReviewState
from distill.rundir import RunDir, hold_run
from distill.taxonomy.plan import apportion

RISK_SHARE = 0.25  # of each addition, at most, comes from the risk slice


def rank(seed: int, item_id: str) -> str:
    return hashlib.sha256(f"{seed}:{item_id}".encode()).hexdigest()


def default_size(population: int, leaves: int, settings: ReviewSettings) -> int:
    """Enough reviews for the whole-set bound to pass when the true reject rate is a quarter of the
    threshold (69 at 10% with Wilson), at least one a leaf, at most everything."""
    target = settings.threshold / 4
    n = intervals.min_reviews_to_pass(settings.threshold, settings.interval, settings.confidence)
    while intervals.interval(math.ceil(n * target), n, settings.interval, settings.confidence)[1] >= settings.threshold:
        n += 1
    return min(population, max(leaves, n))


@dataclass
class QueueReport:
    added: int
    queued: int  # items in the queue now
    population: int
    risk: int  # of the added, taken for a risk signal
    leaves: int
    note: str = ""


def _leaf(example: Example) -> str:
    return example.meta.taxonomy_path or "(none)"


def choose(candidates: list[Example], covered: set[str], count: int, seed: int,
           signals: dict[str, list[Signal]]) -> list[tuple[Example, str]]:
    """`count` items from `candidates`: one for every leaf not `covered` yet, then up to RISK_SHARE by
    risk, then the rest apportioned to leaves by their size. Returned in review order: the risk
    slice first, then leaves interleaved so any prefix spreads over the tree."""
    order = sorted(candidates, key=lambda e: rank(seed, e.id))
    by_leaf: dict[str, list[Example]] = defaultdict(list)
    for example in order:
        by_leaf[_leaf(example)].append(example)
    chosen: dict[str, tuple[Example, str]] = {}

    def risk_of(example: Example) -> float:
        found = signals.get(example.id) or []
        return found[0].score if found else 0.0

    for leaf in sorted(by_leaf, key=lambda name: rank(seed, name)):
        if leaf not in covered and len(chosen) < count:
            pick = max(by_leaf[leaf], key=risk_of)  # the riskiest, else the first by rank
            chosen[pick.id] = (pick, "risk" if risk_of(pick) > 0 else "leaf")
    risky = sorted((e for e in order if e.id not in chosen and risk_of(e) > 0), key=lambda e: -risk_of(e))
    slice_left = round(count * RISK_SHARE) - sum(why == "risk" for _, why in chosen.values())
    for example in risky[: max(0, min(count - len(chosen), slice_left))]:
        chosen[example.id] = (example, "risk")
    left = count - len(chosen)
    if left > 0:
        remaining = {leaf: [e for e in items if e.id not in chosen] for leaf, items in by_leaf.items()}
        remaining = {leaf: items for leaf, items in remaining.items() if items}
        shares = _apportion_capped({leaf: len(items) for leaf, items in remaining.items()}, left, seed)
        for leaf, share in shares.items():
            for example in remaining[leaf][:share]:
                chosen[example.id] = (example, "sample")
    return _review_order(list(chosen.values()), seed, risk_of)


def _apportion_capped(sizes: dict[str, int], count: int, seed: int) -> dict[str, int]:
    """Split `count` over leaves in proportion to their sizes, never more than a leaf holds."""
    count = min(count, sum(sizes.values()))
    shares = dict.fromkeys(sizes, 0)
    rng = random.Random(seed)
    while count > 0:
        room = {leaf: size - shares[leaf] for leaf, size in sizes.items() if size > shares[leaf]}
        extra = apportion({leaf: float(size) for leaf, size in room.items()}, count, rng)
        for leaf, n in extra.items():
            take = min(n, room[leaf])
            shares[leaf] += take
            count -= take
    return shares


def _review_order(chosen: list[tuple[Example, str]], seed: int, risk_of) -> list[tuple[Example, str]]:
    risk = sorted((c for c in chosen if c[1] == "risk"), key=lambda c: -risk_of(c[0]))
    rest: dict[str, list[tuple[Example, str]]] = defaultdict(list)
    for pair in sorted((c for c in chosen if c[1] != "risk"), key=lambda c: (c[1] != "leaf", rank(seed, c[0].id))):
        rest[_leaf(pair[0])].append(pair)
    leaves = sorted(rest, key=lambda name: rank(seed, name))
    interleaved = [rest[leaf][i] for i in range(max((len(v) for v in rest.values()), default=0))
                   for leaf in leaves if i < len(rest[leaf])]
    return risk + interleaved


def queue_rows(chosen: list[tuple[Example, str]], start: int, settings: ReviewSettings, round_: int) -> list[QueueRow]:
    """Slot 0 for each item; slot 1 too for the overlap share (named reviewers take turns when given)."""
    rows = []
    names = settings.reviewers
    for k, (example, reason) in enumerate(chosen):
        ordinal = start + k
        overlap = int(rank(settings.seed, "overlap:" + example.id)[:8], 16) / 16**8 < settings.overlap
        first = names[ordinal % len(names)] if overlap and len(names) >= 2 else None
        second = names[(ordinal + 1) % len(names)] if overlap and len(names) >= 2 else None
        rows.append(QueueRow(item_id=example.id, slot=0, ord=ordinal, assigned=first, why=reason, round=round_))
        if overlap:
            rows.append(QueueRow(item_id=example.id, slot=1, ord=ordinal, assigned=second, why=reason,
                                 round=round_))
    return rows


def queued_items(chosen: list[tuple[Example, str]], neighbours: dict[str, Neighbour],
                 found: dict[str, list[Signal]]) -> list[QueuedItem]:
    return [QueuedItem(item_id=e.id, node_path=e.meta.taxonomy_path, example=e, signals=found.get(e.id, []),
                       neighbour=neighbours.get(e.id)) for e, _ in chosen]


@contextmanager
def _held_store(directory: Path) -> Iterator[tuple[Path, ReviewLedger]]:
    """The folder held (hold_run) and its review store open; run.db is distill's there, never a user's own."""
    with hold_run(Path(directory)) as held:
        RunDir(held).reserve_store()
        with ReviewLedger.open(held) as ledger:
            yield held, ledger


def build_queue(directory: Path, settings: ReviewSettings | None = None, more: int | None = None,
                add_ids: list[str] | None = None, why: str | None = None) -> QueueReport:
    """Create the queue of `directory`, or grow it: to `settings.size` / `settings.sample` items, by
    `more` items, or by the items `add_ids` (a regenerated leaf's). Settings given are saved."""
    with _held_store(directory) as (directory, ledger):
        state = ReviewState.load(ledger)
        stored = ledger.settings() if state.has_queue else ReviewSettings()
        settings = settings or stored
        population = load_population(directory, state)
        if not population:
            raise DistillError("no items to review: dataset.jsonl is missing or empty", path=directory)
        queued = set(state.items)
        leaves = {_leaf(e) for e in population}
        neighbours = nearest_neighbours(population)
        found = risk_signals(population, neighbours)
        if add_ids is not None:
            wanted = set(add_ids)
            chosen = [(e, why or "regenerated") for e in population if e.id in wanted and e.id not in queued]
        else:
            if more is not None:
                target = len(queued) + more
            elif settings.size is not None:
                target = settings.size
            elif settings.sample is not None:
                target = round(settings.sample * len(population))
            else:
                target = len(queued) if queued else default_size(len(population), len(leaves), settings)
            target = min(len(population), max(target, len(leaves)))
            candidates = [e for e in population if e.id not in queued]
            covered = {_leaf(state.items[i].item.example) for i in queued}
            chosen = choose(candidates, covered, max(0, target - len(queued)), settings.seed, found)
        note = ""
        if settings.size is not None and settings.size < len(leaves) and not queued:
            note = f"raised to {len(leaves)} items: at least one for each leaf"
        ledger.save_settings(settings)
        if chosen:
            round_ = max((s.round for s in state.items.values()), default=-1) + 1
            ledger.add_to_queue(queued_items(chosen, neighbours, found),
                                queue_rows(chosen, ledger.next_ord(), settings, round_))
        return QueueReport(added=len(chosen), queued=len(queued) + len(chosen), population=len(population),
                           risk=sum(reason == "risk" for _, reason in chosen), leaves=len(leaves), note=note)
