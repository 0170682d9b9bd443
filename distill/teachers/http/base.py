"""What every HTTP API teacher shares: limits, retries, key scrubbing, prices, and a pool of SDK clients.

A provider's folder (`http/openai/`, `http/anthropic/`) subclasses `ApiTeacher` and supplies only what
differs: how to build its SDK client, the request body, how to send it, how to read the answer, and
its batch adapter.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from distill.errors import DistillError
from distill.redact import redact_url, url_secrets
from distill.teachers.base import GenerationRequest, GenerationResult, Teacher
from distill.teachers.http.cost import PriceTable, estimate_prompt_tokens
from distill.teachers.http.limits import (
    POOL,
    AdaptiveConcurrency,
    ApiSettings,
    RateLimiter,
    RetryPolicy,
    aiohttp_available,
    by_deadline,
    connection_limits,
    http_module,
    scrubber,
    with_retries,
)


@dataclass(frozen=True)
class ServerAddress:
    """A base URL split the way the SDK clients take it.

    The SDKs append each route to the base URL as a string, so a query in it (`/v1?api-key=K`) ends up
    before the route (`/v1?api-key=K/chat/completions`): the query goes to `query`, sent with every
    request. aiohttp refuses user info in a URL beside the SDK's own auth header, and a proxy with basic
    auth in front of a self-hosted server (nginx before vLLM or Ollama) is what `user:pass@` means: it
    becomes an `Authorization: Basic` header, which takes the place of the SDK's bearer key on openai:.
    """

    url: str | None  # what the SDK is given: no user info, no query
    shown: str | None  # the URL with its secrets masked: for messages and the cache namespace
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()


def server_address(base_url: str | None) -> ServerAddress:
    """`base_url` (None: the provider's own) as `ServerAddress` parts."""
    if not base_url:
        return ServerAddress(None, None)
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - a port that is not a number raises here, not deep in the SDK
    except ValueError as exc:
        raise DistillError(f"--base-url {redact_url(base_url)}: not a URL ({exc}); give one such as "
                           "http://localhost:8000/v1") from None
    headers = {}
    if parts.username is not None or parts.password is not None:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    host = parts.netloc.rpartition("@")[2]
    return ServerAddress(url=urlunsplit((parts.scheme, host, parts.path, "", "")), shown=redact_url(base_url),
                         query=dict(parse_qsl(parts.query, keep_blank_values=True)), headers=headers,
                         secrets=tuple(url_secrets(base_url)))


class ApiTeacher(Teacher):
    api = True
    batch_size = 1  # one HTTP request per generation; concurrency gives the throughput
    batch = False  # priced as a provider batch job (about half): set when a BatchTeacher drives it
    provider = ""  # its section of --api-config (openai, anthropic)

    def __init__(self, spec: str, model: str, settings: ApiSettings, key: str | None, address: ServerAddress,
                 make_client: Callable[[Any], Any]):
        self.spec, self.model, self.settings = spec, model, settings
        # The same model name on another server is another model: keep their cached answers apart. The
        # namespace is stored (cache, run.db's batch jobs): the URL's keys stay out of it.
        self._namespace = spec if address.shown is None else f"{spec}@{address.shown.rstrip('/')}"
        self.concurrency = settings.concurrency
        self.prices = PriceTable(settings.prices)
        self.limiter = RateLimiter(settings.rpm, settings.tpm)
        self.gate = AdaptiveConcurrency(settings.concurrency)
        self.policy = RetryPolicy(max_retries=settings.max_retries, base_s=settings.retry_base_s)
        self.sleep = asyncio.sleep  # backoff waits; tests give the limiter and this a virtual clock
        self.scrub = scrubber(key, *address.secrets)
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
        """This provider's batch adapter around this teacher (`http/<provider>/batch.py`), for `--batch`."""
        raise NotImplementedError

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        if len(requests) == 1:
            return [await self.generate_one(requests[0])]
        return list(await asyncio.gather(*(self.generate_one(r) for r in requests)))

    async def generate_one(self, request: GenerationRequest) -> GenerationResult:
        raise NotImplementedError

    async def send_with_retries(self, request: GenerationRequest, send: Callable[[], Awaitable[Any]]) -> Any:
        """`send()` under the shared rate limiter, AIMD gate and retry policy, each try given the timeout for
        its whole response; raises `CallFailed`."""
        tokens = estimate_prompt_tokens(request.messages, request.tools) + request.sampling.max_tokens
        return await with_retries(by_deadline(send, self.settings.timeout_s), limiter=self.limiter, gate=self.gate,
                                  policy=self.policy, tokens=tokens, scrub=self.scrub, sleep=self.sleep)

    def price_request(self, request: GenerationRequest) -> float | None:
        """The most this request can cost: its prompt (estimated high) and every allowed output token."""
        return self.prices.cost(self.model, estimate_prompt_tokens(request.messages, request.tools),
                                request.sampling.max_tokens,
                                batch=self.batch)

    def next_client(self):
        self._turn = (self._turn + 1) % len(self.clients)
        return self.clients[self._turn]

    async def aclose(self) -> None:
        for client in self.clients:
            await client.close()

    def close(self) -> None:
        pass  # the HTTP clients are closed in aclose, inside the event loop that owns them
