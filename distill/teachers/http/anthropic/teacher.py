"""`anthropic:<model>`: Claude through the official SDK (honours ANTHROPIC_BASE_URL).

Structured output is a forced tool call whose input schema is the task's pydantic schema; the tool's
input comes back as the JSON text the task parses. A request's own `tools` go out natively (`input_schema`), its
turns' calls as `tool_use` blocks and their results as `tool_result` blocks, and the answer's `tool_use` blocks come
back as `ToolCall`s, its `thinking` blocks as the reasoning. Limits and retries are shared with openai:
(`http/limits.py`).
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import anthropic

from distill.records import Message, ToolCall, ToolFunction, Usage
from distill.teachers.base import GenerationRequest, GenerationResult
from distill.teachers.http.anthropic.batch import AnthropicBatches
from distill.teachers.http.base import ApiTeacher, server_address
from distill.teachers.http.cost import PriceTable, estimate_prompt_tokens
from distill.teachers.http.limits import ApiSettings, CallFailed, TransientError, http_client, require_key

# Anthropic's stop reasons in the protocol's terms (the parser rejects length / refusal with a reason). A stop
# for the structured-output tool is "stop"; one for the request's own tools is "tool_calls" (see parse_message).
FINISH: dict[str | None, str] = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "stop", "max_tokens": "length",
          "refusal": "refusal", "model_context_window_exceeded": "length"}
TOOL = "output"  # distill's structured-output tool: a request's own tool may not take its name


class AnthropicTeacher(ApiTeacher):
    provider = "anthropic"

    def __init__(self, spec: str, model: str, settings: ApiSettings):
        key = require_key("ANTHROPIC_API_KEY", spec)
        address = server_address(settings.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None)
        super().__init__(spec, model, settings, key, address, lambda limits: anthropic.AsyncAnthropic(
            api_key=key, base_url=address.url, default_query=address.query or None,
            default_headers=address.headers or None, timeout=settings.timeout_s, max_retries=0,
            http_client=http_client(anthropic, limits, settings.timeout_s)))
        if settings.thinking_budget:  # answers with thinking are other answers: cached apart from those without
            self._namespace += f"#thinking={settings.thinking_budget}"

    def batches(self) -> AnthropicBatches:
        return AnthropicBatches(self)

    async def generate_one(self, request: GenerationRequest) -> GenerationResult:
        if any(tool["name"] == TOOL for tool in native_tools(request.tools)):
            return GenerationResult(key=request.key, error=f"anthropic: a tool may not be named {TOOL!r}: distill's "
                                                           "structured output uses that name; rename the tool")
        params = self.params(request)
        try:
            data = await self.send_with_retries(request, lambda: self._send(params))
        except CallFailed as failed:
            return GenerationResult(key=request.key, error=failed.message)
        return self.result(request.key, data)

    async def _send(self, params: dict[str, Any]) -> dict[str, Any]:
        # Plain body, raw response: the typed create() costs ~3 ms of transforms a request (see http/openai/teacher.py).
        response = await self.next_client().post("/v1/messages", body=params, cast_to=self.raw_type)
        body = response.content
        try:
            data = json.loads(body)
            data["content"]
        except (ValueError, KeyError, TypeError) as exc:
            raise TransientError(f"{type(exc).__name__} in a {len(body)}-byte body") from None
        self.limiter.observe(response.headers)
        return data

    def params(self, request: GenerationRequest) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        params: dict[str, Any] = {
            "model": self.model,
            "messages": wire_messages([m for m in request.messages if m.role != "system"]),
            "max_tokens": request.sampling.max_tokens,
            # No temperature/top_p/seed: the current SDK's Messages API no longer takes them (the models
            # sample at their own settings). They stay in the request fingerprint all the same.
        }
        if system:
            params["system"] = system
        tools = native_tools(request.tools)
        if request.json_schema is not None:
            tools.append({"name": TOOL, "description": "Record the answer.", "input_schema": request.json_schema})
            # Alone it is forced; beside the request's own tools the model calls one of them or records its answer.
            params["tool_choice"] = {"type": "tool", "name": TOOL} if len(tools) == 1 else {"type": "any"}
        if tools:
            params["tools"] = tools
        budget = self.thinking_budget(request)
        if budget:
            params["thinking"] = {"type": "enabled", "budget_tokens": budget}
            params["max_tokens"] += budget  # max_tokens counts the thinking too: the answer keeps its own cap
        return params

    def thinking_budget(self, request: GenerationRequest) -> int:
        """The extended thinking this request asks for (0: none). The API takes none with a forced tool choice
        (structured output), and a turn that answers tool results would have to send back the calling turn's
        signed thinking block, which records do not keep: those go without it."""
        since_assistant = itertools.takewhile(lambda m: m.role != "assistant", reversed(request.messages))
        if request.json_schema is not None or any(m.role == "tool" for m in since_assistant):
            return 0
        return self.settings.thinking_budget or 0

    def price_request(self, request: GenerationRequest) -> float | None:
        return self.prices.cost(self.model, estimate_prompt_tokens(request.messages),
                                request.sampling.max_tokens + self.thinking_budget(request), batch=self.batch)

    def result(self, key: str, data: dict[str, Any]) -> GenerationResult:
        return parse_message(key, data, self.prices, self.model, batch=self.batch)


def parse_message(key: str, data: dict[str, Any], prices: PriceTable, model: str, batch: bool = False) -> GenerationResult:
    """A Messages API body -> result: the structured-output tool's input becomes JSON text for the task's parser,
    any other `tool_use` block a tool call, `thinking` blocks the reasoning."""
    texts, thoughts, calls, tool_input = [], [], [], None
    for block in data.get("content") or []:
        kind = block.get("type")
        if kind == "tool_use" and block.get("name") == TOOL:
            tool_input = block.get("input")
        elif kind == "tool_use":
            calls.append(read_call(block))
        elif kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            thoughts.append(block.get("thinking") or "")
    text = json.dumps(tool_input, ensure_ascii=False) if tool_input is not None else "".join(texts)
    finish = FINISH.get(data.get("stop_reason"), data.get("stop_reason"))
    if calls and tool_input is None and data.get("stop_reason") == "tool_use":
        finish = "tool_calls"
    usage = data.get("usage") or {}
    prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    return GenerationResult(key=key, text=text, finish_reason=finish, tool_calls=calls or None,
                            reasoning="\n\n".join(thoughts) if thoughts else None,
                            usage=Usage(prompt_tokens=prompt, completion_tokens=completion,
                                        cost_usd=prices.cost(model, prompt, completion, batch=batch)))


def native_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """OpenAI-style tool definitions as the Messages API takes them: name, description, input_schema."""
    out = []
    for tool in tools or []:
        function = tool.get("function") or tool
        native = {"name": function.get("name") or "", "input_schema": function.get("parameters") or {"type": "object"}}
        if function.get("description"):
            native["description"] = function["description"]
        out.append(native)
    return out


def wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Turns as the Messages API takes them: a plain turn as {role, content} text (as before tools existed); an
    assistant's calls as `tool_use` blocks; tool results as `tool_result` blocks in a user turn. Turns must
    alternate, so consecutive user-side turns (the results of one assistant turn, and any user text after them)
    share one user message, results first."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = "user" if message.role == "tool" else message.role
        if message.role == "tool":
            content: str | list[dict[str, Any]] = [{"type": "tool_result", "tool_use_id": message.tool_call_id or "",
                                                    "content": message.content}]
        elif message.tool_calls:
            content = [{"type": "text", "text": message.content}] * bool(message.content) + [
                {"type": "tool_use", "id": call.id, "name": call.function.name, "input": call_input(call)}
                for call in message.tool_calls]
        else:
            content = message.content
        if out and out[-1]["role"] == role and (message.role == "tool" or isinstance(out[-1]["content"], list)):
            out[-1]["content"] = blocks(out[-1]["content"]) + blocks(content)
        else:
            out.append({"role": role, "content": content})
    return out


def blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def call_input(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as `tool_use` input, which must be an object: arguments kept as text (JSON that did not
    parse to one) go as {"raw": text}, so the turn can still be sent back."""
    arguments = call.function.arguments
    if isinstance(arguments, dict):
        return arguments
    try:
        decoded = json.loads(arguments)
    except json.JSONDecodeError:
        decoded = None
    return decoded if isinstance(decoded, dict) else {"raw": arguments}


def read_call(block: dict[str, Any]) -> ToolCall:
    """A `tool_use` block as a record: its input (always an object on this API) is the arguments."""
    arguments = block.get("input")
    return ToolCall(id=str(block.get("id") or ""), function=ToolFunction(
        name=str(block.get("name") or ""),
        arguments=arguments if isinstance(arguments, dict) else json.dumps(arguments, ensure_ascii=False)))


def make(spec: str, model: str, options) -> AnthropicTeacher:
    return AnthropicTeacher(spec, model, ApiSettings.from_options(options, "anthropic"))
