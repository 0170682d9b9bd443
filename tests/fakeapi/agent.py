"""The fake's tool-calling assistant: what it answers a request that declares tools, in a provider-neutral form.

The server turns a request with tools into an `AgentView` (the turns, each call and result as such, and the tools),
asks `Faults.agent` (or `default_agent`) for an `AgentReply`, and writes that reply in the provider's wire format:
OpenAI's `tool_calls` (arguments as a JSON string, `finish_reason: "tool_calls"`, reasoning as
`reasoning_content` the way vLLM serves reasoning models), Anthropic's `tool_use` blocks (and `thinking` blocks).
Tests script calls with valid and invalid arguments, unknown tools, loops and answers by giving their own agent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Turn:
    role: str  # system, user, assistant, tool
    content: str = ""
    calls: list[tuple[str, Any]] = field(default_factory=list)  # assistant: (tool name, arguments)
    tool_name: str | None = None  # tool: the tool that answered (when the wire names it)


@dataclass
class AgentView:
    turns: list[Turn]
    tools: list[dict[str, Any]]  # each {"name", "description", "parameters"}
    seed: int | None = None

    @property
    def tool_names(self) -> list[str]:
        return [tool["name"] for tool in self.tools]

    def since_last_user(self) -> list[Turn]:
        """The turns after the last user turn: what the assistant has done about it so far."""
        last = max((i for i, turn in enumerate(self.turns) if turn.role == "user"), default=-1)
        return self.turns[last + 1:]


@dataclass
class AgentReply:
    content: str = ""
    calls: list[tuple[str, Any]] = field(default_factory=list)  # (tool name, arguments: a dict, or raw text)
    reasoning: str | None = None


def default_agent(view: AgentView) -> AgentReply:
    """Call the first tool once for each user turn (arguments of its schema's shape), then answer with the result."""
    done = view.since_last_user()
    results = [turn.content for turn in done if turn.role == "tool"]
    if not results and view.tools:
        tool = view.tools[0]
        return AgentReply(calls=[(tool["name"], shaped(tool.get("parameters") or {}))],
                          reasoning=f"I should look this up with {tool['name']}.")
    return AgentReply(content="Here is what I found: " + (results[-1][:200] if results else "nothing to look up."))


def shaped(schema: dict[str, Any]) -> Any:
    """A value of the schema's shape: its enum's first value, its example, or a plain placeholder."""
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {name: shaped(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [shaped(schema.get("items") or {})]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    return (schema.get("examples") or ["A-1001"])[0]


def openai_view(request: dict[str, Any]) -> AgentView:
    turns = []
    for message in request.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(part.get("text", "") for part in content)
        calls = [(call["function"]["name"], _arguments(call["function"].get("arguments")))
                 for call in message.get("tool_calls") or []]
        turns.append(Turn(role=message["role"], content=content or "", calls=calls, tool_name=message.get("name")))
    tools = [tool["function"] for tool in request.get("tools") or [] if tool.get("type") == "function"]
    return AgentView(turns=turns, tools=tools, seed=request.get("seed"))


def openai_message(reply: AgentReply, prefix: str) -> tuple[dict[str, Any], str]:
    """(the assistant message, the finish reason) as OpenAI's chat completions write them."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or None, "refusal": None}
    if reply.calls:
        message["tool_calls"] = [
            {"id": f"call_{prefix}_{n}", "type": "function",
             "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
            for n, (name, args) in enumerate(reply.calls)]
    if reply.reasoning is not None:
        message["reasoning_content"] = reply.reasoning
    return message, "tool_calls" if reply.calls else "stop"


def _arguments(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
