"""`anthropic:<model>`: Claude through the official SDK (honours ANTHROPIC_BASE_URL).

Structured output is a forced tool call whose input schema is the task's pydantic schema; the tool's
input comes back as the JSON text the task parses. Limits and retries are shared with openai: (`http/limits.py`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import anthropic

from distill.records import Usage
from distill.teachers.base import GenerationRequest, GenerationResult
from distill.teachers.http.anthropic.batch import AnthropicBatches
from distill.teachers.http.base import ApiTeacher, server_address
from distill.teachers.http.cost import PriceTable
from distill.teachers.http.limits import ApiSettings, CallFailed, TransientError, http_client, require_key

# Anthropic's stop reasons in the protocol's terms (the parser rejects length / refusal with a reason).
FINISH: dict[str | None, str] = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "stop", "max_tokens": "length",
          "refusal": "refusal", "model_context_window_exceeded": "length"}
TOOL = "output"


class AnthropicTeacher(ApiTeacher):
    provider = "anthropic"

    def __init__(self, spec: str, model: str, settings: ApiSettings):
        key = require_key("ANTHROPIC_API_KEY", spec)
        address = server_address(settings.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None)
        super().__init__(spec, model, settings, key, address, lambda limits: anthropic.AsyncAnthropic(
            api_key=key, base_url=address.url, default_query=address.query or None,
            default_headers=address.headers or None, timeout=settings.timeout_s, max_retries=0,
            http_client=http_client(anthropic, limits, settings.timeout_s)))

    def batches(self) -> AnthropicBatches:
        return AnthropicBatches(self)

    async def generate_one(self, request: GenerationRequest) -> GenerationResult:
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
            "messages": [{"role": m.role, "content": m.content} for m in request.messages if m.role != "system"],
            "max_tokens": request.sampling.max_tokens,
            # No temperature/top_p/seed: the current SDK's Messages API no longer takes them (the models
            # sample at their own settings). They stay in the request fingerprint all the same.
        }
        if system:
            params["system"] = system
        if request.json_schema is not None:
            params["tools"] = [{"name": TOOL, "description": "Record the answer.", "input_schema": request.json_schema}]
            params["tool_choice"] = {"type": "tool", "name": TOOL}
        return params

    def result(self, key: str, data: dict[str, Any]) -> GenerationResult:
        return parse_message(key, data, self.prices, self.model, batch=self.batch)


def parse_message(key: str, data: dict[str, Any], prices: PriceTable, model: str, batch: bool = False) -> GenerationResult:
    """A Messages API body -> result; a tool call's input becomes JSON text for the task's parser."""
    texts, tool_input = [], None
    for block in data.get("content") or []:
        if block.get("type") == "tool_use":
            tool_input = block.get("input")
        elif block.get("type") == "text":
            texts.append(block.get("text") or "")
    text = json.dumps(tool_input, ensure_ascii=False) if tool_input is not None else "".join(texts)
    usage = data.get("usage") or {}
    prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    return GenerationResult(key=key, text=text, finish_reason=FINISH.get(data.get("stop_reason"), data.get("stop_reason")),
                            usage=Usage(prompt_tokens=prompt, completion_tokens=completion,
                                        cost_usd=prices.cost(model, prompt, completion, batch=batch)))


def make(spec: str, model: str, options) -> AnthropicTeacher:
    return AnthropicTeacher(spec, model, ApiSettings.from_options(options, "anthropic"))
