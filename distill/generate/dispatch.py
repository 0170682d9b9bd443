"""Feeds teacher requests to a backend: in batches for in-process models, concurrently for APIs."""

from __future__ import annotations

import asyncio

from distill.teachers.base import GenerationRequest, GenerationResult, Teacher


class Dispatcher:
    def __init__(self, teacher: Teacher):
        self.teacher = teacher
        self.queue: asyncio.Queue[tuple[GenerationRequest, asyncio.Future]] = asyncio.Queue()
        self.workers: list[asyncio.Task] = []

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
            batch = [await self.queue.get()]
            await asyncio.sleep(0)  # one turn of the loop lets other items enqueue into this batch
            while len(batch) < self.teacher.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            requests = [request for request, _ in batch]
            try:
                results = await self.teacher.generate(requests)
            except Exception as exc:  # a broken backend fails these requests; the items say so
                results = [GenerationResult(key=r.key, error=f"{type(exc).__name__}: {exc}") for r in requests]
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)
