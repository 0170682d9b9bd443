"""The shared response cache: answers buffered for a moment, written in short transactions.

Several runs share one cache file. A run must never hold SQLite's write lock while its event loop
goes on serving requests, or every other run's writes wait in their busy handlers.
"""

from __future__ import annotations

import asyncio
import sqlite3

from distill.records import Usage
from distill.teachers.base import GenerationResult
from distill.teachers.cache import ResponseCache


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
