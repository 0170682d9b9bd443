"""A review in progress: the queue as a reviewer works through it, for the web page and the terminal.

The queued items are read once (and again only when the queue grows); decisions are read
incrementally, so a request costs milliseconds however long the review has run. Several reviewers
share one session on the web page; claims keep two of them off the same card at the same moment.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.records import REVIEW_REASONS, Decision, Message
from distill.review.cards import Card, make_card, seed_texts
from distill.review.feedback import summary
from distill.review.gate import Census
from distill.review.ledger import ReviewLedger
from distill.review.population import load_population
from distill.review.sources import RecordedDocuments
from distill.review.state import ReviewState, build_state

CLAIM_S = 120.0  # a card opened by one reviewer is not handed to another for this long
VERDICTS = ("accept", "reject", "edit", "skip")


class BadDecision(ValueError):
    """A decision the session refuses (unknown item, missing reason, an edit that changes the roles)."""


class ReviewSession:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.ledger = ReviewLedger.open(self.directory)
        if not self.ledger.has_queue():
            self.ledger.close()
            raise DistillError(f"no review queue yet: build one with `distill review {self.directory}`",
                               path=self.directory)
        self.seeds = seed_texts(self.directory)
        self.documents = RecordedDocuments.of(self.directory)
        self._queue_size = -1
        self._decisions: list[Decision] = []
        self._claims: dict[str, tuple[str, float]] = {}
        self.state()  # loads the queue and the settings

    def close(self) -> None:
        self.ledger.close()

    def state(self) -> ReviewState:
        size = self.ledger.queue_size()
        if size != self._queue_size:
            self._queue_size = size
            self._items, self._queue = self.ledger.items(), self.ledger.queue()
            self._regenerated = self.ledger.regenerated()
            self.settings = self.ledger.settings()
            self._census = None
        last = self._decisions[-1].id if self._decisions else 0
        self._decisions += self.ledger.decisions(after=last or 0)
        state = build_state(self.settings, self._items, self._queue, self._decisions, self._regenerated)
        if self._census is None:
            self._census = Census.of(state, load_population(self.directory, state))
        return state

    # reading
    def card(self, item_id: str, reviewer: str) -> Card:
        state = self.state()
        if item_id not in state.items:
            raise BadDecision(f"{_quoted(item_id)} is not in the review queue")
        self._claims[item_id] = (reviewer, time.monotonic() + CLAIM_S)
        return make_card(state.items[item_id], reviewer, self.seeds, self.documents)

    def claimed_by_other(self, item_id: str, reviewer: str) -> bool:
        claim = self._claims.get(item_id)
        return claim is not None and claim[0] != reviewer and claim[1] > time.monotonic()

    def overview(self, reviewer: str) -> dict[str, Any]:
        """The queue as this reviewer sees it, progress overall and per leaf, and the gate."""
        state = self.state()
        items: list[dict[str, Any]] = []
        leaves: dict[str, dict[str, int]] = {}
        for s in state.items.values():
            leaf = s.item.node_path or "(none)"
            mine = s.standing.get(reviewer)
            items.append({"id": s.item_id, "leaf": leaf, "why": s.why, "slots": s.slots, "done": s.done,
                          "mine": mine.verdict if mine else None, "outcome": s.outcome, "reasons": s.reasons,
                          "todo": s.wants(reviewer), "claimed": self.claimed_by_other(s.item_id, reviewer)})
            row = leaves.setdefault(leaf, {"items": 0, "done": 0, "rejected": 0})
            row["items"] += 1
            row["done"] += s.done
            row["rejected"] += s.outcome == "reject"
        assert self._census is not None  # counted by state()
        figures = summary(state, self._census, self.directory)
        return {
            "reviewer": reviewer,
            "items": items,
            "progress": {"items": len(items), "done": sum(i["done"] for i in items),
                         "mine": sum(i["mine"] not in (None, "skip") for i in items),
                         "todo": sum(i["todo"] for i in items), "leaves": leaves},
            "gate": figures["gate"],
            "figures": {k: figures[k] for k in ("reviewed", "accepted", "rejected", "edited", "skipped",
                                                "reject_rate", "reject_rate_ci", "interval", "agreement")},
        }

    # writing
    def decide(self, reviewer: str, item_id: str, verdict: str, reasons: list[str] | None = None, note: str = "",
               messages: Sequence[dict | Message] | None = None, seconds: float | None = None,
               client_id: str | None = None, turn: int | None = None) -> Decision:
        """Record one verdict. `turn` (1-based, the system turn counted) names the turn of a conversation a reject
        is about; it is written at the head of the note ("turn 5 (assistant): ..."), where the reject's detail in
        rejected.jsonl and the item's history show it."""
        state = self.state()
        item = state.items.get(item_id)
        if item is None:
            raise BadDecision(f"{_quoted(item_id)} is not in the review queue")
        if verdict not in VERDICTS:
            raise BadDecision(f"verdict must be one of {', '.join(VERDICTS)} (got {_quoted(verdict)})")
        reasons = list(reasons or [])
        unknown = [r for r in reasons if r not in REVIEW_REASONS]
        if unknown:
            raise BadDecision(f"unknown reason {_quoted(unknown[0])}; one of {', '.join(REVIEW_REASONS)}")
        if verdict == "reject" and not reasons:
            raise BadDecision("a reject needs at least one reason")
        edited = None
        if verdict == "edit":
            edited = self._check_edit(item.messages(), messages)
        note = note.strip()
        if turn is not None:
            note = _turn_note(item.messages(), verdict, turn, note)
        decision = Decision(item_id=item_id, reviewer=reviewer, verdict=verdict,
                            reasons=reasons if verdict == "reject" else [], note=note[:4000],
                            messages=edited, seconds=seconds if seconds is None else max(0.0, min(seconds, 86400.0)),
                            client_id=client_id)
        return self.ledger.add_decision(decision)

    @staticmethod
    def _check_edit(current: list[Message], messages: Sequence[dict | Message] | None) -> list[Message]:
        if not messages:
            raise BadDecision("an edit needs the edited messages")
        try:
            given = [Message.model_validate(m) for m in messages]
        except ValueError as err:
            raise BadDecision(f"edited messages: {err}") from None
        if [m.role for m in given] != [m.role for m in current]:
            raise BadDecision("an edit changes the text of the turns, not their roles or number")
        # What a turn of the edit leaves out (the terminal's editor sends role and content only) is the turn's own:
        # an edit of one answer never drops the tool calls, call ids, tool names or reasoning of the conversation.
        edited = [was.model_copy(update={name: getattr(m, name) for name in m.model_fields_set})
                  for m, was in zip(given, current)]
        # A turn that only calls tools has no text ("" is how it comes); one the edit empties is a reject.
        if any(not m.content.strip() and not m.tool_calls and m.content != was.content
               for m, was in zip(edited, current) if m.role != "system"):
            raise BadDecision("an edited turn is empty; reject the item instead")
        if edited == current:
            raise BadDecision("the edit changes nothing; accept the item instead")
        return edited

    def undo(self, reviewer: str, client_id: str | None = None) -> Decision | None:
        """Withdraw this reviewer's latest standing decision (as a new decision); None when none stands."""
        if client_id:  # a retried undo: the first one already took its decision back
            done = self.ledger.undo_by_client_id(reviewer, client_id)
            if done is not None:
                return done
        target = self.state().undoable(reviewer)
        if target is None:
            return None
        return self.ledger.add_decision(Decision(item_id=target.item_id, reviewer=reviewer, verdict="undo",
                                                 undoes=target.id, client_id=client_id))


def _turn_note(messages: list[Message], verdict: str, turn: int, note: str) -> str:
    """The note of a reject about one turn: "turn 5 (assistant): <the reviewer's note>"."""
    if verdict != "reject":
        raise BadDecision("turn names the turn a reject is about; send it with a reject only")
    if not 1 <= turn <= len(messages):
        raise BadDecision(f"turn must be between 1 and {len(messages)}, the turns of this item (got {turn})")
    return f"turn {turn} ({messages[turn - 1].role})" + (f": {note}" if note else "")


def _quoted(value: str, limit: int = 60) -> str:
    """A value for an error message, cut: a message never echoes a whole request back."""
    return repr(value if len(value) <= limit else value[:limit] + "…")
