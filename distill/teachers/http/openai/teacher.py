"""`openai:<model>`: OpenAI, or any OpenAI-compatible server (vLLM, llama.cpp, Ollama, TGI) via a base URL.

Requests go through the official SDK with its own retries off: ours (`http/limits.py`) share one rate
limiter and one AIMD gate across every request, which per-request SDK retries cannot. Responses are
read as plain JSON rather than SDK models: it is the hot path, and the fields we need are few.
"""

from __future__ import annotations

import json
import os
from typing import Any

import openai

from distill.records import Message, ToolCall, ToolFunction, Usage
from distill.teachers.base import GenerationRequest, GenerationResult
from distill.teachers.http.base import ApiTeacher, server_address
from distill.teachers.http.limits import ApiSettings, CallFailed, TransientError, http_client, require_key
from distill.teachers.http.openai.batch import OpenAIBatches
from distill.teachers.http.openai.formats import JSON_MODES, about_format


class OpenAITeacher(ApiTeacher):
    provider = "openai"

    def __init__(self, spec: str, model: str, settings: ApiSettings):
        base_url = settings.base_url or os.environ.get("OPENAI_BASE_URL") or None
        # A self-hosted server often needs no key; OpenAI itself always does.
        key = require_key("OPENAI_API_KEY", spec, optional=base_url is not None)
        address = server_address(base_url)
        super().__init__(spec, model, settings, key, address, lambda limits: openai.AsyncOpenAI(
            api_key=key or "not-needed", base_url=address.url, default_query=address.query or None,
            default_headers=address.headers or None, timeout=settings.timeout_s, max_retries=0,
            http_client=http_client(openai, limits, settings.timeout_s)))
        self.json_mode = 0
        # OpenAI's newer models take max_completion_tokens only; compatible servers know max_tokens.
        self.max_tokens_field = "max_completion_tokens" if base_url is None else "max_tokens"

    def batches(self) -> OpenAIBatches:
        return OpenAIBatches(self)

    async def generate_one(self, request: GenerationRequest) -> GenerationResult:
        while True:
            mode = self.json_mode
            params = self.params(request, mode)
            try:
                raw = await self.send_with_retries(request, lambda: self._send(params))
            except CallFailed as failed:
                if request.json_schema is not None and failed.status in (400, 422) and mode < len(JSON_MODES) - 1 \
                        and about_format(failed.message):
                    self.json_mode = max(self.json_mode, mode + 1)  # remember for every later request
                    continue
                return GenerationResult(key=request.key, error=failed.message)
            return self.result(request.key, raw)

    async def _send(self, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        # The SDK's typed create() walks the whole body (messages, schema) through its TypedDict
        # transforms: ~3 ms a request. Posting the plain body keeps the SDK's auth, URL and error types.
        response = await self.next_client().post("/chat/completions", body=params, cast_to=self.raw_type)
        try:
            data = json.loads(response.content)
            data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise TransientError(f"{type(exc).__name__} in a {len(response.content)}-byte body") from None
        self.limiter.observe(response.headers)
        return data

    def params(self, request: GenerationRequest, mode: int) -> dict[str, Any]:
        messages = [wire_message(m) for m in request.messages]
        s = request.sampling
        params: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": s.temperature,
                                  "top_p": s.top_p, self.max_tokens_field: s.max_tokens}
        if request.tools:
            params["tools"] = request.tools
        if s.seed is not None:
            params["seed"] = s.seed
        schema = request.json_schema
        if schema is not None:
            if JSON_MODES[mode] == "json_schema":
                params["response_format"] = {"type": "json_schema",
                                             "json_schema": {"name": "output", "schema": schema, "strict": False}}
            else:
                # json_object needs the word JSON in the prompt, and the schema is no longer enforced.
                hint = "Reply with one JSON object only, matching this JSON schema: " + json.dumps(schema)
                messages.append({"role": "system", "content": hint})
                if JSON_MODES[mode] == "json_object":
                    params["response_format"] = {"type": "json_object"}
        return params

    def result(self, key: str, data: dict[str, Any]) -> GenerationResult:
        choice = data["choices"][0]
        message = choice.get("message") or {}
        text, finish = message.get("content"), choice.get("finish_reason")
        if message.get("refusal"):
            text, finish = message["refusal"], "refusal"
        calls = [read_call(call) for call in message.get("tool_calls") or []] or None
        if calls and text is None:
            text = ""  # a turn that only calls tools has no text: an answer all the same
        # vLLM and other servers of reasoning models return the reasoning apart: `reasoning_content`
        # (older vLLM, DeepSeek's API) or `reasoning` (newer vLLM).
        reasoning = message.get("reasoning_content") or message.get("reasoning") or None
        usage = data.get("usage") or {}
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        cost = self.prices.cost(self.model, prompt, completion, batch=self.batch)
        return GenerationResult(key=key, text=text, finish_reason=finish, tool_calls=calls,
                                reasoning=reasoning if isinstance(reasoning, str) else None,
                                usage=Usage(prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost))


def wire_message(message: Message) -> dict[str, Any]:
    """A turn as chat completions take it: an assistant's calls with their arguments as a JSON string, a tool's
    result with the id of the call it answers."""
    row: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        row["tool_calls"] = [{"id": call.id, "type": "function", "function": {
            "name": call.function.name, "arguments": call.function.arguments if isinstance(call.function.arguments, str)
            else json.dumps(call.function.arguments, ensure_ascii=False)}} for call in message.tool_calls]
        row["content"] = message.content or None
    if message.role == "tool":
        row["tool_call_id"] = message.tool_call_id or ""
    return row


def read_call(call: dict[str, Any]) -> ToolCall:
    """One of `tool_calls` as a record: arguments decoded when they are a JSON object, else kept as sent."""
    function = call.get("function") or {}
    arguments: dict[str, Any] | str = function.get("arguments") or "{}"
    if isinstance(arguments, str):
        try:
            decoded = json.loads(arguments)
        except json.JSONDecodeError:
            decoded = None
        arguments = decoded if isinstance(decoded, dict) else arguments
    return ToolCall(id=str(call.get("id") or ""), function=ToolFunction(name=str(function.get("name") or ""),
                                                                         arguments=arguments))


def make(spec: str, model: str, options) -> OpenAITeacher:
    return OpenAITeacher(spec, model, ApiSettings.from_options(options, "openai"))
