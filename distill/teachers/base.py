"""The one protocol every teacher backend speaks: a batch of chat requests in, texts and usage out.

`Teacher` declares every member a caller may use, with a default for all but `generate`, so callers
never probe a teacher for what it has. Backends subclass it (plugins too: see distill/plugins.py);
wrappers (response cache, sender process, batch jobs) subclass `WrappedTeacher`, which hands every
member they do not change to the teacher inside. `distill.teachers.stack.build_teacher` assembles them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from distill.records import GenerationRequest, GenerationResult

__all__ = ["GenerationRequest", "GenerationResult", "Teacher", "WrappedTeacher"]


class Teacher:
    """A teacher backend. Subclasses set `spec` and implement `generate`; every other member has a default."""

    spec: str = ""  # e.g. "local", "hf:HuggingFaceTB/SmolLM2-135M-Instruct", "openai:gpt-4o-mini"
    batch_size: int = 1  # requests one `generate` call takes at most
    concurrency: int = 1  # `generate` calls that may run at once
    collect_s: float = 0.0  # >0: gather requests this long into one `generate` call (provider batch jobs)
    # An HTTP API: answers go to the shared response cache, and the API settings (--base-url, --budget-usd,
    # --concurrency ...) apply. Read from the class, before any teacher is built.
    api: ClassVar[bool] = False

    @property
    def cache_namespace(self) -> str:
        """What response-cache keys are made under: the same model on another server is another model."""
        return self.spec

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Answer every request; a failure is a result with `error` set, never an exception."""
        raise NotImplementedError

    def price_request(self, request: GenerationRequest) -> float | None:
        """The most this request can cost in USD (its prompt estimated high, every allowed output token);
        None when the price is unknown (a budget then refuses to start)."""
        return None

    def attach_store(self, store: Any) -> None:
        """The run store, for teachers that keep state in run.db (provider batch jobs)."""

    def stream_tokens(self, callback: Callable[[int], None]) -> bool:
        """Have `callback` called with the tokens each decoding step makes (progress during a batch);
        False where the teacher cannot (an API answers whole)."""
        return False

    async def aclose(self) -> None:
        """Release what belongs to the event loop (HTTP clients), inside that loop."""

    def close(self) -> None:
        """Release everything else (a model, a child process), after the loop."""


class WrappedTeacher(Teacher):
    """A teacher around another: every member it does not override is the inner teacher's."""

    def __init__(self, inner: Teacher):
        self.inner = inner

    @property
    def spec(self) -> str:  # type: ignore[override]
        return self.inner.spec

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        return self.inner.batch_size

    @property
    def concurrency(self) -> int:  # type: ignore[override]
        return self.inner.concurrency

    @property
    def collect_s(self) -> float:  # type: ignore[override]
        return self.inner.collect_s

    @property
    def cache_namespace(self) -> str:
        return self.inner.cache_namespace

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        return await self.inner.generate(requests)

    def price_request(self, request: GenerationRequest) -> float | None:
        return self.inner.price_request(request)

    def attach_store(self, store: Any) -> None:
        self.inner.attach_store(store)

    def stream_tokens(self, callback: Callable[[int], None]) -> bool:
        return self.inner.stream_tokens(callback)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def close(self) -> None:
        self.inner.close()
