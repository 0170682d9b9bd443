"""What every HTTP API teacher shares: limits, retries, key scrubbing, prices, and a pool of SDK clients.

A provider module subclasses `ApiTeacher` and supplies only what differs: how to build its SDK
client, the request body, how to send it, and how to read the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from distill.teachers.base import GenerationRequest, GenerationResult, Teacher
from distill.teachers.cost import PriceTable, estimate_prompt_tokens
from distill.teachers.limits import (POOL, AdaptiveConcurrency, ApiSettings, RateLimiter, RetryPolicy,
                                     aiohttp_available, connection_limits, http_module, scrubber, with_retries)


class ApiTeacher(Teacher):
    api = True
    batch_size = 1  # one HTTP request per generation; concurrency gives the throughput
    batch = False  # priced as a provider batch job (about half): set when a BatchTeacher drives it
    provider = ""  # its section of --api-config (openai, anthropic)

    def __init__(self, spec: str, model: str, settings: ApiSettings, key: str | None, base_url: str | None,
                 make_client: Callable[[Any], Any]):
        self.spec, self.model, self.settings = spec, model, settings
        # The same model name on another server is another model: keep their cached answers apart.
        self._namespace = spec if base_url is None else f"{spec}@{base_url.rstrip('/')}"
        self.concurrency = settings.concurrency
        self.prices = PriceTable(settings.prices)
        self.limiter = RateLimiter(settings.rpm, settings.tpm)
        self.gate = AdaptiveConcurrency(settings.concurrency)
        self.policy = RetryPolicy(max_retries=settings.max_retries, base_s=settings.retry_base_s)
        self.sleep = asyncio.sleep  # backoff waits; tests give the limiter and this a virtual clock
        self.scrub = scrubber(key)
        self.raw_type = http_module().Response
        # httpcore's pool scans every connection on each request (O(n^2) at high concurrency: ~6 ms a
        # request at 256), so requests are spread over several clients of at most POOL connections each.
        # aiohttp's connector has no such cost: one client holds them all.
        per_pool = settings.concurrency if aiohttp_available() else min(settings.concurrency, POOL)
        self.clients = [make_client(connection_limits(per_pool)) for _ in range(-(-settings.concurrency // per_pool))]
        self._turn = 0

    @property
    def cache_namespace(self) -> str:
        return self._namespace

    def batches(self) -> Any:
        """This provider's batch API around this teacher (batch.py), for `--batch`."""
        raise NotImplementedError

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        if len(requests) == 1:
            return [await self.generate_one(requests[0])]
        return list(await asyncio.gather(*(self.generate_one(r) for r in requests)))

    async def generate_one(self, request: GenerationRequest) -> GenerationResult:
        raise NotImplementedError

    async def send_with_retries(self, request: GenerationRequest, send: Callable[[], Awaitable[Any]]) -> Any:
        """`send()` under the shared rate limiter, AIMD gate and retry policy; raises `CallFailed`."""
        tokens = estimate_prompt_tokens(request.messages) + request.sampling.max_tokens
        return await with_retries(send, limiter=self.limiter, gate=self.gate, policy=self.policy, tokens=tokens,
                                  scrub=self.scrub, sleep=self.sleep)

    def price_request(self, request: GenerationRequest) -> float | None:
        """The most this request can cost: its prompt (estimated high) and every allowed output token."""
        return self.prices.cost(self.model, estimate_prompt_tokens(request.messages), request.sampling.max_tokens,
                                batch=self.batch)

    def next_client(self):
        self._turn = (self._turn + 1) % len(self.clients)
        return self.clients[self._turn]

    async def aclose(self) -> None:
        for client in self.clients:
            await client.close()

    def close(self) -> None:
        pass  # the HTTP clients are closed in aclose, inside the event loop that owns them
