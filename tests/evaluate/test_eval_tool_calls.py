"""Tool-call scoring on hand-written model outputs: each rule (a call made, a declared tool, arguments its schema
accepts, the reference's tool, the reference's arguments) decides a case of its own."""

from __future__ import annotations

import json

import pytest

from distill.evaluate.markdown import render_markdown
from distill.evaluate.report import EvalConfig, build_report, score_turns
from distill.evaluate.tool_scores import CallScore, call_turns, score_call
from distill.records import Example, ToolCall, ToolFunction
from train_helpers import conversation_rows

TOOLS = conversation_rows(1)[0]["tools"]  # get_weather(city, unit?) and convert(amount, to)
REFERENCE = [ToolCall(id="c0", function=ToolFunction(name="get_weather", arguments={"city": "Paris"}))]


def call(body: str) -> str:
    return f"<tool_call>\n{body}\n</tool_call>"


@pytest.mark.parametrize("text, expected", [
    (call('{"name": "get_weather", "arguments": {"city": "Paris"}}'), (True, True, True)),
    ('<think>\nA city: the weather tool.\n</think>\n' + call('{"name": "get_weather", "arguments": {"city": "Paris"}}'),
     (True, True, True)),
    (call('{"name": "get_weather", "arguments": {"city": "Oslo"}}'), (True, True, False)),  # other arguments
    (call('{"name": "convert", "arguments": {"amount": 3, "to": "EUR"}}'), (True, False, False)),  # wrong tool
    (call('{"name": "search", "arguments": {"city": "Paris"}}'), (False, False, False)),  # not a declared tool
    (call('{"name": "get_weather", "arguments": {"city": 3}}'), (False, True, False)),  # schema: not a string
    (call('{"name": "get_weather", "arguments": {"town": "Paris"}}'), (False, True, False)),  # schema: unknown key
    ('It is sunny in Paris.', (False, False, False)),  # no call
    (call('{"name": "get_weather", "arguments": {"city": "Paris"'), (False, True, False)),  # broken JSON
    (call('{"name": "get_weather", "arguments": {"city": "Paris"}}') + "\n"
     + call('{"name": "get_weather", "arguments": {"city": "Oslo"}}'), (True, False, False)),  # one call too many
])
def test_a_call_is_scored_by_every_rule(text, expected):
    assert score_call(text, REFERENCE, TOOLS) == CallScore(*expected)


def test_reference_arguments_written_as_json_text_compare_as_objects():
    reference = [ToolCall(function=ToolFunction(name="get_weather", arguments='{"city": "Paris"}'))]
    assert score_call(call('{"name": "get_weather", "arguments": {"city": "Paris"}}'), reference, TOOLS).arguments_equal


def test_report_headlines_tool_calling_by_its_call_rates():
    examples = [Example.model_validate(row) for row in conversation_rows(4)]
    turns = [(i, turn) for i, e in enumerate(examples) for turn in call_turns(e)]
    assert [turn for _, turn in turns] == [2, 2, 2, 2]
    right = [call(json.dumps(e.messages[2].model_dump()["tool_calls"][0]["function"])) for e in examples]
    student = score_turns(examples, turns, right[:3] + ["no call"])
    base = score_turns(examples, turns, ["no call"] * 4)
    answers = {"base": ["x"] * 4, "student": [e.response for e in examples], "teacher": [e.response for e in examples]}
    report = build_report(examples, answers, EvalConfig(resamples=50), calls={"base": base, "student": student})
    block = report["tasks"]["tool_calling"]["systems"]
    for metric in ("valid_call", "right_tool", "arguments_equal"):
        assert block["student"][metric]["value"] == 0.75 and block["student"][metric]["n"] == 4
        assert block["base"][metric]["value"] == 0.0
        assert block["student"][metric]["low"] < 0.75 < block["student"][metric]["high"]  # Wilson, n=4
    assert report["tasks"]["tool_calling"]["versus_base"]["valid_call"]["difference"] == 0.75
    weather = report["leaves"]["tools/weather"]["tool_calling"]["systems"]["student"]
    assert weather["valid_call"]["n"] == 2
    markdown = render_markdown(report)
    assert "| system | valid call | right tool | arguments equal | token-F1 |" in markdown
    assert "| student | 0.750 [" in markdown
    assert "| tools/weather | tool_calling (valid_call) | 2 |" in markdown
    assert report["examples"][3]["tool_calls"]["student"] == [
        {"valid": False, "right_tool": False, "arguments_equal": False, "turn": 2, "text": "no call"}]
    # the call itself is in the report, where a reader looks for what the student wrote at that turn
    assert report["examples"][0]["tool_calls"]["student"][0]["text"] == right[0]


def test_a_reference_ending_in_a_call_is_scored_at_its_call_not_as_an_answer():
    rows = conversation_rows(4)
    for row in rows[:2]:  # these two stop at their call turn: no closing answer in words
        row["messages"] = row["messages"][:3]
    examples = [Example.model_validate(row) for row in rows]
    turns = [(i, turn) for i, e in enumerate(examples) for turn in call_turns(e)]
    calls = score_turns(examples, turns, ["no call"] * 4)
    answers = {"base": ["x"] * 4, "student": [e.response for e in examples]}
    block = build_report(examples, answers, EvalConfig(resamples=50), calls={"base": calls, "student": calls})
    student = block["tasks"]["tool_calling"]["systems"]["student"]
    # Only the two with a closing answer count: the others' "reference" would be their call turn's preface.
    assert student["token_f1"]["n"] == 2 and student["token_f1"]["value"] == 1.0
    assert student["valid_call"]["n"] == 4
    only_calls = [e for e in examples[:2]]
    alone = build_report(only_calls, {"base": ["x"] * 2, "student": ["y"] * 2}, EvalConfig(resamples=50),
                         calls={"base": calls[:2], "student": calls[:2]})
    assert "token_f1" not in alone["tasks"]["tool_calling"]["systems"]["student"]
    assert "| student |" in render_markdown(alone)
