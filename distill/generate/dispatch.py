"""Feeds teacher requests to a backend: in batches for in-process models, concurrently for APIs.

A teacher with a `collect_s` window (provider batch APIs) gets requests gathered for up to that
long, one worker gathering at a time, so a round of requests becomes one job rather than many.
"""

from __future__ import annotations

import asyncio

from distill.teachers.base import GenerationRequest, GenerationResult, Teacher


class Dispatcher:
    def __init__(self, teacher: Teacher):
        self.teacher = teacher
        self.queue: asyncio.Queue[tuple[GenerationRequest, asyncio.Future]] = asyncio.Queue()
        self.workers: list[asyncio.Task] = []
        self.collect_s = teacher.collect_s
        self._gathering = asyncio.Lock()

    async def __aenter__(self) -> Dispatcher:
        self.workers = [asyncio.create_task(self._work()) for _ in range(max(1, self.teacher.concurrency))]
        return self

    async def __aexit__(self, *exc) -> None:
        for worker in self.workers:
            worker.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)

    async def submit(self, request: GenerationRequest) -> GenerationResult:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((request, future))
        return await future

    async def _work(self) -> None:
        while True:
            if self.collect_s:
                async with self._gathering:  # one worker gathers at a time, or each would take a few
                    batch = await self._gather(self.collect_s)
            else:
                batch = await self._gather(0.0)
            requests = [request for request, _ in batch]
            try:
                results = await self.teacher.generate(requests)
            except Exception as exc:  # a broken backend fails these requests; the items say so
                results = [GenerationResult(key=r.key, error=f"{type(exc).__name__}: {exc}") for r in requests]
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)

    async def _gather(self, window_s: float) -> list[tuple[GenerationRequest, asyncio.Future]]:
        """The next request, then whatever else arrives within the window (one loop turn at least)."""
        batch = [await self.queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + window_s if window_s else 0.0
        if self.teacher.batch_size > 1:
            await asyncio.sleep(0)  # one turn of the loop lets other items enqueue into this batch
        while True:
            while len(batch) < self.teacher.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            left = deadline - loop.time() if window_s else 0.0
            if len(batch) >= self.teacher.batch_size or left <= 0:
                return batch
            await asyncio.sleep(min(left, 0.05))
