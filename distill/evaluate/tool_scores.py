"""Tool calling, scored turn by turn: at each reference turn that calls a tool, did the model call one, the right
one, with the right arguments?

The model is shown the conversation up to that turn (tools included, as its template renders them,
`distill.tool_calls.chat_for_template`) and its call is read back with `parse_turn`: the same form it was
trained in. Pure: works on the model's text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from distill.records import Example, ToolCall
from distill.tasks.schema import OutputSchema, SchemaError
from distill.tool_calls import chat_for_template, parse_turn

# Per tool-calling turn, each a proportion with a Wilson interval in the report.
TOOL_METRICS = ("valid_call", "right_tool", "arguments_equal")


@dataclass
class CallScore:
    """One turn: `valid`: the model called, every call names a declared tool and its arguments are a JSON object
    its `parameters` schema accepts; `right_tool`: it called the reference's tools, in order; `arguments_equal`:
    and with the reference's arguments (as JSON objects). `turn` is the reference turn's index in the
    conversation and `text` what the model wrote there, kept so a reader of the report sees the call itself."""

    valid: bool
    right_tool: bool
    arguments_equal: bool
    turn: int = field(default=-1, compare=False)  # where and what, not part of the verdict
    text: str = field(default="", compare=False)


def call_turns(example: Example) -> list[int]:
    """Indices of the reference's assistant turns that call tools."""
    return [i for i, m in enumerate(example.messages) if m.role == "assistant" and m.tool_calls]


def turn_prompt(example: Example, turn: int, renders_tools: bool,
                reasoning: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """(chat, tools) the model is asked at the reference's turn `turn`: every turn before it."""
    return chat_for_template(example.messages[:turn], example.tools, renders_tools, reasoning=reasoning)


def score_call(text: str, reference: list[ToolCall], tools: list[dict[str, Any]] | None,
               turn: int = -1) -> CallScore:
    """The model's text at the tool-calling turn `turn` against the reference's calls."""
    calls = parse_turn(text).tool_calls
    schemas = {spec.get("name"): spec.get("parameters") or {"type": "object"}
               for spec in (tool.get("function", tool) for tool in tools or [])}
    valid = bool(calls) and all(_valid(call, schemas) for call in calls)
    right_tool = [c.function.name for c in calls] == [c.function.name for c in reference]
    equal = right_tool and all(_as_object(ours.function.arguments) is not None
                               and _as_object(ours.function.arguments) == _as_object(theirs.function.arguments)
                               for ours, theirs in zip(calls, reference))
    return CallScore(valid=valid, right_tool=right_tool, arguments_equal=equal, turn=turn, text=text)


def _valid(call: ToolCall, schemas: dict[str, Any]) -> bool:
    arguments = call.function.arguments
    if call.function.name not in schemas or not isinstance(arguments, dict):
        return False
    try:
        OutputSchema(schemas[call.function.name]).validate(arguments)
    except SchemaError:
        return False
    return True


def _as_object(arguments: dict[str, Any] | str) -> dict[str, Any] | None:
    """Arguments as a JSON object (a reference may hold them as JSON text), or None when they are not one."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
