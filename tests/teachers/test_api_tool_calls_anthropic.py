"""anthropic: tool calls and thinking on the wire, through the real SDK against the loopback server: the tools go
out as `input_schema` definitions, `tool_use` blocks come back as calls (valid, wrongly typed and unknown alike), a
turn's calls and their results are sent back as `tool_use` / `tool_result` blocks, `thinking` blocks are the
reasoning; through the response cache, the sender process and Message Batches too. Structured output (distill's
own forced tool) is not mistaken for a call."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.records import GenerationRequest, Message, SamplingParams, ToolCall, ToolFunction
from distill.teachers.http.cost import load_api_config
from distill.teachers.registry import teacher_options
from distill.teachers.stack import build_teacher
from fakeapi import AgentReply, FakeAPI, Faults
from fakeapi.agent import scripted

LOOKUP = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}
REFUND = {"type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
          "required": ["order_id", "amount"]}
TOOLS = [{"type": "function", "function": {"name": "lookup_order", "description": "An order by its id",
                                           "parameters": LOOKUP}},
         {"type": "function", "function": {"name": "refund", "description": "Refund part of an order",
                                           "parameters": REFUND}}]
SPEC = "anthropic:claude-haiku-4-5"


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-tools")
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


def ask_all(api: FakeAPI, requests: list[GenerationRequest], concurrency: int = 4, cache: Path | None = None,
            **options):
    teacher = build_teacher(SPEC, teacher_options(base_url=api.url, concurrency=concurrency, max_retries=0,
                                                  timeout_s=5, **options), cache_dir=cache)

    async def main():
        try:
            return await teacher.generate(requests)
        finally:
            await teacher.aclose()

    try:
        return asyncio.run(main())
    finally:
        teacher.close()


def ask(api: FakeAPI, messages: list[Message], tools=TOOLS, **options):
    return ask_all(api, [GenerationRequest(key="k", messages=messages, tools=tools)], **options)[0]


def thinking(budget: int = 2048) -> dict:
    return {"api_config": {"anthropic": {"thinking_budget": budget}}}


def test_the_tools_are_sent_natively_and_a_call_comes_back_with_its_input_as_arguments():
    agent, seen = scripted(AgentReply(content="Let me look.", calls=[("lookup_order", {"order_id": "A-1001"})]))
    with FakeAPI(Faults(agent=agent)) as api:
        result = ask(api, [Message(role="system", content="You are a support agent."),
                           Message(role="user", content="Where is my order A-1001?")])
        body = api.bodies[-1]
    assert body["tools"] == [{"name": "lookup_order", "description": "An order by its id", "input_schema": LOOKUP},
                             {"name": "refund", "description": "Refund part of an order", "input_schema": REFUND}]
    assert "tool_choice" not in body and "thinking" not in body and body["system"] == "You are a support agent."
    assert seen[0].tool_names == ["lookup_order", "refund"]
    assert result.ok and result.text == "Let me look." and result.finish_reason == "tool_calls"
    (call,) = result.tool_calls
    assert (call.function.name, call.function.arguments) == ("lookup_order", {"order_id": "A-1001"})
    assert call.id.startswith("toolu_") and result.reasoning is None


def test_wrongly_typed_arguments_missing_fields_and_unknown_tools_come_back_as_the_model_wrote_them():
    agent, _ = scripted(AgentReply(calls=[("refund", {"order_id": 1001}), ("refund", {"amount": "all"}),
                                          ("cancel_everything", {"now": True})]))
    with FakeAPI(Faults(agent=agent)) as api:
        result = ask(api, [Message(role="user", content="Refund it all and cancel everything")])
    typed, missing, unknown = result.tool_calls
    assert typed.function.arguments == {"order_id": 1001} and missing.function.arguments == {"amount": "all"}
    assert (unknown.function.name, unknown.function.arguments) == ("cancel_everything", {"now": True})
    assert len({typed.id, missing.id, unknown.id}) == 3  # each result can name its call


def test_a_conversation_with_calls_and_their_results_is_sent_in_anthropics_wire_form():
    agent, seen = scripted(AgentReply(content="It shipped yesterday; I refunded the 5.00 delivery fee."))
    calls = [ToolCall(id="toolu_7", function=ToolFunction(name="lookup_order", arguments={"order_id": "A-1001"})),
             ToolCall(id="toolu_8", function=ToolFunction(name="refund",
                                                          arguments={"order_id": "A-1001", "amount": 5.0}))]
    turns = [Message(role="user", content="Where is my order A-1001? And refund the delivery."),
             Message(role="assistant", content="Checking.", tool_calls=calls, reasoning="not sent back"),
             Message(role="tool", content='{"status": "shipped"}', tool_call_id="toolu_7", name="lookup_order"),
             Message(role="tool", content='{"refunded": 5.0}', tool_call_id="toolu_8", name="refund"),
             Message(role="user", content="Thanks. When will it arrive?")]
    with FakeAPI(Faults(agent=agent)) as api:
        result = ask(api, turns)
        body = api.bodies[-1]
    assert result.text.startswith("It shipped") and result.tool_calls is None and result.finish_reason == "stop"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]  # they alternate
    assert body["messages"][0] == {"role": "user", "content": turns[0].content}
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_7", "name": "lookup_order", "input": {"order_id": "A-1001"}},
        {"type": "tool_use", "id": "toolu_8", "name": "refund", "input": {"order_id": "A-1001", "amount": 5.0}}]
    assert body["messages"][2]["content"] == [  # both results of the turn, then the user's text, in one turn
        {"type": "tool_result", "tool_use_id": "toolu_7", "content": '{"status": "shipped"}'},
        {"type": "tool_result", "tool_use_id": "toolu_8", "content": '{"refunded": 5.0}'},
        {"type": "text", "text": "Thanks. When will it arrive?"}]
    view = seen[0]
    assert [t.role for t in view.turns] == ["user", "assistant", "tool", "tool", "user"]
    assert view.turns[3].tool_name == "refund" and view.turns[1].calls[1] == ("refund", calls[1].function.arguments)


def test_thinking_is_asked_for_with_a_budget_and_read_back_as_the_reasoning(tmp_path):
    agent, _ = scripted(AgentReply(calls=[("lookup_order", {"order_id": "C-3"})], reasoning="The id is C-3."))
    request = [Message(role="user", content="Order C-3?")]
    with FakeAPI(Faults(agent=agent)) as api:
        result = ask(api, request, cache=tmp_path, **thinking(2048))
        asked = api.bodies[-1]
        plain = ask(api, request, cache=tmp_path)
    assert asked["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert asked["max_tokens"] == 2048 + SamplingParams().max_tokens  # the answer keeps its own cap
    assert result.reasoning == "The id is C-3." and result.tool_calls[0].function.arguments == {"order_id": "C-3"}
    assert plain.reasoning is None and not plain.cached  # thinking or not, answers are cached apart


def test_thinking_is_left_out_where_the_api_cannot_take_it_and_plain_answers_keep_it_apart():
    faults = Faults(reasoning="Short question, short answer.")
    tickets = {"type": "object", "properties": {"label": {"type": "string", "enum": ["billing", "login"]}}}
    after_result = [Message(role="user", content="Order D-4?"),
                    Message(role="assistant", content="", tool_calls=[
                        ToolCall(id="toolu_1", function=ToolFunction(name="lookup_order", arguments={"order_id": "D-4"}))]),
                    Message(role="tool", content="{}", tool_call_id="toolu_1"),
                    Message(role="user", content="And D-5?")]  # in the results' user turn, all the same
    with FakeAPI(faults) as api:
        plain, structured, continued = ask_all(api, [
            GenerationRequest(key="plain", messages=[Message(role="user", content="Is rest good for a cold?")]),
            GenerationRequest(key="structured", messages=[Message(role="user", content="My card was charged twice")],
                              json_schema=tickets),
            GenerationRequest(key="continued", messages=after_result, tools=TOOLS)], **thinking())
        bodies = {b["messages"][-1]["content"] if isinstance(b["messages"][-1]["content"], str) else "continued": b
                  for b in api.bodies}
    assert plain.reasoning == "Short question, short answer." and "Short question" not in plain.text
    assert "thinking" in bodies["Is rest good for a cold?"]
    # A forced tool choice takes no thinking: structured output is sent and read exactly as without the option.
    assert "thinking" not in bodies["My card was charged twice"] and structured.finish_reason == "stop"
    assert bodies["My card was charged twice"]["tool_choice"] == {"type": "tool", "name": "output"}
    assert structured.tool_calls is None and structured.text.startswith('{"label"')
    # After a tool result the API would want the earlier turn's signed thinking block back: no thinking there.
    assert "thinking" not in bodies["continued"] and continued.ok


def test_a_tool_named_like_the_structured_output_tool_is_refused_before_anything_is_sent():
    clash = [{"type": "function", "function": {"name": "output", "parameters": {"type": "object"}}}]
    with FakeAPI() as api:
        result = ask(api, [Message(role="user", content="Hi")], tools=clash)
        assert api.bodies == []
    assert not result.ok and "rename the tool" in result.error


@pytest.mark.parametrize("concurrency", [4, 128], ids=["inline", "sender-process"])
def test_a_cached_answer_keeps_its_calls_and_reasoning(concurrency, tmp_path):
    agent, seen = scripted(AgentReply(calls=[("lookup_order", {"order_id": "B-2"})], reasoning="Look B-2 up."))
    messages = [Message(role="user", content=f"Order B-2, please ({concurrency})")]
    with FakeAPI(Faults(agent=agent)) as api:
        first = ask_all(api, [GenerationRequest(key="k", messages=messages, tools=TOOLS)], concurrency, tmp_path,
                        **thinking())[0]
        again = ask_all(api, [GenerationRequest(key="k", messages=messages, tools=TOOLS)], concurrency, tmp_path,
                        **thinking())[0]
    assert len(seen) == 1 and again.cached  # asked once, answered again from the cache
    assert first.tool_calls == again.tool_calls and again.tool_calls[0].function.arguments == {"order_id": "B-2"}
    assert again.reasoning == "Look B-2 up." and again.finish_reason == "tool_calls"


@pytest.mark.parametrize("text", ["anthropic:\n  thinking_budget: 100\n", "openai:\n  thinking_budget: 2048\n"],
                         ids=["below-the-minimum", "not-an-openai-setting"])
def test_a_thinking_budget_the_api_cannot_take_is_one_line_naming_its_place(tmp_path, text):
    config = tmp_path / "api.yaml"
    config.write_text(text)
    with pytest.raises(DistillError) as refused:
        load_api_config(config)
    assert f"{config}:2" in str(refused.value) and "thinking_budget" in str(refused.value)


def test_the_budget_reserves_the_thinking_a_request_may_spend():
    """--budget-usd reserves each request's most expensive answer: with thinking, its budget is output too."""
    teacher = build_teacher(SPEC, teacher_options(base_url="http://127.0.0.1:9", **thinking(4096)))
    plain = build_teacher(SPEC, teacher_options(base_url="http://127.0.0.1:9"))
    try:
        ask = GenerationRequest(key="k", messages=[Message(role="user", content="Is rest good for a cold?")])
        structured = ask.model_copy(update={"json_schema": {"type": "object"}})
        extra = teacher.price_request(ask) - plain.price_request(ask)
        assert extra == pytest.approx(plain.prices.cost("claude-haiku-4-5", 0, 4096)) and extra > 0
        assert teacher.price_request(structured) == plain.price_request(structured)  # asks for no thinking
    finally:
        teacher.close()
        plain.close()


def test_the_budget_prices_the_tool_definitions_and_earlier_calls_a_request_sends():
    """Tool definitions and the calls of earlier turns are sent as prompt tokens; --budget-usd reserves them too
    (a support agent's tool list is often longer than the customer's message)."""
    plain = build_teacher(SPEC, teacher_options(base_url="http://127.0.0.1:9"))
    try:
        tools = [{"type": "function", "function": {"name": f"tool_{i}", "description": "looks a thing up " * 20,
                                                    "parameters": {"type": "object", "properties": {}}}}
                 for i in range(5)]
        ask = GenerationRequest(key="k", messages=[Message(role="user", content="Where is my order?")])
        with_tools = ask.model_copy(update={"tools": tools})
        called = ask.model_copy(update={"messages": [*ask.messages, Message(role="assistant", content="", tool_calls=[
            ToolCall(id="c1", function=ToolFunction(name="tool_0", arguments={"order_id": "NW-" + "1" * 300}))])]})
        per_token = plain.prices.cost("claude-haiku-4-5", 1, 0)
        assert plain.price_request(with_tools) - plain.price_request(ask) >= per_token * len(json.dumps(tools)) // 3
        assert plain.price_request(called) - plain.price_request(ask) >= per_token * 100  # the call's 300 characters
    finally:
        plain.close()
