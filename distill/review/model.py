"""Typed records of the review stage: what a queued item carries, a queue row, the review's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from distill.records import Example, Message

Interval = Literal["wilson", "clopper-pearson"]


class Signal(BaseModel):
    """A reason to look at an item first (see risk.py for the signals and their cut-offs)."""

    name: str  # repetition | json_repaired | near_neighbour | length_outlier
    detail: str
    score: float  # how far past its cut-off, >= 1 at the cut-off; orders the risk slice


class Neighbour(BaseModel):
    """The most similar other kept item (word-shingle Jaccard), shown beside the card."""

    id: str
    similarity: float
    prompt: str  # its user turn, cut for display


class QueuedItem(BaseModel):
    """An item as it was when it entered the queue: the original beside every later edit."""

    item_id: str
    node_path: str | None = None
    example: Example
    signals: list[Signal] = Field(default_factory=list)
    neighbour: Neighbour | None = None


class QueueRow(BaseModel):
    """One review wanted: slot 0 for every queued item, slot 1 for the overlap's second reviewer."""

    item_id: str
    slot: int
    ord: int
    assigned: str | None = None  # a reviewer named for this slot; None = whoever comes first
    why: str  # "leaf" | "risk" | "regenerated" | "more"
    round: int = 0


class ReviewSettings(BaseModel):
    """How the queue is sampled and how the gate decides. Stored with the queue in run.db, and the
    optional `review:` section of a `distill run` config."""

    model_config = ConfigDict(extra="forbid")

    size: int | None = Field(None, gt=0, description="queue this many items (default: enough to decide)")
    sample: float | None = Field(None, gt=0, le=1, description="or this fraction of the dataset")
    seed: int = 0
    overlap: float = Field(0.0, ge=0, le=1, description="share of queued items read by two reviewers")
    reviewers: list[str] = Field(default_factory=list, description="names the overlap's two slots go to")
    threshold: float = Field(0.10, gt=0, lt=1, description="the highest acceptable reject rate")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    interval: Interval = "wilson"


class DecisionRequest(BaseModel):
    """The body of POST /api/decide. Types are checked here, naming the field; what needs the queue (the
    item is queued, a reject has a reason, an edit keeps the turns) is checked by the session."""

    item_id: str
    verdict: Literal["accept", "reject", "edit", "skip"]
    reasons: list[str] | None = None
    note: str | None = None
    messages: list[Message] | None = None  # the edited conversation, for an edit
    turn: int | None = None  # a reject about one turn of a conversation: its number, from 1 (the system turn counts)
    seconds: float | None = None
    client_id: str | None = Field(None, max_length=100)  # the page's retry key (a UUID)


class UndoRequest(BaseModel):
    """The body of POST /api/undo."""

    client_id: str | None = Field(None, max_length=100)
