"""Client-side limits for API teachers: rate buckets, adaptive concurrency (AIMD), bounded retries.

Providers answer overload with 429 / 529 / 5xx and a `retry-after`. Retrying blindly at full
concurrency makes it worse, so a 429 both pauses every request until `retry-after` and halves the
number of requests in flight; each success adds it back slowly (additive increase).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from distill.errors import DistillError
from distill.redact import redact

T = TypeVar("T")

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}
OVERLOAD_STATUS = {429, 503, 529}


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits as token buckets, plus a shared pause after a 429.

    Each bucket refills at its per-minute rate and holds at most one second's allowance (at least
    one request), so a limit spaces requests evenly from the first one on: any 60 s window carries
    at most the limit plus one second's worth. (A bucket holding a whole minute would let the first
    minute carry twice the limit, and burst a quantised provider limit into 429s.) A request larger
    than the token bucket goes once the bucket is full and leaves it in debt, so the long-run rate
    stays exact. Limits the provider reports in `x-ratelimit-*` / `anthropic-ratelimit-*` headers
    tighten ours when lower, and a provider that says none are left pauses everyone until its reset.
    `clock`, `wall` and `sleep` are injectable for tests.
    """

    BURST_S = 1.0  # the most a bucket holds, in seconds of its rate

    def __init__(self, rpm: float | None = None, tpm: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep):
        self.clock, self.wall, self.sleep = clock, wall, sleep
        self.rpm: float | None = None
        self.tpm: float | None = None
        self._requests = self._tokens = 0.0
        self._stamp = clock()
        self.paused_until = 0.0
        self.tighten(rpm, tpm)

    def _cap(self, per_minute: float) -> float:
        return max(1.0, per_minute * self.BURST_S / 60)

    def _refill(self, now: float) -> None:
        elapsed, self._stamp = now - self._stamp, now
        if self.rpm:
            self._requests = min(self._cap(self.rpm), self._requests + elapsed * self.rpm / 60)
        if self.tpm:
            self._tokens = min(self._cap(self.tpm), self._tokens + elapsed * self.tpm / 60)

    def tighten(self, rpm: float | None = None, tpm: float | None = None) -> None:
        """Adopt a limit where we had none or a higher one; a new bucket starts full."""
        self._refill(self.clock())
        if rpm and rpm > 0 and (not self.rpm or rpm < self.rpm):
            cap = self._cap(rpm)
            self._requests = cap if not self.rpm else min(self._requests, cap)
            self.rpm = float(rpm)
        if tpm and tpm > 0 and (not self.tpm or tpm < self.tpm):
            cap = self._cap(tpm)
            self._tokens = cap if not self.tpm else min(self._tokens, cap)
            self.tpm = float(tpm)

    async def acquire(self, tokens: int = 0) -> None:
        while True:
            now = self.clock()
            wait = self.paused_until - now
            if wait <= 0 and not self.rpm and not self.tpm:
                return  # the common case: no client-side limits, nothing to account
            if wait <= 0:
                self._refill(now)
                need_r = 0.0 if not self.rpm else (1 - self._requests) * 60 / self.rpm
                # A request bigger than the bucket waits for a full bucket, then leaves it in debt.
                need_t = 0.0 if not self.tpm else (min(tokens, self._cap(self.tpm)) - self._tokens) * 60 / self.tpm
                wait = max(need_r, need_t)
                if wait <= 0:
                    if self.rpm:
                        self._requests -= 1
                    if self.tpm:
                        self._tokens -= tokens
                    return
            await self.sleep(min(wait, 5.0) + random.uniform(0, 0.01))

    def pause(self, seconds: float) -> None:
        """Everyone waits: after a 429, the next requests would only meet another 429."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)

    def observe(self, headers: Any) -> None:
        """Learn the provider's limits from response headers (OpenAI and Anthropic spellings).

        OpenAI: x-ratelimit-{limit,remaining,reset}-{requests,tokens}, resets as durations ('1s',
        '6m0s'). Anthropic: anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}, resets as
        RFC 3339 times. Nothing left of either budget pauses every request until its reset.
        """
        if headers is None:
            return
        found = {k.lower(): v for k, v in headers.items() if "ratelimit" in k.lower()}
        if not found:
            return  # one pass over the headers: most servers send none
        for kind in ("requests", "tokens"):
            openai_style = (found.get(f"x-ratelimit-limit-{kind}"), found.get(f"x-ratelimit-remaining-{kind}"),
                            found.get(f"x-ratelimit-reset-{kind}"))
            anthropic_style = (found.get(f"anthropic-ratelimit-{kind}-limit"),
                               found.get(f"anthropic-ratelimit-{kind}-remaining"),
                               found.get(f"anthropic-ratelimit-{kind}-reset"))
            for limit, remaining, reset in (openai_style, anthropic_style):
                limit = _number(limit)
                if limit:
                    self.tighten(**{"rpm" if kind == "requests" else "tpm": limit})
                remaining = _number(remaining)
                if remaining is not None and remaining <= 0:
                    seconds = parse_reset(reset, self.wall())
                    self.pause(seconds if seconds is not None else 1.0)


class AdaptiveConcurrency:
    """AIMD: at most `limit` requests in flight; halve on overload, +1/limit per success."""

    def __init__(self, maximum: int, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.maximum = max(1, maximum)
        self.limit = float(self.maximum)
        self.active = 0
        self._waiters: list[asyncio.Future] = []
        self._last_cut = float("-inf")

    async def __aenter__(self) -> AdaptiveConcurrency:
        while self.active >= int(self.limit):
            future = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
            await future
        self.active += 1
        return self

    async def __aexit__(self, *exc) -> None:
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        free = int(self.limit) - self.active
        while free > 0 and self._waiters:
            future = self._waiters.pop(0)
            if not future.done():
                future.set_result(None)
                free -= 1

    def success(self) -> None:
        if self.limit < self.maximum:
            self.limit = min(self.maximum, self.limit + 1 / self.limit)
            self._wake()

    def overload(self) -> None:
        now = self.clock()
        if now - self._last_cut > 1.0:  # one burst of 429s is one signal, not fifty halvings
            self.limit = max(1.0, self.limit / 2)
            self._last_cut = now


@dataclass
class RetryPolicy:
    max_retries: int = 6
    base_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 120.0) + random.uniform(0, 0.1 * retry_after + 0.01)
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** attempt))  # full jitter


class CallFailed(Exception):
    """A call that failed for good: not retryable, or out of retries. `message` is safe to store."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message, self.status = message, status


@dataclass
class Failure:
    retryable: bool
    overload: bool
    retry_after: float | None
    status: int | None
    message: str


class DeadlineExceeded(Exception):
    """The whole response took longer than the teacher's timeout (the SDKs' own timeout is per read)."""


def by_deadline(send: Callable[[], Awaitable[T]], seconds: float) -> Callable[[], Awaitable[T]]:
    """`send`, given `seconds` for the whole response. The SDKs hand their timeout to the transport as a
    limit on each read, so a server sending a byte now and then holds a request open for ever."""

    async def send_in_time() -> T:
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                return await send()
        except TimeoutError:
            if deadline.expired():
                raise DeadlineExceeded(f"timeout: no whole response in {seconds:g} s") from None
            raise

    return send_in_time


def classify(exc: BaseException) -> Failure:
    """Works for both SDKs: they share the APIStatusError / APITimeoutError / APIConnectionError shapes."""
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    retry_after = None
    if headers is not None:
        retry_after = parse_duration(headers.get("retry-after-ms"), ms=True)
        if retry_after is None:
            retry_after = parse_reset(headers.get("retry-after"))
    if status is not None:
        body = _error_text(exc)
        return Failure(status in RETRYABLE_STATUS, status in OVERLOAD_STATUS, retry_after, status,
                       f"HTTP {status}: {body}")
    if isinstance(exc, TransientError):
        return Failure(True, False, None, None, f"malformed response: {exc}")
    if isinstance(exc, DeadlineExceeded):
        return Failure(True, False, None, None, str(exc))
    cause = _network_cause(exc)
    if cause is not None:  # what the socket said, whatever the SDK's wrapper is called
        return Failure(True, False, None, None, cause)
    if "Timeout" in name:
        return Failure(True, False, None, None, "timeout: no response in time")
    if "Connection" in name:
        return Failure(True, False, None, None, f"connection error: {exc}")
    return Failure(False, False, None, None, f"{name}: {exc}")


# How a failure that reached no teacher at all begins (classify's words): a run whose items failed so says
# the teacher stopped answering, where a refused or malformed request is that one item's problem.
UNREACHABLE = ("connection refused", "cannot resolve", "connection reset", "connection error", "timeout: no response")


def unreachable(detail: str) -> bool:
    """Whether a recorded failure ("instruction: connection refused ... after 7 attempts") reached no teacher."""
    return any(words in detail for words in UNREACHABLE)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what caused it, as far down as the SDK and its transport recorded."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        nested = [a for a in getattr(link, "args", ()) if isinstance(a, BaseException)]
        link = link.__cause__ or link.__context__ or getattr(link, "os_error", None) or (nested[0] if nested else None)


def _server(exc: BaseException) -> str:
    """The scheme, host and port the failed request went to (never a path or credentials), or "the base URL"."""
    for link in _causes(exc):
        try:
            url = getattr(getattr(link, "request", None), "url", None)
        except RuntimeError:  # httpx: an error made without its request
            continue
        if url is not None and getattr(url, "host", None):
            port = f":{url.port}" if url.port else ""
            return f"{url.scheme}://{url.host}{port}"
    return "the base URL"


def _network_cause(exc: BaseException) -> str | None:
    """The refused, reset or unresolvable connection under an SDK error, naming the server. The SDKs'
    aiohttp transport reports a refused connection as a connect *timeout*; its cause chain holds the truth."""
    for link in _causes(exc):
        if isinstance(link, ConnectionRefusedError):
            return f"connection refused: nothing is listening at {_server(exc)} (is the server running?)"
        if isinstance(link, socket.gaierror):
            return f"cannot resolve the server's host name ({_server(exc)}): check the base URL"
        if isinstance(link, ConnectionResetError):
            return f"connection reset by the server ({_server(exc)})"
    return None


def _error_text(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", None) or exc)


async def with_retries(send: Callable[[], Awaitable[T]], *, limiter: RateLimiter, gate: AdaptiveConcurrency,
                       policy: RetryPolicy, tokens: int = 0, scrub: Callable[[str], str] = str,
                       sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> T:
    """Call `send` under the limits; retry retryable failures with backoff; raise CallFailed at the end."""
    attempt = 0
    while True:
        await limiter.acquire(tokens)
        async with gate:
            try:
                value = await send()
            except Exception as exc:
                failure = classify(exc)
            else:
                gate.success()
                return value
        if failure.overload:
            gate.overload()
            if failure.retry_after is not None:
                limiter.pause(failure.retry_after)
        if not failure.retryable or attempt >= policy.max_retries:
            tries = f" after {attempt + 1} attempts" if attempt else ""
            raise CallFailed(scrub(failure.message)[:500] + tries, failure.status)
        await sleep(policy.delay(attempt, failure.retry_after))
        attempt += 1


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(value: str | None, ms: bool = False) -> float | None:
    """'0.5', '2', '1m30s', '250ms' -> seconds (OpenAI's reset headers use the unit form)."""
    if value is None:
        return None
    value = str(value).strip()
    try:
        number = float(value)
        return number / 1000 if ms else number
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def parse_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds until a reset: a duration (OpenAI's '6m0s', retry-after's '2'), an RFC 3339 time
    (Anthropic's anthropic-ratelimit-*-reset) or an HTTP date (retry-after's other form)."""
    if value is None:
        return None
    text = str(value).strip()
    when = None
    if text[:4].isdigit() and "-" in text:  # 2025-01-01T00:00:01Z, 2025-01-01T00:00:01.5+00:00
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    elif "," in text:  # Wed, 21 Oct 2015 07:28:00 GMT
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    if when is None:
        return parse_duration(text)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class TransientError(Exception):
    """A response we could not use (malformed body) that a retry may fix."""


def require_key(env_var: str, spec: str, optional: bool = False) -> str | None:
    """The API key from the environment, or a DistillError naming the variable (never a key)."""
    key = os.environ.get(env_var, "").strip()
    if not key and not optional:
        raise DistillError(f"teacher {spec!r} needs an API key: set the environment variable {env_var}")
    return key or None


def scrubber(*secrets: str | None) -> Callable[[str], str]:
    """Masks keys in text that may be stored or printed (some servers echo the key in errors), and the
    keys of any URL in it (an error naming the base URL)."""
    # Longest first: a key that contains another (a password inside its URL-encoded form) goes whole.
    live = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def scrub(text: str) -> str:
        text = redact(text)
        for secret in live:
            text = text.replace(secret, "***")
        return " ".join(text.split())  # one line

    return scrub


def http_module():
    """The HTTP library the installed SDKs are built on (httpx2 now, httpx before)."""
    try:
        import httpx2 as httpx  # noqa: PLC0415 (the api extra's; which one the SDKs bring)
    except ImportError:  # pragma: no cover - older SDKs
        import httpx  # type: ignore[no-redef]  # noqa: PLC0415 (the same module, by its older name)
    return httpx


POOL = 32  # connections per httpx client; more clients above that (see http/base.py)


def aiohttp_available() -> bool:
    try:
        import aiohttp  # noqa: F401, PLC0415 (the api extra's; optional within it)
    except ImportError:
        return False
    return True


def http_client(sdk: Any, limits: Any, timeout_s: float) -> Any:
    """The SDK's own aiohttp transport where aiohttp is installed, else its httpx client.

    Same SDK, same errors and headers. Measured at 256 requests in flight, a request through the
    SDK costs ~1.0 ms of CPU over aiohttp and ~1.7 ms over httpx/httpcore, and one event loop has
    to carry hundreds of them a second.
    """
    factory = getattr(sdk, "DefaultAioHttpClient", None) if aiohttp_available() else None
    if factory is not None:
        try:
            return factory(limits=limits, timeout=timeout_s)
        except RuntimeError:  # an SDK release whose aiohttp client needs its own extra installed
            pass
    return sdk.DefaultAsyncHttpxClient(limits=limits, timeout=timeout_s)


def connection_limits(concurrency: int):
    """Keep a connection per request in flight: the SDK default keeps 100 alive and churns above that."""
    return http_module().Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)


@dataclass
class ApiSettings:
    """What every API teacher takes from `TeacherOptions` (flags win over the provider's config)."""

    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    timeout_s: float = 60.0
    max_retries: int = 6
    base_url: str | None = None
    prices: dict[str, Any] | None = None
    retry_base_s: float = 0.5  # first backoff step; tests shrink it
    sender_process: bool | None = None  # send from a child process; None: from SENDER_PROCESS_FROM in flight
    thinking_budget: int | None = None  # anthropic: extended thinking's token budget (`AnthropicConfig`)

    @classmethod
    def from_options(cls, options: Any, provider: str) -> ApiSettings:
        api_config = getattr(options, "api_config", None) or {}
        config = api_config.get(provider) or {}

        def pick(name: str, default: Any) -> Any:
            value = getattr(options, name, None)
            if value is None:
                value = config.get(name)
            return default if value is None else value

        return cls(concurrency=int(pick("concurrency", 16)), rpm=pick("rpm", None), tpm=pick("tpm", None),
                   timeout_s=float(pick("timeout_s", 60.0)), max_retries=int(pick("max_retries", 6)),
                   base_url=pick("base_url", None),
                   prices=api_config.get("prices"),
                   retry_base_s=float(pick("retry_base_s", 0.5)), sender_process=pick("sender_process", None),
                   thinking_budget=pick("thinking_budget", None))
