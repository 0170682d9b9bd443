"""The fake's tool-calling assistant: what it answers a request that declares tools, in a provider-neutral form.

The server turns a request with tools into an `AgentView` (the turns, each call and result as such, and the tools),
asks `Faults.agent` (or `default_agent`) for an `AgentReply`, and writes that reply in the provider's wire format:
OpenAI's `tool_calls` (arguments as a JSON string, `finish_reason: "tool_calls"`, reasoning as
`reasoning_content` the way vLLM serves reasoning models), Anthropic's `tool_use` blocks (and `thinking` blocks).
Tests script calls with valid and invalid arguments, unknown tools, loops and answers by giving their own agent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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


def scripted(*replies: AgentReply) -> tuple[Callable[[AgentView], AgentReply], list[AgentView]]:
    """An agent that gives these replies in turn (the last one from then on), and the views it was asked with."""
    seen: list[AgentView] = []

    def agent(view: AgentView) -> AgentReply:
        seen.append(view)
        return replies[min(len(seen), len(replies)) - 1]
    return agent, seen


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


STRUCTURED_TOOL = "output"  # distill's structured-output tool on anthropic: (not one of the request's own)


def anthropic_agent_request(request: dict[str, Any]) -> bool:
    """Whether an Anthropic request declares tools of its own, besides distill's forced structured-output tool."""
    return any(tool.get("name") != STRUCTURED_TOOL for tool in request.get("tools") or [])


def anthropic_view(request: dict[str, Any]) -> AgentView:
    """A Messages API request as the agent sees it: `tool_use` blocks as calls, each `tool_result` block a tool turn."""
    names: dict[str, str] = {}  # tool_use id -> tool name, to name the results
    turns = [Turn(role="system", content=_text(request["system"]))] if request.get("system") else []
    for message in request.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            turns.append(Turn(role=message["role"], content=content))
            continue
        text, calls = [], []
        for block in content or []:
            if block.get("type") == "tool_result":
                turns.append(Turn(role="tool", content=_text(block.get("content")),
                                  tool_name=names.get(block.get("tool_use_id"))))
            elif block.get("type") == "tool_use":
                names[block.get("id")] = block.get("name")
                calls.append((block.get("name"), block.get("input")))
            elif block.get("type") == "text":
                text.append(block.get("text") or "")
        if text or calls:
            turns.append(Turn(role=message["role"], content=" ".join(text), calls=calls))
    tools = [{"name": tool["name"], "description": tool.get("description", ""),
              "parameters": tool.get("input_schema") or {}}
             for tool in request.get("tools") or [] if tool.get("name") != STRUCTURED_TOOL]
    return AgentView(turns=turns, tools=tools)


def anthropic_content(reply: AgentReply, prefix: str, thinking: bool) -> tuple[list[dict[str, Any]], str]:
    """(the content blocks, the stop reason) as the Messages API writes them: a `thinking` block first when the
    request asked for thinking, the text, then one `tool_use` block per call (its input as the agent gave it)."""
    content: list[dict[str, Any]] = []
    if thinking and reply.reasoning is not None:
        content.append({"type": "thinking", "thinking": reply.reasoning, "signature": "sig-" + prefix})
    if reply.content:
        content.append({"type": "text", "text": reply.content})
    for n, (name, args) in enumerate(reply.calls):
        content.append({"type": "tool_use", "id": f"toolu_{prefix}_{n}", "name": name, "input": args})
    return content, "tool_use" if reply.calls else "end_turn"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)
