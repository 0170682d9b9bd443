"""An API teacher whose HTTP requests are sent from a child process: a second core for the SDK.

At hundreds of requests a second one event loop runs out of CPU: the SDK and its HTTP transport
cost ~1 ms a request, and rendering prompts, fingerprints and storing every answer about as much
again. Above `SENDER_PROCESS_FROM` requests in flight (or with `--sender-process`), the run keeps
its own work and the SDK runs in a child process (`python -m distill.teachers.wrappers.sender_child`) holding
the teacher itself: its rate limiter, AIMD gate, retries and SDK clients, so limits stay shared by
every request as before. Budget, cache and run.db stay in the run's process.

The wire is one line a message on the child's stdin and stdout: `<id>\\t<GenerationRequest JSON>`
in, `<id>\\t<GenerationResult JSON>` out (JSON never holds a raw tab or newline). The child reads
its settings from the first line, answers `0\\tready`, and exits when its stdin closes, also when the
run is killed: what it had in flight is then lost, as it would be in-process. Keys travel only in
the environment it inherits.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from distill.teachers.base import GenerationRequest, GenerationResult, WrappedTeacher
from distill.teachers.http.base import ApiTeacher

SENDER_PROCESS_FROM = 128  # requests in flight from which the SDK gets its own process by default
LINE_LIMIT = 1 << 28  # one request line may hold long few-shot prompts
START_TIMEOUT_S = 60.0


class Lines:
    """Lines for a pipe, written together at the end of the loop's turn: one write, and one wake-up
    of the other process, for every message of a turn rather than one each."""

    def __init__(self, write: Callable[[bytes], Any]):
        self.write = write
        self.buffer: list[bytes] = []

    def add(self, line: bytes) -> None:
        if not self.buffer:
            asyncio.get_running_loop().call_soon(self.flush)
        self.buffer.append(line)

    def flush(self) -> None:
        data, self.buffer = b"".join(self.buffer), []
        self.write(data)


@dataclass(eq=False)
class Child:
    """One sender process and the requests it owes answers to."""

    proc: asyncio.subprocess.Process
    lines: Lines
    waiting: dict[int, asyncio.Future] = field(default_factory=dict)
    gone: bool = False  # its stdout ended: a new request goes to a new child
    readers: list[asyncio.Task] = field(default_factory=list)
    stderr_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))

    # Its pipes (`_start` pipes all three, so none is None).
    @property
    def stdin(self) -> asyncio.StreamWriter:
        return cast(asyncio.StreamWriter, self.proc.stdin)

    @property
    def stdout(self) -> asyncio.StreamReader:
        return cast(asyncio.StreamReader, self.proc.stdout)

    @property
    def stderr(self) -> asyncio.StreamReader:
        return cast(asyncio.StreamReader, self.proc.stderr)


class SenderTeacher(WrappedTeacher):
    """The teacher protocol, answered by `local`'s twin in a child process.

    `local` is the same teacher built in this process: it answers everything that needs no request
    (spec, cache namespace, prices for the budget) and checked the settings and the key up front.
    """

    def __init__(self, local: ApiTeacher, spec: str, options: Any):
        super().__init__(local)
        self.local = local
        # The child builds the same teacher inline (never a sender of its own).
        self.config = json.dumps({"spec": spec, "options": {**options.model_dump(mode="json"), "sender_process": False}})
        self.child: Child | None = None
        self.next_id = 0
        # Once a child could not start, the next would not either: every later request fails at once
        # with the reason rather than each trying (and waiting for) a start of its own.
        self.start_error: str | None = None
        self._starting = asyncio.Lock()

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        child = await self._child()
        if child is None:
            return [GenerationResult(key=request.key, error=self.start_error) for request in requests]
        futures = []
        loop = asyncio.get_running_loop()
        for request in requests:
            self.next_id += 1
            future = child.waiting[self.next_id] = loop.create_future()
            futures.append(future)
            child.lines.add(b"%d\t%s\n" % (self.next_id, request.model_dump_json().encode()))
        # No drain: at most `concurrency` requests are ever buffered for the pipe.
        # (One request a call is the usual case: awaiting its future directly saves gather's extra loop turn.)
        results = [await futures[0]] if len(futures) == 1 else await asyncio.gather(*futures)
        # The child echoes each key; only the failures made here (no request at hand) need theirs set.
        return [result if result.key == request.key else result.model_copy(update={"key": request.key})
                for request, result in zip(requests, results)]

    async def _child(self) -> Child | None:
        async with self._starting:  # the first requests arrive together: start one child, not many
            if self.start_error is None and (self.child is None or self.child.gone):
                self.child = await self._start()
            return None if self.start_error is not None else self.child

    async def _start(self) -> Child | None:
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "distill.teachers.wrappers.sender_child", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=LINE_LIMIT)
        except OSError as exc:
            self.start_error = f"the sender process did not start: {exc}"
            return None
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None  # all three piped
        proc.stdin.write(self.config.encode() + b"\n")
        child = Child(proc, Lines(proc.stdin.write))
        child.readers.append(asyncio.create_task(self._read_errors(child)))
        try:
            ready = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        except (asyncio.TimeoutError, ValueError):
            ready = b""
        if ready.strip() != b"0\tready":
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            self.start_error = f"the sender process did not start: {await self._last_words(child)}"
            return None
        child.readers.append(asyncio.create_task(self._read_results(child)))
        return child

    async def _read_results(self, child: Child) -> None:
        try:
            while line := await child.stdout.readline():
                head, _, body = line.partition(b"\t")
                try:  # a line cut short (a child killed mid-write) is not an answer: its request fails below
                    request_id, result = int(head), GenerationResult.model_validate_json(body)
                except ValueError:
                    continue
                future = child.waiting.pop(request_id, None)
                if future is not None and not future.done():
                    future.set_result(result)
        except (ValueError, ConnectionError):  # a line past LINE_LIMIT, a broken pipe: this child is done
            child.proc.kill()
        finally:
            # The child died (or was closed) with requests out: each fails with why, and its item says so.
            child.gone = True
            await child.proc.wait()
            error = f"the sender process exited with code {child.proc.returncode}: {await self._last_words(child)}"
            for future in child.waiting.values():
                if not future.done():
                    future.set_result(GenerationResult(key="", error=error))
            child.waiting.clear()

    async def _read_errors(self, child: Child) -> None:
        while line := await child.stderr.readline():
            child.stderr_tail.append(line.decode(errors="replace").rstrip())

    async def _last_words(self, child: Child) -> str:
        """The end of what the child wrote to stderr (a traceback, say), keys scrubbed."""
        try:  # it may still be draining after the exit
            await asyncio.wait_for(asyncio.shield(child.readers[0]), 1.0)
        except Exception:
            pass
        return self.local.scrub(" | ".join(child.stderr_tail))[-500:] or "no message"

    async def aclose(self) -> None:
        child, self.child = self.child, None
        if child is not None:
            if child.proc.returncode is None:
                child.stdin.close()  # the child ends at the end of its stdin
                try:
                    await asyncio.wait_for(child.proc.wait(), 10)
                except asyncio.TimeoutError:
                    child.proc.kill()
                    await child.proc.wait()
            await asyncio.gather(*child.readers, return_exceptions=True)
        await self.local.aclose()

    def close(self) -> None:
        if self.child is not None and self.child.proc.returncode is None:  # the loop ended without aclose
            try:
                os.kill(self.child.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.local.close()


def maybe_in_own_process(teacher: Any, settings: Any, spec: str, options: Any) -> Any:
    """`teacher` itself, or a `SenderTeacher` running its twin in a child process (see the module doc)."""
    wanted = settings.sender_process
    if wanted is None:
        wanted = settings.concurrency >= SENDER_PROCESS_FROM
    return SenderTeacher(teacher, spec, options) if wanted else teacher
