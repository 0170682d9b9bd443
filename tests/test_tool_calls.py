"""The `<tool_call>` convention: what an in-process model is shown of tools, and how its calls are read back."""

from __future__ import annotations

import json

from distill.records import Message, ToolCall, ToolFunction
from distill.tool_calls import call_text, chat_for_template, parse_turn, split_reasoning, template_renders_tools

TOOLS = [{"type": "function", "function": {"name": "lookup_order", "description": "An order by its id",
                                           "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                                                          "required": ["order_id"]}}}]
CALL = ToolCall(id="c0", function=ToolFunction(name="lookup_order", arguments={"order_id": "A-1001"}))


def test_a_call_written_by_the_convention_reads_back_as_the_same_call():
    parsed = parse_turn("Let me check.\n" + call_text(CALL))
    assert parsed.content == "Let me check."
    assert [(c.function.name, c.function.arguments) for c in parsed.tool_calls] == [("lookup_order", {"order_id": "A-1001"})]


def test_broken_json_is_still_a_call_with_its_text_kept_for_the_check():
    parsed = parse_turn('<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": "A-1</tool_call>')
    (call,) = parsed.tool_calls
    assert call.function.name == "lookup_order" and isinstance(call.function.arguments, str)
    assert parse_turn("No tools needed: your order shipped.").tool_calls == []


def test_an_unclosed_block_at_the_end_is_read_and_arguments_as_a_string_are_decoded():
    parsed = parse_turn('<tool_call>{"name": "lookup_order", "arguments": "{\\"order_id\\": \\"B-7\\"}"}')
    assert parsed.tool_calls[0].function.arguments == {"order_id": "B-7"}


def test_reasoning_is_split_from_the_answer():
    assert split_reasoning("<think>The order is late.</think>\nSorry, it is late.") == ("The order is late.",
                                                                                       "Sorry, it is late.")
    assert split_reasoning("No thinking here.") == (None, "No thinking here.")
    assert parse_turn("<think>need the order</think>" + call_text(CALL)).reasoning == "need the order"


def conversation() -> list[Message]:
    return [Message(role="system", content="You are the shop's support agent."),
            Message(role="user", content="Where is order A-1001?"),
            Message(role="assistant", content="", tool_calls=[CALL], reasoning="I need the order."),
            Message(role="tool", content='{"status": "shipped"}', tool_call_id="c0", name="lookup_order"),
            Message(role="assistant", content="It shipped yesterday.")]


def test_a_template_without_tools_gets_the_convention_in_its_text():
    chat, tools = chat_for_template(conversation(), TOOLS, renders_tools=False)
    assert tools is None
    assert chat[0]["role"] == "system" and "lookup_order" in chat[0]["content"] and "<tools>" in chat[0]["content"]
    assert parse_turn(chat[2]["content"]).tool_calls[0].function.arguments == {"order_id": "A-1001"}
    assert chat[3] == {"role": "user", "content": '<tool_response>\n{"status": "shipped"}\n</tool_response>'}
    assert "<think>" not in chat[2]["content"]
    with_reasoning, _ = chat_for_template(conversation(), TOOLS, renders_tools=False, reasoning=True)
    assert with_reasoning[2]["content"].startswith("<think>\nI need the order.\n</think>")


def test_a_template_that_renders_tools_gets_them_as_they_are():
    chat, tools = chat_for_template(conversation(), TOOLS, renders_tools=True)
    assert tools == TOOLS and chat[2]["tool_calls"][0]["function"] == {"name": "lookup_order",
                                                                       "arguments": {"order_id": "A-1001"}}
    assert chat[3]["role"] == "tool" and chat[3]["tool_call_id"] == "c0"
    assert json.loads(chat[3]["content"]) == {"status": "shipped"}
    assert template_renders_tools("{% for tool in tools %}{{ tool }}{% endfor %}{{ m.tool_calls }}")
    assert not template_renders_tools("{% for message in messages %}<|im_start|>{{ message.role }}{% endfor %}")
