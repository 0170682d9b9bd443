"""The one protocol every teacher backend speaks: a batch of chat requests in, texts and usage out."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field, PrivateAttr, field_validator

from distill.records import Message, SamplingParams, Usage


class GenerationRequest(BaseModel):
    key: str  # the caller's name for this request, echoed back in the result
    messages: list[Message]
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    json_schema: dict[str, Any] | None = None  # ask for structured output where the backend can

    # The fingerprint's JSON less its teacher part, kept with the field objects it was made from (held,
    # so their ids cannot be reused; compared by identity): the runner and the response cache both
    # fingerprint each request under different teacher names, and encoding the messages (few-shot
    # turns included) is most of the cost. Requests are never changed in place once built.
    _content: tuple[Any, Any, Any, str] | None = PrivateAttr(default=None)

    def fingerprint(self, teacher_spec: str) -> str:
        """Content address of everything that changes the answer (not the key).

        The sha256 of `json.dumps({"teacher", "messages", "sampling", "schema"}, sort_keys=True)`;
        "teacher" sorts last, so the rest is encoded once and the teacher appended.
        """
        private = self.__pydantic_private__  # (reading `self._content` goes through pydantic's __getattr__)
        known = private["_content"]
        if known is None or known[0] is not self.messages or known[1] is not self.sampling \
                or known[2] is not self.json_schema:  # unset, or a model_copy(update=...) made it stale
            content = json.dumps({"messages": [m.model_dump() for m in self.messages],
                                  "sampling": self.sampling.model_dump(), "schema": self.json_schema}, sort_keys=True)
            known = private["_content"] = (self.messages, self.sampling, self.json_schema, content[:-1])
        payload = f'{known[3]}, "teacher": {json.dumps(teacher_spec)}}}'
        return hashlib.sha256(payload.encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        # pydantic compares private attributes too: a fingerprinted request would differ from its twin.
        if not isinstance(other, GenerationRequest):
            return NotImplemented
        return (self.key, self.messages, self.sampling, self.json_schema) == \
            (other.key, other.messages, other.sampling, other.json_schema)


class GenerationResult(BaseModel):
    key: str
    text: str | None = None  # None when the call failed
    finish_reason: str | None = None  # "stop", "length", "content_filter", "refusal", ...
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None  # the last error, when the call failed after its retries
    cached: bool = False  # answered from a cache: no new spend

    @field_validator("text")
    @classmethod
    def _encodable(cls, text: str | None) -> str | None:
        # A lone surrogate (JSON allows "\ud800") cannot be written as UTF-8: not to SQLite, not to a
        # pipe, not to a JSONL export. Such an answer keeps everything else, the surrogate becomes "?".
        if text is not None and not text.isascii():
            try:
                text.encode()
            except UnicodeEncodeError:
                return text.encode("utf-8", "replace").decode()
        return text

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


@runtime_checkable
class Teacher(Protocol):
    spec: str  # e.g. "local", "hf:HuggingFaceTB/SmolLM2-135M-Instruct", "openai:gpt-4o-mini"
    batch_size: int  # requests one `generate` call takes at most
    concurrency: int  # `generate` calls that may run at once

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Answer every request; a failure is a result with `error` set, never an exception."""
        ...

    def close(self) -> None: ...
