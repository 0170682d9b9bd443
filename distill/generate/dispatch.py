"""Feeds teacher requests to a backend: in batches for in-process models, concurrently for APIs.

Requests wait in order of priority, lowest first, then of arrival. The runner gives every request
its item's place in the run, so an item already started finishes before new items start: its
answer step goes ahead of a later item's question step. Without this a full round of first steps
ran before any second step (no item finished for minutes with the local teacher; with a small
budget the cap was spent with none finished).

A teacher with a `collect_s` window (provider batch APIs) gets requests gathered for up to that
long, one worker gathering at a time, so a round of requests becomes one job rather than many.
"""

from __future__ import annotations

import asyncio
import itertools

from distill.teachers.base import GenerationRequest, GenerationResult, Teacher


class Dispatcher:
    def __init__(self, teacher: Teacher):
        self.teacher = teacher
        self.queue: asyncio.PriorityQueue[tuple[int, int, GenerationRequest, asyncio.Future]] = asyncio.PriorityQueue()
        self._arrival = itertools.count()  # ties keep arrival order (and requests are never compared)
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

    async def submit(self, request: GenerationRequest, priority: int = 0) -> GenerationResult:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((priority, next(self._arrival), request, future))
        return await future

    async def _work(self) -> None:
        while True:
            if self.collect_s:
                async with self._gathering:  # one worker gathers at a time, or each would take a few
                    batch = await self._gather(self.collect_s)
            else:
                batch = await self._gather(0.0)
            batch = [entry for entry in batch if not entry[3].done()]  # a caller cancelled while it gathered
            if not batch:
                continue
            requests = [request for _, _, request, _ in batch]
            try:
                results = await self.teacher.generate(requests)
            except Exception as exc:  # a broken backend fails these requests; the items say so
                results = [GenerationResult(key=r.key, error=f"{type(exc).__name__}: {exc}") for r in requests]
            for (*_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)
            # One loop turn: the items just answered queue their next steps before this worker takes
            # another request, so those steps compete on priority rather than arriving too late.
            await asyncio.sleep(0)

    async def _gather(self, window_s: float) -> list[tuple[int, int, GenerationRequest, asyncio.Future]]:
        """The next request, then whatever else arrives within the window (one loop turn at least)."""
        batch = [await self._next_live()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + window_s if window_s else 0.0
        if self.teacher.batch_size > 1:
            await asyncio.sleep(0)  # one turn of the loop lets other items enqueue into this batch
        while True:
            while len(batch) < self.teacher.batch_size and not self.queue.empty():
                entry = self.queue.get_nowait()
                if not entry[3].done():
                    batch.append(entry)
            left = deadline - loop.time() if window_s else 0.0
            if len(batch) >= self.teacher.batch_size or left <= 0:
                return batch
            await asyncio.sleep(min(left, 0.05))

    async def _next_live(self) -> tuple[int, int, GenerationRequest, asyncio.Future]:
        """The next request whose caller still waits. A caller cancelled while its request queued (an item
        given up, a stopped run) cancels the future it awaited: that request is never sent, never paid."""
        while True:
            entry = await self.queue.get()
            if not entry[3].done():
                return entry
