"""From the append-only decision log to where each queued item stands.

Each (item, reviewer) pair keeps a stack of standing decisions: a verdict pushes, an undo removes the
decision it names, so undoing an edit brings back the accept before it. An item's outcome combines
its reviewers' standing verdicts: any reject wins (one reader finding a defect is enough to drop it),
else the latest edit, else accept; skips count as no review.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from distill.records import Decision, Message
from distill.review.ledger import ReviewLedger
from distill.review.model import QueuedItem, QueueRow, ReviewSettings

KEEP, REJECT, EDIT, ACCEPT = "keep", "reject", "edit", "accept"


@dataclass
class ItemState:
    item: QueuedItem
    ord: int
    why: str
    round: int
    assigned: list[str | None]  # one entry a slot
    stacks: dict[str, list[Decision]] = field(default_factory=dict)  # reviewer -> standing decisions, oldest first
    history: list[Decision] = field(default_factory=list)

    @property
    def standing(self) -> dict[str, Decision]:
        """reviewer -> their decision in force (skips included)."""
        return {name: stack[-1] for name, stack in self.stacks.items() if stack}

    @property
    def item_id(self) -> str:
        return self.item.item_id

    @property
    def reviews(self) -> dict[str, Decision]:
        """Standing verdicts that count (not skips), in the order they were made."""
        return {name: d for name, d in sorted(self.standing.items(), key=lambda kv: kv[1].id or 0)
                if d.verdict != "skip"}

    @property
    def slots(self) -> int:
        return len(self.assigned)

    def open_slots(self) -> list[str | None]:
        """The slots no review fills yet (a slot named for a reviewer is filled by that reviewer first)."""
        free = list(self.assigned)
        for name in self.reviews:
            if name in free:
                free.remove(name)
            elif None in free:
                free.remove(None)
        return free

    @property
    def done(self) -> bool:
        return not self.open_slots()

    def wants(self, reviewer: str) -> bool:
        """Whether `reviewer` still has a review to give here."""
        if reviewer in self.reviews:
            return False
        free = self.open_slots()
        return reviewer in free or None in free

    @property
    def outcome(self) -> str | None:
        verdicts = [d.verdict for d in self.reviews.values()]
        if not verdicts:
            return None
        if REJECT in verdicts:
            return REJECT
        return EDIT if EDIT in verdicts else ACCEPT

    @property
    def reasons(self) -> list[str]:
        found: list[str] = []
        for d in self.reviews.values():
            if d.verdict == REJECT:
                found += [r for r in d.reasons if r not in found]
        return found or (["other"] if self.outcome == REJECT else [])

    def latest_edit(self) -> Decision | None:
        edits = [d for d in self.reviews.values() if d.verdict == EDIT and d.messages is not None]
        return max(edits, key=lambda d: d.id or 0) if edits else None

    def messages(self) -> list[Message]:
        """What the item says now: the latest standing edit, else the original."""
        edit = self.latest_edit()
        return list(edit.messages) if edit and edit.messages is not None else list(self.item.example.messages)


@dataclass
class ReviewState:
    settings: ReviewSettings
    items: dict[str, ItemState]  # queued items, in queue order
    decisions: list[Decision]
    regenerated: dict[str, tuple[str, int]]  # plan item id -> (leaf, round)

    @classmethod
    def load(cls, ledger: ReviewLedger) -> ReviewState:
        return build_state(ledger.settings(), ledger.items(), ledger.queue(), ledger.decisions(),
                           ledger.regenerated())

    @property
    def has_queue(self) -> bool:
        return bool(self.items)

    def for_reviewer(self, reviewer: str) -> list[ItemState]:
        """The items `reviewer` still has to review, in queue order; their own skips go last."""
        todo = [s for s in self.items.values() if s.wants(reviewer)]
        return sorted(todo, key=lambda s: (reviewer in s.standing, s.ord))

    def undoable(self, reviewer: str) -> Decision | None:
        """The reviewer's latest decision still standing: what `undo` takes back."""
        standing = {d.id for s in self.items.values() for d in s.stacks.get(reviewer, [])}
        for d in reversed(self.decisions):
            if d.reviewer == reviewer and d.id in standing:
                return d
        return None

    def round_of(self, example_id: str, plan_item_id: str | None = None) -> int:
        return self.regenerated.get(plan_item_id or example_id, self.regenerated.get(example_id, ("", 0)))[1]

    def latest_rounds(self) -> dict[str, int]:
        """leaf -> its latest regeneration round (leaves never regenerated are absent)."""
        latest: dict[str, int] = {}
        for leaf, r in self.regenerated.values():
            latest[leaf] = max(r, latest.get(leaf, 0))
        return latest


def build_state(settings: ReviewSettings, items: dict[str, QueuedItem], queue: list[QueueRow],
                decisions: list[Decision], regenerated: dict[str, tuple[str, int]]) -> ReviewState:
    states: dict[str, ItemState] = {}
    for row in queue:
        state = states.get(row.item_id)
        if state is None:
            state = states[row.item_id] = ItemState(item=items[row.item_id], ord=row.ord, why=row.why,
                                                    round=row.round, assigned=[])
        state.assigned.append(row.assigned)
    for d in decisions:
        state = states.get(d.item_id)
        if state is None:
            continue
        state.history.append(d)
        stack = state.stacks.setdefault(d.reviewer, [])
        if d.verdict == "undo":
            stack[:] = [s for s in stack if s.id != d.undoes]
        else:
            stack.append(d)
    return ReviewState(settings=settings, items=states, decisions=decisions, regenerated=regenerated)
