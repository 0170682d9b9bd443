"""openai: tool calls and reasoning on the wire, through the real SDK against the loopback server: the tools are
sent, the calls come back as records (valid, invalid and unknown alike), and a turn with calls and results is
sent back the way the API takes it; through the response cache and the sender process too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from distill.records import GenerationRequest, Message, ToolCall, ToolFunction
from distill.teachers.registry import teacher_options
from distill.teachers.stack import build_teacher
from fakeapi import AgentReply, FakeAPI, Faults
from fakeapi.agent import scripted

TOOLS = [{"type": "function", "function": {
    "name": "lookup_order", "description": "An order by its id",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}]


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-tools")
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def ask(api: FakeAPI, messages: list[Message], concurrency: int = 4, cache: Path | None = None):
    teacher = build_teacher("openai:gpt-4o-mini", teacher_options(base_url=api.url + "/v1", concurrency=concurrency,
                                                                  max_retries=0, timeout_s=5), cache_dir=cache)

    async def main():
        try:
            return await teacher.generate([GenerationRequest(key="k", messages=messages, tools=TOOLS)])
        finally:
            await teacher.aclose()

    try:
        return asyncio.run(main())[0]
    finally:
        teacher.close()


def test_the_tools_are_sent_and_a_call_comes_back_with_its_arguments_and_reasoning():
    agent, seen = scripted(AgentReply(calls=[("lookup_order", {"order_id": "A-1001"})], reasoning="Look it up."))
    with FakeAPI(Faults(agent=agent)) as api:
        result = ask(api, [Message(role="user", content="Where is my order A-1001?")])
        body = api.bodies[-1]
    assert body["tools"] == TOOLS and seen[0].tool_names == ["lookup_order"]
    assert result.ok and result.text == "" and result.finish_reason == "tool_calls"
    (call,) = result.tool_calls
    assert (call.function.name, call.function.arguments) == ("lookup_order", {"order_id": "A-1001"}) and call.id
    assert result.reasoning == "Look it up."


def test_arguments_that_are_not_json_and_unknown_tools_come_back_as_written():
    agent, _ = scripted(AgentReply(calls=[("lookup_order", '{"order_id": "A-1'), ("cancel_everything", {})]))
    with FakeAPI(Faults(agent=agent)) as api:
        result = ask(api, [Message(role="user", content="Cancel it all")])
    broken, unknown = result.tool_calls
    assert broken.function.arguments == '{"order_id": "A-1' and unknown.function.name == "cancel_everything"


def test_a_conversation_with_a_call_and_its_result_is_sent_in_the_wire_form():
    agent, seen = scripted(AgentReply(content="It shipped yesterday."))
    turns = [Message(role="user", content="Where is my order A-1001?"),
             Message(role="assistant", content="", tool_calls=[
                 ToolCall(id="call_7", function=ToolFunction(name="lookup_order", arguments={"order_id": "A-1001"}))]),
             Message(role="tool", content='{"status": "shipped"}', tool_call_id="call_7", name="lookup_order")]
    with FakeAPI(Faults(agent=agent)) as api:
        result = ask(api, turns)
        body = api.bodies[-1]
    assert result.text == "It shipped yesterday." and result.tool_calls is None
    sent_call = body["messages"][1]["tool_calls"][0]
    assert sent_call["id"] == "call_7" and sent_call["function"]["arguments"] == '{"order_id": "A-1001"}'
    assert body["messages"][2] == {"role": "tool", "content": '{"status": "shipped"}', "tool_call_id": "call_7"}
    assert seen[0].turns[1].calls == [("lookup_order", {"order_id": "A-1001"})]


@pytest.mark.parametrize("concurrency", [4, 128], ids=["inline", "sender-process"])
def test_a_cached_answer_keeps_its_calls(concurrency, tmp_path):
    agent, seen = scripted(AgentReply(calls=[("lookup_order", {"order_id": "B-2"})]))
    messages = [Message(role="user", content=f"Order B-2, please ({concurrency})")]
    with FakeAPI(Faults(agent=agent)) as api:
        first = ask(api, messages, concurrency, tmp_path)
        again = ask(api, messages, concurrency, tmp_path)
    assert len(seen) == 1 and again.cached  # asked once, answered again from the cache
    assert first.tool_calls == again.tool_calls and again.tool_calls[0].function.arguments == {"order_id": "B-2"}


def test_a_reasoning_models_plain_answer_keeps_its_reasoning_apart():
    """vLLM serving a reasoning model returns the reasoning beside the answer (`reasoning_content`), tools or not."""
    with FakeAPI(Faults(reasoning="A cold is viral: rest and fluids.")) as api:
        teacher = build_teacher("openai:gpt-4o-mini", teacher_options(base_url=api.url + "/v1", max_retries=0,
                                                                      timeout_s=5))

        async def main():
            try:
                return await teacher.generate([GenerationRequest(
                    key="k", messages=[Message(role="user", content="Is rest good for a cold?")])])
            finally:
                await teacher.aclose()

        (result,) = asyncio.run(main())
        teacher.close()
    assert result.reasoning == "A cold is viral: rest and fluids." and result.text.startswith("Usually")
    assert "viral" not in result.text and result.tool_calls is None
