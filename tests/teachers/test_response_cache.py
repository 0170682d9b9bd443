"""The shared response cache: answers buffered for a moment, written in short transactions.

Several runs share one cache file. A run must never hold SQLite's write lock while its event loop
goes on serving requests, or every other run's writes wait in their busy handlers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3

import pytest

from distill.records import Message, SamplingParams, Usage
from distill.teachers.base import GenerationRequest, GenerationResult
from distill.teachers.wrappers.cache import ResponseCache


def answer(text: str) -> GenerationResult:
    return GenerationResult(key="k", text=text, finish_reason="stop",
                            usage=Usage(prompt_tokens=3, completion_tokens=5, cost_usd=0.001))


def test_a_buffered_answer_is_found_before_and_after_it_is_written(tmp_path):
    async def main():
        cache = ResponseCache(tmp_path / "c.sqlite", window_s=0.05)
        cache.put("fp1", "openai:m", answer("hello"))
        assert cache.count() == 0  # still buffered
        hit = cache.get("fp1")
        assert hit is not None and hit.text == "hello" and hit.cached and hit.usage.completion_tokens == 5
        await asyncio.sleep(0.1)
        assert cache.count() == 1  # the window's timer wrote it
        cache.close()

    asyncio.run(main())
    reopened = ResponseCache(tmp_path / "c.sqlite")
    assert reopened.get("fp1").text == "hello"
    reopened.close()


def test_another_run_can_write_while_answers_wait_in_the_window(tmp_path):
    async def main():
        first = ResponseCache(tmp_path / "c.sqlite", window_s=0.5)
        first.put("fp1", "openai:m", answer("one"))  # buffered for up to half a second
        other = sqlite3.connect(tmp_path / "c.sqlite", isolation_level=None, timeout=0)
        other.execute("INSERT INTO responses VALUES ('fp2', 'openai:m', 'two', 'stop', 1, 1, 0.0, 0)")  # no wait
        other.close()
        first.close()  # writes what it buffered
        return first

    asyncio.run(main())
    cache = ResponseCache(tmp_path / "c.sqlite")
    assert cache.count() == 2 and cache.get("fp1").text == "one" and cache.get("fp2").text == "two"
    cache.close()


def test_failed_and_cached_results_are_not_stored(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put("bad", "openai:m", GenerationResult(key="k", error="HTTP 500"))
    cache.put("again", "openai:m", answer("x").model_copy(update={"cached": True}))
    cache.put("good", "openai:m", answer("y"))  # outside an event loop: written at once
    assert cache.count() == 1 and cache.get("bad") is None and cache.get("good").text == "y"
    cache.close()


def test_a_row_sqlite_refuses_is_dropped_and_the_others_are_written(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    huge = GenerationResult(key="k", text="big", usage=Usage(prompt_tokens=2**70, completion_tokens=1))

    async def main():
        cache.put("huge", "openai:m", huge)  # too large for SQLite's INTEGER
        cache.put("fine", "openai:m", answer("ok"))
        with pytest.warns(UserWarning, match="not cached"):
            cache.flush()

    asyncio.run(main())
    assert cache.count() == 1 and cache.get("fine").text == "ok" and cache.get("huge") is None
    other = sqlite3.connect(tmp_path / "c.sqlite", isolation_level=None, timeout=0)
    other.execute("INSERT INTO responses VALUES ('fp2', 'openai:m', 'two', 'stop', 1, 1, 0.0, 0)")  # not locked
    other.close()
    cache.close()


def test_fingerprint_is_the_documented_content_address():
    # Every shared cache and every resumable run.db is keyed by this: it must never drift.
    request = GenerationRequest(key="a", messages=[Message(role="system", content="Tabs\tand\nnewlines, café"),
                                                   Message(role="user", content="Ünïcode ✓")],
                                sampling=SamplingParams(temperature=0.6, seed=7),
                                json_schema={"type": "object", "properties": {"b": {}, "a": {}}})

    def documented(r: GenerationRequest, teacher: str) -> str:
        payload = {"teacher": teacher, "messages": [m.model_dump() for m in r.messages],
                   "sampling": r.sampling.model_dump(), "schema": r.json_schema}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    for teacher in ("openai:gpt-4o-mini", "openai:m@http://höst:8000/v1"):
        assert request.fingerprint(teacher) == documented(request, teacher)
    edited = request.model_copy(update={"messages": [Message(role="user", content="another prompt")]})
    assert edited.fingerprint("x") == documented(edited, "x") != request.fingerprint("x")
    twin = request.model_copy(update={"key": "b"})
    assert twin.fingerprint("x") == request.fingerprint("x")  # the key is not part of the address
    assert request == GenerationRequest(**request.model_dump())  # fingerprinting leaves equality alone
