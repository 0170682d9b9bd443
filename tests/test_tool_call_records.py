"""Tool calls and reasoning as records: kept by run.db and the response cache, and no change to what a plain
single-turn request or example was before they existed (fingerprints, written lines)."""

from __future__ import annotations

import asyncio
import hashlib
import json

from distill.records import (
    Example,
    GenerationRequest,
    GenerationResult,
    Message,
    SamplingParams,
    ToolCall,
    ToolFunction,
    jsonl_line,
)
from distill.store import RunStore
from distill.teachers.wrappers.cache import ResponseCache

CALL = ToolCall(id="call_1", function=ToolFunction(name="lookup_order", arguments={"order_id": "A-1001"}))


def answer_with_call() -> GenerationResult:
    return GenerationResult(key="k", text="", finish_reason="tool_calls", tool_calls=[CALL], reasoning="Look it up.")


def test_a_plain_request_keeps_the_fingerprint_it_always_had():
    request = GenerationRequest(key="k", messages=[Message(role="user", content="hi")],
                                sampling=SamplingParams(seed=3))
    documented = json.dumps({"messages": [{"role": "user", "content": "hi"}], "sampling": request.sampling.model_dump(),
                             "schema": None, "teacher": "local"}, sort_keys=True)
    assert request.fingerprint("local") == hashlib.sha256(documented.encode()).hexdigest()
    with_tools = request.model_copy(update={"tools": [{"type": "function", "function": {"name": "f"}}]})
    assert with_tools.fingerprint("local") != request.fingerprint("local")  # the tools change the answer


def test_a_plain_example_is_written_as_before_and_a_tool_turn_keeps_its_call():
    plain = Example(id="1", messages=[Message(role="user", content="q"), Message(role="assistant", content="a")])
    assert json.loads(jsonl_line(plain))["messages"] == [{"role": "user", "content": "q"},
                                                        {"role": "assistant", "content": "a"}]
    turns = [Message(role="user", content="Where is A-1001?"), Message(role="assistant", content="", tool_calls=[CALL]),
             Message(role="tool", content='{"status": "shipped"}', tool_call_id="call_1", name="lookup_order")]
    back = Example.model_validate_json(jsonl_line(Example(id="2", messages=turns)))
    assert back.messages[1].tool_calls == [CALL] and back.messages[2].tool_call_id == "call_1"


def test_run_db_gives_back_the_calls_and_the_reasoning(tmp_path):
    store = RunStore(tmp_path / "run.db")
    request = GenerationRequest(key="k", messages=[Message(role="user", content="Where is A-1001?")])
    fingerprint = request.fingerprint("openai:m")
    store.add_call("item", "assistant", "openai:m", request, fingerprint, answer_with_call())
    found = store.find_call(fingerprint)
    assert found is not None and found.tool_calls == [CALL] and found.reasoning == "Look it up." and found.ok
    (_, answered), = store.answered_calls({"item"}).values()
    assert answered.tool_calls == [CALL]
    store.close()


def test_the_response_cache_gives_back_the_calls_before_and_after_writing(tmp_path):
    async def main():
        cache = ResponseCache(tmp_path / "c.sqlite", window_s=0.05)
        cache.put("fp", "openai:m", answer_with_call())
        assert cache.get("fp").tool_calls == [CALL]  # still buffered
        cache.close()

    asyncio.run(main())
    reopened = ResponseCache(tmp_path / "c.sqlite")
    hit = reopened.get("fp")
    assert hit.tool_calls == [CALL] and hit.reasoning == "Look it up." and hit.cached
    reopened.close()
