"""Tool calls and reasoning in a model's own text: how in-process models are shown tools and how their calls are read.

API teachers speak tool calling natively (OpenAI's `tool_calls`, Anthropic's `tool_use` blocks). An in-process
model (the embedded SmolLM2, `hf:`, `vllm:`) and the student only see text rendered by their chat template:
- a template that renders tools itself (it reads `tools` and `tool_calls`, as Qwen2.5's and Llama 3.1's do) is
  given them as they are;
- a template that does not (SmolLM2's plain ChatML) gets the documented default, the JSON `<tool_call>`
  convention: the tool definitions in the system turn, each call as `<tool_call>{"name": ..., "arguments":
  {...}}</tool_call>` in the assistant's text, each result as a user turn inside `<tool_response>` tags.
Either way the model's calls are read back from `<tool_call>` blocks, and its reasoning from `<think>` blocks.
Training, eval and the in-process teachers all go through this one module, so the student learns exactly the
form it is later read in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from distill.records import Message, ToolCall, ToolFunction

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
# A block closed, or left open at the end of the text (a model cut at max_tokens, or one that never closes it).
_CALL_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.DOTALL)
_THINK_BLOCK = re.compile(r"^\s*<think>(.*?)(?:</think>|\Z)", re.DOTALL)
_NAME = re.compile(r'"name"\s*:\s*"([^"]*)"')

SYSTEM_TOOLS = (
    "You can call these tools. Their definitions, as JSON Schema, one a line:\n<tools>\n{tools}\n</tools>\n"
    "To call a tool, answer with one block per call, and nothing after them:\n"
    '<tool_call>\n{{"name": "<tool name>", "arguments": {{<arguments as a JSON object>}}}}\n</tool_call>\n'
    "Each result comes back inside <tool_response></tool_response>; then answer the user with it."
)


@dataclass
class ParsedTurn:
    """An assistant turn read from a model's text: its answer, its tool calls and its reasoning."""

    content: str
    tool_calls: list[ToolCall]
    reasoning: str | None = None


def template_renders_tools(chat_template: str | None) -> bool:
    """Whether a Jinja chat template renders tool definitions and calls itself (it reads `tools` and
    `tool_calls`); SmolLM2's plain ChatML template does not."""
    return chat_template is not None and "tools" in chat_template and "tool_call" in chat_template


def split_reasoning(text: str) -> tuple[str | None, str]:
    """(the `<think>` block's text, the rest) when the text starts with one, else (None, text)."""
    match = _THINK_BLOCK.match(text)
    if match is None:
        return None, text
    return match.group(1).strip(), text[match.end():].lstrip()


def parse_turn(text: str, call_prefix: str = "call") -> ParsedTurn:
    """An assistant turn from a model's text: `<think>` reasoning, `<tool_call>` blocks, and what is left.

    A block whose JSON does not parse is still a call (named when its name can be read, else ""), with the text
    as written as its arguments: the curation check that rejects it can say what was wrong, and eval counts it
    as an invalid call rather than as no call.
    """
    reasoning, rest = split_reasoning(text)
    calls = []
    for number, match in enumerate(_CALL_BLOCK.finditer(rest)):
        calls.append(ToolCall(id=f"{call_prefix}_{number}", function=_function(match.group(1))))
    content = _CALL_BLOCK.sub("", rest).strip() if calls else rest.strip()
    return ParsedTurn(content=content, tool_calls=calls, reasoning=reasoning)


def _function(body: str) -> ToolFunction:
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        name = _NAME.search(body)
        return ToolFunction(name=name.group(1) if name else "", arguments=body)
    if not isinstance(value, dict):
        return ToolFunction(name="", arguments=body)
    name = value.get("name")
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):  # some models write the arguments as a JSON string, as OpenAI's wire does
        try:
            decoded = json.loads(arguments)
            arguments = decoded if isinstance(decoded, dict) else arguments
        except json.JSONDecodeError:
            pass
    if not isinstance(arguments, dict | str):
        arguments = json.dumps(arguments)
    return ToolFunction(name=name if isinstance(name, str) else "", arguments=arguments)


def call_text(call: ToolCall) -> str:
    """One call as the `<tool_call>` convention writes it."""
    body = {"name": call.function.name, "arguments": call.function.arguments}
    return f"{CALL_OPEN}\n{json.dumps(body, ensure_ascii=False)}\n{CALL_CLOSE}"


def tools_system_text(tools: list[dict[str, Any]]) -> str:
    """The tool definitions as the default convention puts them in the system turn."""
    return SYSTEM_TOOLS.format(tools="\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools))


def chat_for_template(messages: list[Message], tools: list[dict[str, Any]] | None, renders_tools: bool,
                      reasoning: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """(the messages as a chat template takes them, the `tools=` to pass it, or None).

    `renders_tools`: the template renders tools itself (`template_renders_tools`); else the `<tool_call>`
    convention is written into the text. `reasoning`: an assistant turn's reasoning goes before its answer in a
    `<think>` block (training with the reasoning); else it is left out.
    """
    if renders_tools:
        chat = []
        for message in messages:
            row: dict[str, Any] = {"role": message.role, "content": _with_reasoning(message, reasoning)}
            if message.tool_calls:
                row["tool_calls"] = [{"type": "function", "id": c.id, "function": {
                    "name": c.function.name, "arguments": c.function.arguments}} for c in message.tool_calls]
            if message.role == "tool":
                row["tool_call_id"], row["name"] = message.tool_call_id, message.name
            chat.append(row)
        return chat, tools or None
    chat = []
    for message in messages:
        content = _with_reasoning(message, reasoning)
        if message.tool_calls:
            content = "\n".join([content] * bool(content) + [call_text(c) for c in message.tool_calls])
        if message.role == "tool":
            chat.append({"role": "user", "content": f"<tool_response>\n{content}\n</tool_response>"})
        else:
            chat.append({"role": message.role, "content": content})
    if tools:
        note = tools_system_text(tools)
        if chat and chat[0]["role"] == "system":
            chat[0] = {"role": "system", "content": f"{chat[0]['content']}\n\n{note}"}
        else:
            chat.insert(0, {"role": "system", "content": note})
    return chat, None


def _with_reasoning(message: Message, reasoning: bool) -> str:
    if reasoning and message.role == "assistant" and message.reasoning:
        return f"{THINK_OPEN}\n{message.reasoning}\n{THINK_CLOSE}\n{message.content}"
    return message.content
