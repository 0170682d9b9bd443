"""Tool calls and reasoning for in-process teachers (transformers and vLLM): the chat a request's template is
given, and the model's text read back as an answer.

A request without tools (and no tool turns) is rendered exactly as it always was; one with tools goes through
`distill.tool_calls`: the template's own tool rendering where it has one, else the `<tool_call>` convention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distill.records import ToolCall, Usage
from distill.teachers.base import GenerationRequest, GenerationResult
from distill.tool_calls import chat_for_template, parse_turn, split_reasoning, template_renders_tools


def uses_tools(request: GenerationRequest) -> bool:
    """Whether the request declares tools or carries a turn that calls one or answers one."""
    return bool(request.tools) or any(m.tool_calls or m.role == "tool" for m in request.messages)


def template_chat(request: GenerationRequest, chat_template: str | None) -> tuple[list[dict[str, Any]],
                                                                                 list[dict[str, Any]] | None]:
    """(the messages for `apply_chat_template`, its `tools=`, None when not to pass any)."""
    if not uses_tools(request):
        return [m.model_dump() for m in request.messages], None
    # The teacher's earlier reasoning is not shown to it again: each turn reasons afresh.
    return chat_for_template(request.messages, request.tools, template_renders_tools(chat_template))


@dataclass
class Answer:
    """A model's text read as an answer: what it says, the tools it calls, its `<think>` reasoning."""

    text: str
    tool_calls: list[ToolCall] | None
    reasoning: str | None


def read_answer(request: GenerationRequest, text: str) -> Answer:
    """The text as an answer: `<tool_call>` blocks become calls when the request declared tools (a plain
    request's text is never searched for them); a leading `<think>` block is the reasoning, kept apart."""
    if request.tools:
        turn = parse_turn(text)
        return Answer(turn.content, turn.tool_calls or None, turn.reasoning)
    reasoning, rest = split_reasoning(text)
    return Answer(text if reasoning is None else rest, None, reasoning)


def answered(request: GenerationRequest, text: str, finish: str, usage: Usage) -> GenerationResult:
    """A decoded answer as a result, its calls and reasoning read from the text (`read_answer`). `finish`: the
    decoder's ("stop", "length"); a turn that stopped after calling tools says "tool_calls", as API teachers do."""
    answer = read_answer(request, text)
    if finish == "stop" and answer.tool_calls:
        finish = "tool_calls"
    return GenerationResult(key=request.key, text=answer.text, finish_reason=finish, tool_calls=answer.tool_calls,
                            reasoning=answer.reasoning, usage=usage)
