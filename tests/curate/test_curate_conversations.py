"""Curating conversations: tool calls, tool results, repeated turns, reasoning, the topic of every turn, and dedup
and decontamination over every turn. Conversations are written by hand as records, as a support agent over a
small order system would hold them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import ROOT, cli_env, distill
from distill.curate.checks import CHECKS, CheckSettings, check_name, first_failure
from distill.curate.dataset_io import dedup_text
from distill.records import Example, ExampleMeta, Message, ToolCall, ToolFunction

TOOLS = [
    {"type": "function", "function": {
        "name": "get_order", "description": "Look an order up by its id.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string", "pattern": "^ORD-[0-9]+$"}},
                       "required": ["order_id"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "refund_order", "description": "Refund an order in full.",
        "parameters": {"type": "object", "properties": {
            "order_id": {"type": "string"}, "reason": {"type": "string", "enum": ["damaged", "late", "other"]}},
            "required": ["order_id", "reason"]}}},
]
SYSTEM = "You are the support agent of Acme Shop. Use the tools to look orders up and refund them."
ORDER = {"order_id": "ORD-1042", "status": "delivered", "item": "Nimbus tablet", "total": 249.0,
         "delivered_on": "2026-12-01"}
FOUND = ("I found order ORD-1042: a Nimbus tablet, delivered on 1 December, for 249.00. I am sorry it arrived "
         "cracked. Under our damaged-goods policy I can refund it in full. Shall I go ahead?")
REFUNDED = {"refund_id": "RF-5531", "amount": 249.0, "status": "approved"}
DONE = "Refund RF-5531 for 249.00 is approved; it should reach your card within five working days."


def call(name: str, arguments: dict | str, call_id: str) -> ToolCall:
    return ToolCall(id=call_id, function=ToolFunction(name=name, arguments=arguments))


def calls(*made: ToolCall) -> Message:
    return Message(role="assistant", content="", tool_calls=list(made))


def result(name: str, call_id: str, data: dict) -> Message:
    return Message(role="tool", content=json.dumps(data), tool_call_id=call_id, name=name)


def user(text: str) -> Message:
    return Message(role="user", content=text)


def answer(text: str, reasoning: str | None = None) -> Message:
    return Message(role="assistant", content=text, reasoning=reasoning)


def turns() -> list[Message]:
    """A valid conversation: look the order up, offer a refund, refund it. The user's second turn ("Yes, please
    do it.") names no subject, as later turns of a conversation rightly do not."""
    return [
        Message(role="system", content=SYSTEM),
        user("Hello, my order ORD-1042 arrived with a cracked screen. Can you check it?"),
        calls(call("get_order", {"order_id": "ORD-1042"}, "c1")),
        result("get_order", "c1", ORDER),
        answer(FOUND),
        user("Yes, please do it."),
        calls(call("refund_order", {"order_id": "ORD-1042", "reason": "damaged"}, "c2")),
        result("refund_order", "c2", REFUNDED),
        answer(DONE),
    ]


def conversation(messages: list[Message] | None = None, id: str = "conv", **meta) -> Example:
    return Example(id=id, messages=messages or turns(), tools=TOOLS, meta=ExampleMeta(**meta))


def replaced(at: int, *messages: Message) -> list[Message]:
    """The valid conversation with its turn `at` (counted from 1) replaced by `messages`."""
    out = turns()
    out[at - 1:at] = messages
    return out


def failure_of(example: Example, **settings):
    return first_failure(example, CheckSettings(**settings))


def test_a_valid_conversation_passes_every_check():
    example = conversation()
    settings = CheckSettings()
    assert {check_name(check): check(example, settings) for check in CHECKS} == \
        {check_name(check): None for check in CHECKS}


# One conversation per reason: (what it is, the conversation, the reason, words its detail must hold)
CASES = {
    "unknown tool": (replaced(7, calls(call("cancel_order", {"order_id": "ORD-1042"}, "c2"))),
                     "tool_unknown", ["turn 7", "'cancel_order'", "get_order, refund_order"]),
    "arguments outside the schema": (replaced(7, calls(call("refund_order", {"order_id": "ORD-1042", "reason": "broken"},
                                                            "c2"))),
                                     "tool_arguments_invalid", ["turn 7", "refund_order", "reason", "'broken'"]),
    "a required argument missing": (replaced(3, calls(call("get_order", {"id": "ORD-1042"}, "c1"))),
                                    "tool_arguments_invalid", ["turn 3", "get_order", "'order_id' is a required"]),
    "arguments that are not JSON": (replaced(3, calls(call("get_order", '{"order_id": "ORD-1042"', "c1"))),
                                    "tool_arguments_invalid", ["turn 3", "get_order", "not a JSON object"]),
    "the same call twice": (replaced(4, result("get_order", "c1", ORDER), calls(call("get_order", {"order_id": "ORD-1042"},
                                                                                     "c3")),
                                     result("get_order", "c3", ORDER)),
                            "tool_loop", ["turn 5", "repeats the call of turn 3", "get_order"]),
    "a result the answer ignores": (replaced(5, answer("Thank you for waiting. Under our damaged-goods policy I can "
                                                       "refund the order in full. Shall I go ahead?")),
                                    "tool_result_unused", ["turn 4", "get_order", "nimbus"]),
    "success claimed over an error": (replaced(8, result("refund_order", "c2", {"error": "the refund window has closed"}),
                                               answer("Your refund has been processed and will reach your card soon.")),
                                      "tool_error_ignored", ["turn 8", "refund_order", "'has been processed'"]),
    "a user turn asked again": (replaced(6, user("Hello, my order ORD-1042 arrived with a cracked screen. Can you check "
                                                 "it?")),
                                "repeated_turn", ["turn 6 (user)", "repeats turn 2 word for word"]),
    "an answer said again": ([*turns(), user("Can you confirm the refund went through?"),
                              answer("Refund RF-5531 for 249.00 is approved; it should reach your card within five "
                                     "working days from now.")],
                             "repeated_turn", ["turn 11 (assistant)", "nearly repeats turn 9"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_fault_fails_its_own_check_with_the_turn_and_tool(case):
    messages, reason, words = CASES[case]
    failure = failure_of(conversation(messages))
    assert failure is not None and failure.reason == reason, failure
    for word in words:
        assert word in failure.detail, failure.detail
    # Exactly that check: with it switched off, the conversation passes every other one.
    (name,) = {check_name(c) for c in CHECKS if c(conversation(messages), CheckSettings()) is not None}
    assert failure_of(conversation(messages), skip=frozenset({name})) is None


def test_more_tool_rounds_than_the_limit_is_a_loop():
    lookups = [m for k in range(5) for m in (calls(call("get_order", {"order_id": f"ORD-10{40 + k}"}, f"l{k}")),
                                              result("get_order", f"l{k}", {**ORDER, "order_id": f"ORD-10{40 + k}"}))]
    example = conversation([*turns()[:2], *lookups, *turns()[4:]])
    failure = failure_of(example)
    assert (failure.reason, failure.detail) == ("tool_loop", "turn 11: tool round 5 before answering (max_tool_rounds 4)")
    assert failure_of(example, max_tool_rounds=5) is None


def test_reasoning_that_concludes_another_label_disagrees():
    labels = ["billing", "shipping", "returns"]
    ticket = [user("I was charged twice for the parcel that never arrived, and I want the second charge back.")]
    agrees = Example(id="t", messages=[*ticket, answer("billing", reasoning="The parcel did not arrive, which sounds "
                                                       "like shipping, but the ask is the double charge: billing.")])
    assert failure_of(agrees, labels=labels) is None
    disagrees = agrees.model_copy(update={"messages": [*ticket, answer("shipping", reasoning=agrees.messages[1].reasoning)]})
    failure = failure_of(disagrees, labels=labels)
    assert (failure.reason, failure.detail) == ("reasoning_disagrees",
                                                "the reasoning names 'billing' last, the answer is 'shipping'")
    assert failure_of(disagrees, labels=labels, skip=frozenset({"reasoning"})) is None
    # Structured answers: the label field is the answer; without a label set nothing is compared.
    structured = Example(id="s", output={"label": "shipping"},
                         messages=[*ticket, answer('{"label": "shipping"}', reasoning="So: billing.")])
    assert failure_of(structured, labels=labels).reason == "reasoning_disagrees"
    assert failure_of(disagrees, min_words=1) is None


def test_existing_checks_read_a_conversation_as_a_conversation():
    # A tool result for a call nobody made, an assistant turn with neither text nor calls: bad structure, named.
    orphan = conversation(replaced(3, answer("Let me look.")))
    assert (failure_of(orphan).reason, failure_of(orphan).detail) == \
        ("turn_order", "turn 4: a tool result for call 'c1', which the assistant turn before it did not make")
    silent = conversation(replaced(5, answer("")))
    assert (failure_of(silent).reason, failure_of(silent).detail) == \
        ("empty_output", "turn 5: an assistant turn with neither text nor tool calls")
    # A conversation that stops at a call has no answer.
    assert failure_of(conversation(turns()[:7])).reason == "empty_output"
    # The first user turn must name its subject; later ones refer back.
    vague = conversation(replaced(2, user("Can you check it for me?")))
    assert failure_of(vague).reason == "not_self_contained"


def test_single_turn_examples_never_meet_the_conversation_checks():
    conversation_checks = {"tool_names", "tool_arguments", "tool_loop", "reasoning", "repeated_turns", "tool_results"}
    single = Example(id="s", messages=[Message(role="system", content=SYSTEM),
                                       user("Where is my order ORD-1042? It said delivered but nothing came."),
                                       answer("Where is my order ORD-1042? I checked: it was delivered on 1 December; "
                                              "I have opened a trace with the carrier.")])
    settings = CheckSettings(labels=None)
    for check in CHECKS:
        if check_name(check) in conversation_checks:
            assert check(single, settings) is None, check_name(check)
    assert dedup_text(single) == f"{single.messages[1].content}\n{single.messages[2].content}"
    assert dedup_text(single, "prompt") == single.prompt and dedup_text(single, "response") == single.response


def test_the_compared_text_holds_every_turn_and_the_calls():
    example = conversation()
    text = dedup_text(example)
    assert 'get_order {"order_id": "ORD-1042"}' in text and 'refund_order {"order_id": "ORD-1042", "reason": "damaged"}' in text
    assert all(m.content in text for m in example.messages if m.role != "system") and SYSTEM not in text
    assert dedup_text(example, "prompt") == f"{turns()[1].content}\n{turns()[5].content}"
    assert FOUND in dedup_text(example, "response") and DONE in dedup_text(example, "response")


def medical_conversation(first_answer: str, node: str) -> Example:
    return Example(id="m", meta=ExampleMeta(taxonomy_path=node), messages=[
        user("How does this infection spread and how is it treated in adults?"), answer(first_answer),
        user("Thanks, that helps a lot."),
        answer("You're welcome. Take care, and come back with any other questions you have.")])


def test_a_conversation_is_on_or_off_topic_by_all_of_its_turns():
    from distill.curate.from_taxonomy import taxonomy_nodes
    from distill.curate.topic import TopicIndex
    from distill.taxonomy import load_taxonomy

    topics = TopicIndex(taxonomy_nodes(load_taxonomy(ROOT / "taxonomies" / "medical.yaml")))
    settings = dict(topics=topics, skip=frozenset({"self_contained"}))
    leaf = "infectious-disease/respiratory-infections"
    hiv = ("HIV infects cells throughout the body, but it primarily targets immune cells. The virus binds to proteins "
           "on CD4 cells and uses them to copy itself; antiretroviral therapy stops it copying, and an undetectable "
           "viral load means it cannot be passed on.")
    pneumonia = ("Community-acquired pneumonia in an adult who is otherwise well is usually treated with oral "
                 "amoxicillin for five days; the CRB-65 score guides whether hospital care is needed.")
    failure = failure_of(medical_conversation(hiv, leaf), **settings)
    assert failure is not None and failure.reason == "off_topic" and "hiv" in failure.detail
    assert failure_of(medical_conversation(pneumonia, leaf), **settings) is None


# Through the installed `distill curate`: rejects with their reasons, dedup and decontamination over every turn.

HELDOUT_QUESTION = "Does a cracked tablet screen under warranty entitle the buyer to a full refund within thirty days?"


def jsonl(path: Path, examples: list[Example]) -> Path:
    path.write_text("".join(e.model_dump_json() + "\n" for e in examples), encoding="utf-8")
    return path


def late_turns(request: str, tool: str, data: dict, reply: str) -> list[Message]:
    """The valid conversation's first exchange, then another request answered another way."""
    return [*turns()[:5], user(request), calls(call(tool, {"order_id": "ORD-1042"} if tool == "get_order" else
                                                        {"order_id": "ORD-1042", "reason": "damaged"}, "c9")),
            result(tool, "c9", data), answer(reply)]


@pytest.mark.slow  # the console script in a subprocess: a few seconds
def test_curate_keeps_valid_conversations_and_rejects_each_fault_with_its_reason(tmp_path):
    faulty = [conversation(messages, id=f"bad-{k}") for k, (messages, _, _) in enumerate(CASES[c] for c in sorted(CASES))]
    planted = [*turns()[:5], user("One more thing before the refund."),
               answer("Of course, what would you like to know?"), user(HELDOUT_QUESTION),
               answer("Yes: a screen that arrived cracked is covered, and the refund is in full within thirty days of "
                      "delivery."), user("Then please refund it."), *turns()[6:]]
    rows = [
        conversation(id="valid"),
        conversation(id="copy-of-valid"),  # equal in every turn: a duplicate
        conversation(late_turns("Actually, could you also tell me when my replacement charger ships?", "get_order",
                                {**ORDER, "item": "Nimbus charger", "status": "packed", "ships_on": "2026-12-09"},
                                "Your Nimbus charger is packed and ships on 9 December; you will get tracking by "
                                "email then."), id="late-turn-differs"),
        conversation(planted, id="heldout-in-turn-8"),
        *faulty,
    ]
    source = jsonl(tmp_path / "conversations.jsonl", rows)
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text(json.dumps({"id": "h1", "question": HELDOUT_QUESTION}) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    done = distill("curate", str(source), "--out", str(out), "--workers", "1", "--heldout", f"{heldout}:question",
                   cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    kept = {json.loads(line)["id"] for line in (out / "dataset.jsonl").read_text(encoding="utf-8").splitlines()}
    assert kept == {"valid", "late-turn-differs"}
    rejects = {row["id"]: row for row in map(json.loads, (out / "rejected.jsonl").read_text(encoding="utf-8").splitlines())}
    expected = {f"bad-{k}": reason for k, (_, reason, _) in enumerate(CASES[c] for c in sorted(CASES))}
    assert {i: rejects[i]["reason"] for i in expected} == expected
    assert rejects["copy-of-valid"]["reason"] == "exact_duplicate" and "valid" in rejects["copy-of-valid"]["detail"]
    assert rejects["heldout-in-turn-8"]["reason"] == "contaminated" and "h1" in rejects["heldout-in-turn-8"]["detail"]
    assert set(rejects) == set(expected) | {"copy-of-valid", "heldout-in-turn-8"}
    # A kept conversation is written whole: its calls, results and tools as they came in.
    valid = next(json.loads(line) for line in (out / "dataset.jsonl").read_text(encoding="utf-8").splitlines()
                 if json.loads(line)["id"] == "valid")
    assert Example.model_validate(valid) == conversation(id="valid")


@pytest.mark.slow  # the console script in a subprocess: a few seconds
def test_conversations_differing_only_in_their_calls_are_not_copies(tmp_path):
    """Two conversations whose text is the same and whose last calls differ (a refund for another reason, of
    another order) are two examples: the calls are part of what is compared."""
    late = replaced(7, calls(call("refund_order", {"order_id": "ORD-1042", "reason": "late"}, "c2")))
    rows = [conversation(id="damaged"), conversation(late, id="late")]
    out = tmp_path / "out"
    done = distill("curate", str(jsonl(tmp_path / "in.jsonl", rows)), "--out", str(out), "--workers", "1",
                   "--threshold", "0.99", cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (out / "rejected.jsonl").read_text(encoding="utf-8") == ""
    assert len((out / "dataset.jsonl").read_text(encoding="utf-8").splitlines()) == 2


@pytest.mark.slow  # the console script in a subprocess: a few seconds
def test_max_tool_rounds_and_skip_check_reach_curate_from_the_command_line(tmp_path):
    lookups = [m for k in range(3) for m in (calls(call("get_order", {"order_id": f"ORD-10{40 + k}"}, f"l{k}")),
                                              result("get_order", f"l{k}", {**ORDER, "order_id": f"ORD-10{40 + k}"}))]
    source = jsonl(tmp_path / "in.jsonl", [conversation([*turns()[:2], *lookups, *turns()[4:]], id="three-rounds")])
    env = cli_env(tmp_path)
    strict = distill("curate", str(source), "--out", str(tmp_path / "strict"), "--max-tool-rounds", "2",
                     cwd=tmp_path, env=env)
    assert strict.returncode == 0, strict.stderr
    (row,) = map(json.loads, (tmp_path / "strict" / "rejected.jsonl").read_text(encoding="utf-8").splitlines())
    assert (row["reason"], row["detail"]) == ("tool_loop", "turn 7: tool round 3 before answering (max_tool_rounds 2)")
    skipped = distill("curate", str(source), "--out", str(tmp_path / "skipped"), "--max-tool-rounds", "2",
                      "--skip-check", "tool_loop", cwd=tmp_path, env=env)
    assert skipped.returncode == 0, skipped.stderr
    assert (tmp_path / "skipped" / "rejected.jsonl").read_text(encoding="utf-8") == ""
    assert "--max-tool-rounds" in distill("curate", "--help", cwd=tmp_path, env=env).stdout
