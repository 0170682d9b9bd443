"""The dispatcher between items and a teacher: a request whose caller gave up before it was sent is never sent."""

from __future__ import annotations

import asyncio

import pytest

from distill.generate.dispatch import Dispatcher
from distill.records import GenerationRequest, GenerationResult, Message
from distill.teachers.base import Teacher


class HeldTeacher(Teacher):
    """Answers every batch once `gate` opens, and remembers the batches it was sent."""

    spec = "held"

    def __init__(self, batch_size: int):
        self.batch_size, self.concurrency = batch_size, 1
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        self.batches.append([r.key for r in requests])
        await self.gate.wait()
        return [GenerationResult(key=r.key, text="ok") for r in requests]


def request(key: str) -> GenerationRequest:
    return GenerationRequest(key=key, messages=[Message(role="user", content=f"question {key}?")])


@pytest.mark.parametrize("batch_size", [1, 3])
def test_a_request_cancelled_while_queued_is_never_sent(batch_size):
    async def scenario() -> list[list[str]]:
        teacher = HeldTeacher(batch_size)
        async with Dispatcher(teacher) as dispatcher:
            first = asyncio.create_task(dispatcher.submit(request("a")))
            await asyncio.sleep(0.01)  # "a" holds the only worker
            queued = {key: asyncio.create_task(dispatcher.submit(request(key))) for key in "bcde"}
            await asyncio.sleep(0.01)
            queued["b"].cancel()  # the head of the queue
            queued["d"].cancel()  # one inside what becomes the next batch
            await asyncio.sleep(0)
            teacher.gate.set()
            assert (await first).text == "ok"
            assert [(await queued[key]).text for key in "ce"] == ["ok", "ok"]
        return teacher.batches

    batches = asyncio.run(scenario())
    sent = [key for batch in batches for key in batch]
    assert sent == ["a", "c", "e"]
    if batch_size == 3:
        assert batches == [["a"], ["c", "e"]]
