"""The in-process teacher with tools: the embedded SmolLM2 is shown the tools through its chat template (the
`<tool_call>` convention, since its plain ChatML template renders none; a template's own tool rendering where it
has one) and its text is read back as tool calls and `<think>` reasoning. A request without tools renders and
reads exactly as before."""

from __future__ import annotations

import asyncio

import pytest

from distill.records import GenerationRequest, Message, SamplingParams, ToolCall, ToolFunction, Usage
from distill.teachers.local.turns import answered

TOOLS = [{"type": "function", "function": {
    "name": "lookup_order", "description": "Find a customer's order by its id",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}]
CONVERSATION = [
    Message(role="system", content="You are the support agent of a small online shop."),
    Message(role="user", content="Where is my order A-1001?"),
    Message(role="assistant", content="", tool_calls=[
        ToolCall(id="call_0", function=ToolFunction(name="lookup_order", arguments={"order_id": "A-1001"}))]),
    Message(role="tool", content='{"status": "shipped", "eta": "Friday"}', tool_call_id="call_0", name="lookup_order"),
    Message(role="user", content="Thanks! And when does it arrive?")]
# A template that renders tools itself (as Qwen2.5's and Llama 3.1's do): it is given them, not the convention.
TOOL_TEMPLATE = ("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% for c in m.tool_calls or [] %}"
                 "[calls {{ c.function.name }}]{% endfor %}\n{% endfor %}"
                 "{% if tools %}<tools>{% for t in tools %}{{ t.function.name }};{% endfor %}{% endif %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")


def request(messages, tools=TOOLS, max_tokens=16, key="k") -> GenerationRequest:
    return GenerationRequest(key=key, messages=messages, tools=tools,
                             sampling=SamplingParams(temperature=0.0, max_tokens=max_tokens))


def test_a_tool_call_in_the_models_text_becomes_a_call_and_its_think_block_the_reasoning():
    text = ('<think>The user gave an order id.</think>\nLet me check.\n<tool_call>\n'
            '{"name": "lookup_order", "arguments": {"order_id": "A-1001"}}\n</tool_call>')
    result = answered(request([Message(role="user", content="A-1001?")]), text, "stop", Usage())
    (call,) = result.tool_calls
    assert (call.function.name, call.function.arguments) == ("lookup_order", {"order_id": "A-1001"})
    assert result.text == "Let me check." and result.reasoning == "The user gave an order id."
    assert result.finish_reason == "tool_calls" and result.ok
    cut = answered(request([Message(role="user", content="A-1001?")]),
                   '<tool_call>{"name": "lookup_order", "arguments": {"order_id": "A-', "length", Usage())
    assert cut.finish_reason == "length" and cut.tool_calls[0].function.name == "lookup_order"  # kept for the checks


def test_a_request_without_tools_keeps_its_text_and_only_a_think_block_is_taken_apart():
    plain = GenerationRequest(key="k", messages=[Message(role="user", content="Explain <tool_call> tags")])
    text = 'Write <tool_call>{"name": "x"}</tool_call> around each call.'
    result = answered(plain, text, "stop", Usage())
    assert result.text == text and result.tool_calls is None and result.reasoning is None
    assert result.finish_reason == "stop"
    thought = answered(plain, "<think>Short.</think>\nThe tags mark calls.", "stop", Usage())
    assert (thought.text, thought.reasoning) == ("The tags mark calls.", "Short.")


@pytest.fixture(scope="module")
def teacher():
    import torch

    from distill.teachers.registry import TeacherOptions, make_teacher

    torch.set_num_threads(2)
    made = make_teacher("local", TeacherOptions(batch_size=2, dtype="float32"))
    yield made
    made.close()


@pytest.mark.model
@pytest.mark.slow
def test_the_embedded_model_is_shown_the_tools_and_its_conversation_turn_comes_back_as_a_result(teacher):
    plain = GenerationRequest(key="plain", messages=CONVERSATION[:2])
    before = teacher.tokenizer.apply_chat_template([m.model_dump() for m in plain.messages], tokenize=False,
                                                   add_generation_prompt=True)
    assert teacher.prompt_text(plain) == before  # no tools: rendered exactly as before
    prompt = teacher.prompt_text(request(CONVERSATION))
    assert '"name": "lookup_order"' in prompt and "Find a customer's order by its id" in prompt
    assert '<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": "A-1001"}}\n</tool_call>' in prompt
    assert '<tool_response>\n{"status": "shipped", "eta": "Friday"}\n</tool_response>' in prompt
    assert len(teacher.prompt_ids(request(CONVERSATION))) > len(teacher.prompt_ids(request(CONVERSATION, None)))

    results = asyncio.run(teacher.generate([request(CONVERSATION, key="turn"),
                                            request(CONVERSATION[:2], key="first", max_tokens=24)]))
    assert [r.key for r in results] == ["turn", "first"]
    for result in results:  # whatever a 135M model makes of it: an answer, read through the convention
        assert result.ok and isinstance(result.text, str) and result.finish_reason in ("stop", "length", "tool_calls")
        assert result.tool_calls is None or all(isinstance(c, ToolCall) for c in result.tool_calls)
        assert "<tool_call>" not in result.text and result.usage.prompt_tokens > 0


@pytest.mark.model
@pytest.mark.slow
def test_a_template_that_renders_tools_is_given_them(teacher):
    own = teacher.tokenizer.chat_template
    teacher.tokenizer.chat_template = TOOL_TEMPLATE
    try:
        prompt = teacher.prompt_text(request(CONVERSATION))
    finally:
        teacher.tokenizer.chat_template = own
    assert "<tools>lookup_order;" in prompt and "[calls lookup_order]" in prompt
    assert "<tool_call>" not in prompt and "<tool_response>" not in prompt  # not the convention
