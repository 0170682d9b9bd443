"""`anthropic:<model>`: Claude through the official SDK (honours ANTHROPIC_BASE_URL).

Structured output is a forced tool call whose input schema is the task's pydantic schema; the tool's
input comes back as the JSON text the task parses. Limits and retries are shared with openai: (limits.py).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from distill.records import Usage
from distill.teachers.base import GenerationRequest, GenerationResult
from distill.teachers.cost import PriceTable, estimate_prompt_tokens
from distill.teachers.limits import (AdaptiveConcurrency, ApiSettings, CallFailed, RateLimiter, RetryPolicy,
                                     TransientError, POOL, connection_limits, http_module, require_key, scrubber, with_retries)

# Anthropic's stop reasons in the protocol's terms (the parser rejects length / refusal with a reason).
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "stop", "max_tokens": "length",
          "refusal": "refusal", "model_context_window_exceeded": "length"}
TOOL = "output"


class AnthropicTeacher:
    batch_size = 1

    def __init__(self, spec: str, model: str, settings: ApiSettings):
        import anthropic

        key = require_key("ANTHROPIC_API_KEY", spec)
        base_url = settings.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self.spec, self.model = spec, model
        self.cache_namespace = spec if base_url is None else f"{spec}@{base_url.rstrip('/')}"
        self.concurrency = settings.concurrency
        self.prices = PriceTable(settings.prices)
        self.limiter = RateLimiter(settings.rpm, settings.tpm)
        self.gate = AdaptiveConcurrency(settings.concurrency)
        self.policy = RetryPolicy(max_retries=settings.max_retries, base_s=settings.retry_base_s)
        self.scrub = scrubber(key)
        self.raw_type = http_module().Response
        # httpcore's pool scans every connection on each request (O(n^2) at high concurrency: ~6 ms a
        # request at 256), so requests are spread over several clients of at most POOL connections each.
        per_pool = min(settings.concurrency, POOL)
        self.clients = [anthropic.AsyncAnthropic(
            api_key=key, base_url=base_url, timeout=settings.timeout_s, max_retries=0,
            http_client=anthropic.DefaultAsyncHttpxClient(limits=connection_limits(per_pool),
                                                          timeout=settings.timeout_s),
        ) for _ in range(-(-settings.concurrency // per_pool))]
        self._turn = 0

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        if len(requests) == 1:
            return [await self.generate_one(requests[0])]
        return list(await asyncio.gather(*(self.generate_one(r) for r in requests)))

    async def generate_one(self, request: GenerationRequest) -> GenerationResult:
        params = self.params(request)
        tokens = estimate_prompt_tokens(request.messages) + request.sampling.max_tokens
        try:
            data = await with_retries(lambda: self._send(params), limiter=self.limiter, gate=self.gate,
                                      policy=self.policy, tokens=tokens, scrub=self.scrub)
        except CallFailed as failed:
            return GenerationResult(key=request.key, error=failed.message)
        return self.result(request.key, data)

    async def _send(self, params: dict[str, Any]) -> dict[str, Any]:
        # Plain body, raw response: the typed create() costs ~3 ms of transforms a request (see openai_teacher).
        response = await self._next_client().post("/v1/messages", body=params, cast_to=self.raw_type)
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
        return parse_message(key, data, self.prices, self.model)

    def price_request(self, request: GenerationRequest) -> float | None:
        return self.prices.cost(self.model, estimate_prompt_tokens(request.messages), request.sampling.max_tokens)

    def _next_client(self):
        self._turn = (self._turn + 1) % len(self.clients)
        return self.clients[self._turn]

    async def aclose(self) -> None:
        for client in self.clients:
            await client.close()

    def close(self) -> None:
        pass


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


def make(spec: str, model: str, options) -> Any:
    settings = ApiSettings.from_options(options, "anthropic")
    if (options.model_extra or {}).get("batch"):
        try:
            from distill.teachers.batch_api import AnthropicBatchTeacher
        except ImportError:
            from distill.errors import DistillError

            raise DistillError("--batch (provider batch APIs) is not available in this version yet; "
                               "run without --batch") from None
        return AnthropicBatchTeacher(spec, model, settings)
    return AnthropicTeacher(spec, model, settings)
