"""Decisions are data: every path (accept, reject, edit, skip, undo), append-only in run.db, applied to the
exported files and to what training reads, and safe with several reviewers writing at once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from cli_helpers import ROOT as REPO
from distill.records import Example, read_jsonl
from distill.review.feedback import refresh_files
from distill.review.ledger import ReviewLedger
from distill.review.model import ReviewSettings
from distill.review.queue import build_queue
from distill.review.session import BadDecision, ReviewSession
from distill.review.state import ReviewState
from distill.train.data import load_splits
from review_helpers import make_dataset


@pytest.fixture
def queued(tmp_path):
    directory = make_dataset(tmp_path / "run", per_leaf=10)
    build_queue(directory, ReviewSettings(size=12, seed=2))
    session = ReviewSession(directory)
    yield directory, session, [s.item_id for s in session.state().items.values()]
    session.close()


def edited(session: ReviewSession, item_id: str, answer: str) -> list[dict]:
    messages = [m.model_dump() for m in session.state().items[item_id].messages()]
    messages[-1]["content"] = answer
    return messages


def test_every_decision_path_is_recorded_and_resolved(queued):
    directory, session, ids = queued
    a, r, e, s = ids[:4]
    session.decide("ann", a, "accept", seconds=3.5)
    session.decide("ann", r, "reject", reasons=["wrong", "unsafe"], note="wrong dose")
    session.decide("ann", e, "edit", messages=edited(session, e, "A corrected answer."))
    session.decide("ann", s, "skip")
    state = session.state()
    assert [state.items[i].outcome for i in (a, r, e, s)] == ["accept", "reject", "edit", None]
    assert state.items[r].reasons == ["wrong", "unsafe"]
    assert state.items[e].messages()[-1].content == "A corrected answer."
    # The original stays beside the edit, never overwritten.
    assert state.items[e].item.example.messages[-1].content != "A corrected answer."
    # A skipped item is still to review, after everything not yet seen.
    todo = [x.item_id for x in state.for_reviewer("ann")]
    assert s in todo and todo[-1] == s and a not in todo
    rows = sqlite3.connect(directory / "run.db").execute(
        "SELECT verdict, seconds FROM review_decisions ORDER BY id").fetchall()
    assert rows == [("accept", 3.5), ("reject", None), ("edit", None), ("skip", None)]


def test_undo_is_a_new_decision_that_restores_what_stood_before(queued):
    directory, session, ids = queued
    item = ids[0]
    session.decide("ann", item, "accept")
    session.decide("ann", item, "edit", messages=edited(session, item, "Better answer."))
    session.decide("bob", ids[1], "accept")
    undone = session.undo("ann")
    assert undone.verdict == "undo" and undone.item_id == item
    state = session.state()
    assert state.items[item].outcome == "accept"  # the edit is withdrawn, the accept before it stands again
    assert session.undo("ann").item_id == item
    assert session.state().items[item].outcome is None and session.undo("ann") is None
    assert session.state().items[ids[1]].outcome == "accept"  # bob's decision is not ann's to undo
    verdicts = [row[0] for row in sqlite3.connect(directory / "run.db").execute(
        "SELECT verdict FROM review_decisions ORDER BY id")]
    assert verdicts == ["accept", "edit", "accept", "undo", "undo"]  # nothing deleted


def test_bad_decisions_are_refused(queued):
    _, session, ids = queued
    with pytest.raises(BadDecision, match="needs at least one reason"):
        session.decide("ann", ids[0], "reject")
    with pytest.raises(BadDecision, match="unknown reason"):
        session.decide("ann", ids[0], "reject", reasons=["boring"])
    with pytest.raises(BadDecision, match="not in the review queue"):
        session.decide("ann", "no-such-item", "accept")
    with pytest.raises(BadDecision, match="roles"):
        session.decide("ann", ids[0], "edit", messages=[{"role": "user", "content": "only one turn"}])
    with pytest.raises(BadDecision, match="changes nothing"):
        session.decide("ann", ids[0], "edit", messages=edited(session, ids[0], session.state().items[ids[0]]
                                                               .messages()[-1].content))
    assert session.ledger.decisions() == []


def test_a_retried_submission_lands_once(queued):
    _, session, ids = queued
    first = session.decide("ann", ids[0], "accept", client_id="c-1")
    again = session.decide("ann", ids[0], "accept", client_id="c-1")
    assert first.id == again.id and len(session.ledger.decisions()) == 1


def test_review_feeds_back_into_the_files_and_the_training_split(queued):
    directory, session, ids = queued
    keep, drop, fix = ids[:3]
    # A split written before the review: training must not see the rejected item or the unedited original.
    train, held_out = load_splits(directory, eval_fraction=0.2)
    assert drop in {e.id for e in train + held_out}
    session.decide("ann", keep, "accept")
    session.decide("ann", drop, "reject", reasons=["off_topic"], note="about knees")
    session.decide("ann", fix, "edit", messages=edited(session, fix, "The reviewer's answer."))
    figures = refresh_files(directory)

    dataset = {e["id"]: e for e in read_jsonl(directory / "dataset.jsonl")}
    assert drop not in dataset and keep in dataset
    assert dataset[fix]["messages"][-1]["content"] == "The reviewer's answer."
    provenance = dataset[fix]["meta"]["review"]
    assert provenance["verdict"] == "edit" and provenance["edited_by"] == "ann" and len(provenance["original_sha256"]) == 64
    rejects = [row for row in read_jsonl(directory / "rejected.jsonl") if row["stage"] == "review"]
    assert [(r["id"], r["reason"]) for r in rejects] == [(drop, "off_topic")]
    assert "ann" in rejects[0]["detail"] and "about knees" in rejects[0]["detail"]
    stats = json.loads((directory / "stats.json").read_text())["review"]
    assert stats == figures and stats["rejected"] == 1 and stats["edited"] == 1 and stats["top_reasons"] == {"off_topic": 1}

    train, held_out = load_splits(directory)
    everything = {e.id: e for e in train + held_out}
    assert drop not in everything and everything[fix].response == "The reviewer's answer."
    written = [Example.model_validate(r) for r in read_jsonl(directory / "train.jsonl")]
    assert drop not in {e.id for e in written}

    # Undoing the reject brings the item back on the next rebuild (its original is in run.db).
    session.undo("ann")  # the edit
    session.undo("ann")  # the reject
    refresh_files(directory)
    dataset = {e["id"]: e for e in read_jsonl(directory / "dataset.jsonl")}
    assert drop in dataset and dataset[fix]["messages"][-1]["content"] != "The reviewer's answer."
    assert not [row for row in read_jsonl(directory / "rejected.jsonl") if row["stage"] == "review"]
    # Applying the review twice changes nothing.
    before = (directory / "dataset.jsonl").read_text()
    refresh_files(directory)
    assert (directory / "dataset.jsonl").read_text() == before


WRITER = """
import sys
from distill.records import Decision
from distill.review.ledger import ReviewLedger
directory, name, ids = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
with ReviewLedger.open(directory) as ledger:
    for round_ in range(5):
        for item_id in ids:
            ledger.add_decision(Decision(item_id=item_id, reviewer=name, verdict="accept" if round_ % 2 else "skip",
                                         client_id=f"{name}-{round_}-{item_id}"))
"""


def test_two_reviewers_writing_at_once_lose_nothing(queued):
    directory, _, ids = queued
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(directory), name, ",".join(ids)], cwd=REPO,
                              stderr=subprocess.PIPE, text=True) for name in ("ann", "bob")]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    with ReviewLedger.open(directory) as ledger:
        decisions = ledger.decisions()
        state = ReviewState.load(ledger)
    assert len(decisions) == 2 * 5 * len(ids)
    assert {(d.reviewer, d.client_id) for d in decisions} == {
        (n, f"{n}-{r}-{i}") for n in ("ann", "bob") for r in range(5) for i in ids}
    # The last round was "skip" for both: nobody's review stands, and every item is still open.
    assert all(item.outcome is None for item in state.items.values())
