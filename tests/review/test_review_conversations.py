"""Conversations with tool calls under review (issue 21): an edit of one turn keeps every other turn's tool calls
in what training reads, a reject can name the turn it is about, and the gate counts a conversation once."""

from __future__ import annotations

import json

import httpx
import pytest

from distill.records import read_jsonl
from distill.review.feedback import refresh_files
from distill.review.server import ReviewServer
from distill.train.data import load_splits
from review_helpers import conversation_row, leaf_ids, make_dataset, queue_ids, review_all

LEAF = "support/orders"
CONVERSATIONS = [f"conv-{i}" for i in range(4)]


@pytest.fixture
def served(tmp_path):
    """A run of plain Q&A items and four seven-turn conversations, all queued, its review page serving."""
    directory = make_dataset(tmp_path / "run", per_leaf=3,
                             extra=[conversation_row(i, LEAF, order_id=f"A-{k}") for k, i in enumerate(CONVERSATIONS)])
    queue_ids(directory, CONVERSATIONS + leaf_ids("respiratory/asthma", 2))
    server = ReviewServer(directory, port=0, owner="kim").start()
    client = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.owner_token}",
                                                             "X-Distill": "1"})
    yield directory, client
    client.close()
    server.stop()


def trained_on(directory) -> dict:
    train, held_out = load_splits(directory, eval_fraction=0.2)
    return {e.id: e for e in train + held_out}


def test_an_edit_of_one_turn_keeps_the_tool_calls_training_reads(served):
    directory, client = served
    card = client.get(f"/api/item/{CONVERSATIONS[0]}").json()
    calls = card["messages"][2]["tool_calls"]
    assert calls[0]["function"] == {"name": "lookup_order", "arguments": {"order_id": "A-0"}}
    assert card["tools"][0]["function"]["name"] == "lookup_order"

    # The page's edit: the conversation as the card gave it, one answer's text changed.
    messages = card["messages"]
    messages[4] = {**messages[4], "content": "Order A-0 has shipped; it should arrive on Thursday."}
    assert client.post("/api/decide", json={"item_id": CONVERSATIONS[0], "verdict": "edit",
                                            "messages": messages}).status_code == 200
    # The terminal's edit: role and text only (its editor holds no tool calls): what it leaves out stays.
    plain = [{"role": m["role"], "content": m["content"]} for m in client.get(f"/api/item/{CONVERSATIONS[1]}").json()["messages"]]
    plain[-1]["content"] = "No: once it has shipped, ask the carrier to redirect it."
    assert client.post("/api/decide", json={"item_id": CONVERSATIONS[1], "verdict": "edit",
                                            "messages": plain}).status_code == 200

    data = trained_on(directory)
    first, second = data[CONVERSATIONS[0]], data[CONVERSATIONS[1]]
    assert first.messages[4].content == "Order A-0 has shipped; it should arrive on Thursday."
    assert second.messages[-1].content == "No: once it has shipped, ask the carrier to redirect it."
    for example, order in ((first, "A-0"), (second, "A-1")):
        call = example.messages[2]
        assert call.tool_calls[0].id == "call_1" and call.tool_calls[0].function.arguments == {"order_id": order}
        assert call.reasoning == "The customer gave an order id: look it up before answering."
        assert (example.messages[3].tool_call_id, example.messages[3].name) == ("call_1", "lookup_order")
        assert example.tools and example.meta.review["verdict"] == "edit"
    # The split training reads on disk says the same.
    written = {row["id"]: row for name in ("train.jsonl", "eval.jsonl") for row in read_jsonl(directory / name)}
    assert written[CONVERSATIONS[1]]["messages"][2]["tool_calls"][0]["function"]["name"] == "lookup_order"


def test_an_edit_may_not_empty_a_turn(served):
    _, client = served
    messages = client.get(f"/api/item/{CONVERSATIONS[0]}").json()["messages"]
    emptied = [*messages[:4], {**messages[4], "content": "  "}, *messages[5:]]
    refused = client.post("/api/decide", json={"item_id": CONVERSATIONS[0], "verdict": "edit", "messages": emptied})
    assert refused.status_code == 400 and "empty" in refused.json()["error"]


def test_a_reject_names_the_turn_it_is_about(served):
    directory, client = served
    ok = client.post("/api/decide", json={"item_id": CONVERSATIONS[2], "verdict": "reject", "reasons": ["wrong"],
                                          "turn": 5, "note": "the total is not in the tool's result"})
    assert ok.status_code == 200
    assert ok.json()["decision"]["note"] == "turn 5 (assistant): the total is not in the tool's result"
    for bad, why in (({"turn": 9}, "between 1 and 7"), ({"turn": 0}, "between 1 and 7"),
                     ({"turn": "five"}, "turn")):
        refused = client.post("/api/decide", json={"item_id": CONVERSATIONS[3], "verdict": "reject",
                                                   "reasons": ["wrong"], **bad})
        assert refused.status_code == 400 and why in refused.json()["error"], bad
    refused = client.post("/api/decide", json={"item_id": CONVERSATIONS[3], "verdict": "accept", "turn": 2})
    assert refused.status_code == 400 and "reject" in refused.json()["error"]

    refresh_files(directory)
    rejects = [row for row in read_jsonl(directory / "rejected.jsonl") if row["stage"] == "review"]
    assert [r["id"] for r in rejects] == [CONVERSATIONS[2]]
    assert "kim: turn 5 (assistant): the total is not in the tool's result" in rejects[0]["detail"]
    assert CONVERSATIONS[2] not in trained_on(directory)  # the whole conversation leaves the training data


def test_a_conversation_counts_once_at_the_gate(tmp_path):
    """Seven turns, three of them the assistant's: one reviewed item, one reject, as a single-turn example."""
    ids = [f"conv-{i}" for i in range(5)]
    directory = make_dataset(tmp_path / "run", per_leaf=0, extra=[conversation_row(i, LEAF) for i in ids])
    queue_ids(directory, ids)
    review_all(directory, reject={ids[0]})
    figures = refresh_files(directory)
    assert (figures["queued"], figures["reviewed"], figures["rejected"], figures["accepted"]) == (5, 5, 1, 4)
    assert figures["overall"]["items"] == 5 and figures["reject_rate"] == pytest.approx(0.2)
    assert figures["branches"]["support"]["items"] == 5
    assert json.loads((directory / "stats.json").read_text())["review"]["overall"]["items"] == 5
    assert [row["id"] for row in read_jsonl(directory / "dataset.jsonl")] == ids[1:]
