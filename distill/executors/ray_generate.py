"""`distill generate --executor ray`: the plan's items as Ray Data blocks, run by actors that hold a teacher.

- **Workers.** `map_batches` over the plan items with a fixed pool of `GenerateWorker` actors. Each builds
  the run's teacher once (ours: the same structured output, parsing and rejects as the local path) and
  runs a block's items concurrently on its own event loop through `generate.item.run_item`, the local
  runner's code. Items are sorted by leaf before they are cut into blocks, so a leaf's items share a
  worker and its prompt-prefix cache.
- **The ledger.** One small actor on the driver's node (`RunLedger`) receives every teacher answer and
  every item outcome the moment a worker has it, and the driver drains it into run.db a few times a
  second. Ray Data's own output (a block's results) comes only when the whole block is done; a worker
  that died mid-block would have taken its finished items with it.
- **A worker that dies.** Ray Data restarts the actor and runs the block again. Items the ledger has an
  outcome for are skipped, and every request is looked up in the ledger before it is sent: nothing
  answered is asked again. The ledger starts with run.db's answers for the items still to do, so a
  resumed run (after the driver itself died) does not ask them again either.

A spec travels to the workers, not a teacher: each worker builds its own (a model is loaded once per
worker). The response cache of an API teacher is each worker node's `--cache-dir`.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from distill.errors import DistillError
from distill.executors.ray_cluster import ensure_ray
from distill.generate.dispatch import Dispatcher
from distill.generate.item import ItemOutcome, TeacherFailed, run_item, save_outcome
from distill.records import GenerationRequest, GenerationResult, PlanItem
from distill.teachers.registry import TeacherOptions
from distill.teachers.stack import build_teacher
from distill.teachers.wrappers.cache import default_cache_dir

DRAIN_EVERY_S = 0.25  # how often the driver moves the ledger's news into run.db (and the progress bar)
MAX_BLOCK_ITEMS = 512
GROUP_S = 0.005  # how long a worker gathers calls and outcomes before it sends them to the ledger
STOP_GRACE_S = 30.0  # on Ctrl-C, how long the requests under way may take to come back and be recorded


class ItemStopped(Exception):
    """The run was stopped on the driver: this item sends nothing more and stays pending."""


class CallRecord(BaseModel):
    """One teacher call as a worker made it; the driver writes it to run.db's teacher_calls."""

    item_id: str
    step: str
    teacher: str
    request: GenerationRequest
    fingerprint: str
    result: GenerationResult


class RunLedger:
    """What the workers have so far, on the driver's node: answers by fingerprint, finished items, and the
    news the driver has not written to run.db yet. A Ray actor (one call at a time, so no locks)."""

    def __init__(self):
        self.answered: dict[str, str] = {}  # fingerprint -> GenerationResult JSON (run.db's, then this run's)
        self.seen: set[str] = set()  # items that may have answers here: with run.db's, or started in this run
        self.finished: set[str] = set()
        self.news: list[tuple[str, str]] = []  # ("call" | "outcome", JSON) in the order they came
        self.stopped = False

    def remember(self, answered: dict[str, str], seen: set[str]) -> None:
        """Answers from run.db (an earlier run's) for the items about to run."""
        self.answered.update(answered)
        self.seen.update(seen)

    def open_block(self, item_ids: list[str]) -> tuple[bool, dict[str, str]]:
        """(stopped, {item: "finished" | "seen"}) for a block about to run; an item left out is new, and its
        requests need no look-up. A block runs again when the worker that had it died."""
        known = {i: "finished" if i in self.finished else "seen" for i in item_ids if i in self.seen}
        self.seen.update(item_ids)
        return self.stopped, known

    def find(self, fingerprint: str) -> tuple[bool, str | None]:
        """(stopped, the answer stored under this fingerprint if any)."""
        return self.stopped, self.answered.get(fingerprint)

    def record(self, entries: list[tuple[str, str, str, str | None]]) -> bool:
        """Calls ("call", record, fingerprint, answer or None) and outcomes ("outcome", outcome, item id, None),
        as a worker gathered them; returns whether the run was stopped."""
        for kind, text, key, answer in entries:
            if kind == "call":
                if answer is not None:  # only answers are reused; a failed call is asked again on --retry-failed
                    self.answered[key] = answer
                self.news.append((kind, text))
            elif key not in self.finished:  # a block run again after a worker died repeats no outcome
                self.finished.add(key)
                self.news.append((kind, text))
        return self.stopped

    def stop(self) -> None:
        """The driver was interrupted: workers start no new item and send no new request; what is under way
        comes back and is recorded."""
        self.stopped = True

    def drain(self) -> list[tuple[str, str]]:
        news, self.news = self.news, []
        return news


class GenerateWorker:
    """A Ray Data actor: one teacher, one event loop (in a thread, so the teacher's HTTP clients and
    model engine live in one loop across blocks), several blocks at once."""

    def __init__(self, loaded, spec: str, teacher_options: dict, cache_dir: str | None, ledger):
        self.loaded, self.ledger = loaded, ledger
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="distill-worker-loop", daemon=True).start()
        # The SDK sends from the worker itself: a sender process (the local path's second core from 128
        # requests in flight) would be a third process a worker, on the worker's one CPU.
        options = TeacherOptions.model_validate({**teacher_options, "sender_process": False})
        self.teacher = build_teacher(spec, options, cache_dir=Path(cache_dir) if cache_dir else None, online=True)
        self.stopped = False
        self._group: tuple[list, asyncio.Future] | None = None
        self._submit(self._open()).result()

    def _submit(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    async def _open(self) -> None:
        self.dispatcher = await Dispatcher(self.teacher).__aenter__()
        # As many items in flight as the local runner keeps: every concurrent batch filled twice over.
        self.in_flight = asyncio.Semaphore(max(2, self.teacher.batch_size * self.teacher.concurrency * 2))

    def __del__(self) -> None:
        # Ray Data calls this when the pool shuts down: close the teacher inside its loop (HTTP sessions, the
        # dispatcher's tasks), then the rest, so no "Unclosed client session" or pending-task warnings.
        loop = getattr(self, "loop", None)
        if loop is None or not loop.is_running():
            return
        try:
            self._submit(self._close()).result(timeout=10)
        except Exception:  # noqa: BLE001 - shutting down: nothing left to report to
            pass
        self.teacher.close()
        loop.call_soon_threadsafe(loop.stop)

    async def _close(self) -> None:
        if getattr(self, "dispatcher", None) is not None:
            await self.dispatcher.__aexit__(None, None, None)
        await self.teacher.aclose()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [PlanItem.model_validate_json(text) for text in batch["item"]]
        kinds = self._submit(self._run_block(items, [int(rank) for rank in batch["rank"]])).result()
        return {"id": np.array([item.id for item in items]), "outcome": np.array(kinds)}

    async def _run_block(self, items: list[PlanItem], ranks: list[int]) -> list[str]:
        stopped, known = await self.ledger.open_block.remote([item.id for item in items])
        self.stopped = self.stopped or stopped
        return await asyncio.gather(*(self._run_item(item, rank, known.get(item.id))
                                      for item, rank in zip(items, ranks)))

    async def _run_item(self, item: PlanItem, rank: int, known: str | None) -> str:
        async with self.in_flight:
            if self.stopped or known == "finished":  # "finished": this block ran before on a worker that died
                return "stopped" if self.stopped else "finished"
            try:
                outcome = await run_item(self.loaded, item, self.teacher.spec,
                                         partial(self._ask, item, rank, known == "seen"))
            except ItemStopped:
                return "stopped"
            await self._record(("outcome", outcome.model_dump_json(), item.id, None))
            return "kept" if outcome.example is not None else "failed" if outcome.failed else "rejected"

    async def _ask(self, item: PlanItem, rank: int, seen: bool, step: str,
                   request: GenerationRequest) -> GenerationResult:
        if self.stopped:
            raise ItemStopped
        fingerprint = request.fingerprint(self.teacher.spec)
        if seen:  # answered before (in run.db, or by a worker that died)? never pay twice
            stopped, stored = await self.ledger.find.remote(fingerprint)
            self.stopped = self.stopped or stopped
            if self.stopped:
                raise ItemStopped
            if stored is not None:
                return GenerationResult.model_validate_json(stored).model_copy(update={"key": request.key,
                                                                                       "cached": True})
        result = await self.dispatcher.submit(request, priority=rank)
        record = CallRecord(item_id=item.id, step=step, teacher=self.teacher.spec, request=request,
                            fingerprint=fingerprint, result=result)
        await self._record(("call", record.model_dump_json(), fingerprint,
                            result.model_dump_json() if result.ok else None))
        if not result.ok:
            raise TeacherFailed(step, result.error or "no text")
        return result

    async def _record(self, entry: tuple[str, str, str, str | None]) -> None:
        """Send `entry` to the ledger and wait until it is there (the answer is on the driver's node before
        the item goes on). Entries made within GROUP_S of each other go in one call: one a request was
        four ledger calls an item, and held Ray at 40% of the local path's rate."""
        if self._group is None:
            self._group = ([], self.loop.create_future())
            self.loop.create_task(self._send_group())
        entries, sent = self._group
        entries.append(entry)
        await asyncio.shield(sent)

    async def _send_group(self) -> None:
        await asyncio.sleep(GROUP_S)
        assert self._group is not None  # made by the send that scheduled this task
        (entries, sent), self._group = self._group, None
        try:
            self.stopped = await self.ledger.record.remote(entries) or self.stopped
            sent.set_result(None)
        except BaseException as exc:  # the ledger is gone (the driver stopped): every waiter hears it
            sent.set_exception(exc)


class RayGeneration:
    """One run's items on Ray, written into `store` as they finish. `run` may be called more than once
    (the preflight sample, then the rest); the ledger lives until `close`."""

    def __init__(self, store, loaded, spec: str, teacher_options: TeacherOptions, cache_dir: str | None,
                 workers: int | None = None, gpus_per_worker: float = 0.0, address: str | None = None,
                 on_call: Callable[[GenerationResult], None] | None = None,
                 on_outcome: Callable[[ItemOutcome], None] | None = None):
        self.ray = ensure_ray(address)
        # The run's own progress display counts items as the ledger reports them; Ray Data's bars would
        # count finished blocks over it.
        self.ray.data.DataContext.get_current().enable_progress_bars = False
        self.store, self.loaded, self.spec = store, loaded, spec
        self.teacher_options, self.cache_dir = teacher_options, cache_dir
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        self.workers = workers or max(1, cpus)
        self.gpus_per_worker = gpus_per_worker
        self.on_call, self.on_outcome = on_call, on_outcome
        self.ledger: Any = None  # a Ray actor handle, started at the first run

    def run(self, items: list[PlanItem]) -> None:
        if not items:
            return
        ray = self.ray
        items = sorted(items, key=lambda item: item.node_path)  # a leaf's items side by side, as locally
        answered, seen = self._prior({item.id for item in items})
        if self.ledger is None:
            self.ledger = self._start_ledger()
        ray.get(self.ledger.remember.remote(answered, seen))
        rows = [{"rank": rank, "item": item.model_dump_json()} for rank, item in enumerate(items)]
        # Four blocks a worker at least: a worker with two blocks under way never waits for a slow block's last item.
        block = max(1, min(MAX_BLOCK_ITEMS, math.ceil(len(rows) / (self.workers * 4))))
        blocks = math.ceil(len(rows) / block)
        workers = min(self.workers, blocks)  # a few items do not load a model on every CPU
        dataset = ray.data.from_items(rows, override_num_blocks=blocks)
        resources = {"num_cpus": 1} | ({"num_gpus": self.gpus_per_worker} if self.gpus_per_worker else {})
        results = dataset.map_batches(
            GenerateWorker, batch_size=block, **resources,
            compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=2,
                                               max_concurrent_calls_per_actor=2),
            fn_constructor_kwargs={"loaded": self.loaded, "spec": self.spec, "ledger": self.ledger,
                                   "teacher_options": self.teacher_options.model_dump(),
                                   "cache_dir": self.cache_dir},
        )
        self._drive(results)

    def _prior(self, item_ids: set[str]) -> tuple[dict[str, str], set[str]]:
        """run.db's answers for these items (by fingerprint), and the items that have any."""
        prior = self.store.answered_calls(item_ids)
        return ({fp: result.model_dump_json() for fp, (_, result) in prior.items()},
                {item_id for item_id, _ in prior.values()})

    def _start_ledger(self):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = self.ray.get_runtime_context().get_node_id()  # the ledger goes down with the driver only
        actor = self.ray.remote(num_cpus=0, max_restarts=0)(RunLedger)
        return actor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote()

    def _drive(self, results) -> None:
        """Run the dataset in a thread; here, move the ledger's news into run.db until it is done."""
        failure: list[BaseException] = []
        # An Event, not Thread.join: a join that Ctrl-C interrupts marks a running thread as stopped (Python
        # before 3.13), and the wait below would end at once.
        done = threading.Event()

        def consume() -> None:
            try:
                for _ in results.iter_batches(batch_size=None):
                    pass
            except BaseException as exc:  # raised again on the driver's thread
                failure.append(exc)
            finally:
                done.set()

        threading.Thread(target=consume, name="distill-ray-consumer", daemon=True).start()
        try:
            while not done.wait(DRAIN_EVERY_S):
                self._write_news()
        except BaseException:  # Ctrl-C (or a failed write): stop the workers, keep what they have
            # The workers finish the requests under way (each is recorded) and skip the rest, so the
            # dataset ends by itself; a second Ctrl-C stops waiting.
            self.ray.get(self.ledger.stop.remote())
            done.wait(STOP_GRACE_S)
            raise
        finally:
            self._write_news()  # on Ctrl-C too: what the workers have is kept
        if failure:
            raise _readable(failure[0])

    def _write_news(self) -> None:
        for kind, text in self.ray.get(self.ledger.drain.remote()):
            if kind == "call":
                call = CallRecord.model_validate_json(text)
                self.store.add_call(call.item_id, call.step, call.teacher, call.request, call.fingerprint, call.result)
                if self.on_call:
                    self.on_call(call.result)
            else:
                outcome = ItemOutcome.model_validate_json(text)
                save_outcome(self.store, outcome)
                if self.on_outcome:
                    self.on_outcome(outcome)

    def close(self) -> None:
        if self.ledger is not None:
            self.ray.kill(self.ledger)
            self.ledger = None


def _readable(exc: BaseException) -> BaseException:
    """A user mistake raised inside a worker (a template that fails on some item, a model that is not there)
    is the one line it would be locally, not Ray's wrapped traceback."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DistillError):
            return seen
        cause = getattr(seen, "cause", None)  # RayTaskError keeps the worker's exception here
        seen = cause if isinstance(cause, BaseException) else seen.__cause__
    return exc


class RayItems:
    """`distill generate --executor ray`, as the entry points hand it to the runner: `open` starts one run's
    `RayGeneration`, its answers and outcomes reported to the run's progress display."""

    def open(self, store, loaded, options, progress) -> RayGeneration:
        """A `RayGeneration` for the run in `store` with `options` (`GenerateOptions`)."""
        cache_dir = (options.cache_dir or default_cache_dir()) if options.cache and options.teacher.api else None
        return RayGeneration(
            store, loaded, options.teacher.text, options.teacher_options, str(cache_dir) if cache_dir else None,
            workers=options.ray_workers, gpus_per_worker=options.ray_gpus_per_worker or 0.0,
            on_call=lambda result: progress.add_tokens(result.usage.prompt_tokens, result.usage.completion_tokens),
            on_outcome=lambda outcome: progress.advance(kept=outcome.example is not None, failed=outcome.failed))
