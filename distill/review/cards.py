"""What a reviewer sees of one item, the same on the web page and in the terminal."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from distill.curate.checks import CHECKS, CheckSettings
from distill.records import Message
from distill.review.model import Neighbour, Signal
from distill.review.sources import RecordedDocuments, SourcePassage
from distill.review.state import ItemState
from distill.taxonomy.snapshot import read_snapshot


class Seed(BaseModel):
    id: str
    text: str | None = None  # the seed's question or text, as the run recorded it (taxonomy.json)


class Check(BaseModel):
    name: str
    passed: bool
    detail: str = ""


class Past(BaseModel):
    id: int | None
    reviewer: str
    verdict: str
    reasons: list[str]
    note: str
    at: float | None


class Card(BaseModel):
    id: str
    leaf: str | None
    axes: dict[str, str]
    teacher: str | None
    why: str  # why it was queued: leaf | risk | sample | regenerated
    seeds: list[Seed]
    signals: list[Signal]
    neighbour: Neighbour | None
    checks: list[Check]
    messages: list[Message]  # as it stands now (the latest edit, else the original)
    original: list[Message] | None  # the original when an edit stands
    output: dict | None
    tools: list[dict] | None = None  # the tools the conversation could call (OpenAI-style definitions)
    mine: Past | None  # this reviewer's standing decision
    outcome: str | None
    history: list[Past]
    source: SourcePassage | None = None  # the passage of the user's documents it was made from (meta.source)


def run_checks(messages: list[Message], example) -> list[Check]:
    """Curation's checks (defaults) on the item, so the card shows what passed and what did not."""
    probe = example.model_copy(update={"messages": messages})
    out = []
    for check in CHECKS:
        failure = check(probe, CheckSettings(language=None))
        out.append(Check(name=check.__name__.removeprefix("check_"), passed=failure is None,
                         detail=failure.detail if failure else ""))
    return out


def seed_texts(directory: Path) -> dict[str, str]:
    """seed id -> its text, as the run recorded it when it was made (empty for a run without taxonomy.json).
    Never from the taxonomy file run.db names: a run folder must not make a command read other files."""
    recorded = read_snapshot(directory)
    return dict(recorded.seeds) if recorded is not None else {}


def _past(decision) -> Past:
    return Past(id=decision.id, reviewer=decision.reviewer, verdict=decision.verdict, reasons=decision.reasons,
                note=decision.note, at=decision.created_at)


def make_card(item: ItemState, reviewer: str, seeds: dict[str, str],
              documents: RecordedDocuments | None = None) -> Card:
    example = item.item.example
    messages = item.messages()
    edited = item.latest_edit() is not None
    mine = item.standing.get(reviewer)
    return Card(
        id=item.item_id, leaf=example.meta.taxonomy_path, axes=example.meta.axes, teacher=example.meta.teacher,
        why=item.why, seeds=[Seed(id=s, text=seeds.get(s)) for s in example.meta.seed_ids],
        signals=item.item.signals, neighbour=item.item.neighbour, checks=run_checks(messages, example),
        messages=messages, original=list(example.messages) if edited else None, output=example.output,
        tools=example.tools, mine=_past(mine) if mine else None, outcome=item.outcome, history=[_past(d) for d in item.history],
        source=documents.passage(example, messages) if documents else None,
    )
