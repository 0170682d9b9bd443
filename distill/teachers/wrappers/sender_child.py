"""The sender's child process (`python -m distill.teachers.wrappers.sender_child`, started by `SenderTeacher`):
it builds the run's teacher inline from the settings on its first stdin line, answers `0\tready`, then answers
each request line as it comes, until its stdin closes (see `sender.py` for the wire)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
from typing import Any

from distill.teachers.base import GenerationRequest, GenerationResult
from distill.teachers.registry import TeacherOptions
from distill.teachers.stack import build_teacher
from distill.teachers.wrappers.sender import LINE_LIMIT, Lines


async def _serve(teacher: Any, out: Any) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, out)
    transport.write(b"0\tready\n")
    lines = Lines(transport.write)
    in_flight: set[asyncio.Task] = set()

    async def answer(request_id: bytes, body: bytes) -> None:
        # Every request gets a line back, whatever happens here: the run waits for each one.
        try:
            [result] = await teacher.generate([GenerationRequest.model_validate_json(body)])
            line = result.model_dump_json().encode()
        except Exception as exc:  # the protocol says never raise; a bug here must not hang the run
            error = teacher.scrub(f"{type(exc).__name__}: {exc}")[:500]
            line = GenerationResult(key="", error=error).model_dump_json().encode()
        lines.add(b"%s\t%s\n" % (request_id, line))

    # Requests are answered as they come; stdin's end (a closed or killed run) ends the child.
    while line := await reader.readline():
        request_id, _, body = line.rstrip(b"\n").partition(b"\t")
        task = asyncio.create_task(answer(request_id, body))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    for task in in_flight:
        task.cancel()
    await asyncio.gather(*in_flight, return_exceptions=True)
    await teacher.aclose()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the run, which closes our stdin
    # Our stdout is the wire: anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    config = json.loads(sys.stdin.buffer.readline())
    teacher = build_teacher(config["spec"], TeacherOptions(**config["options"]))  # inline: sender_process False
    # As in the run's own loop (runner._fewer_gc_passes): start-up's objects out of the GC's scans,
    # and young collections far apart; this process lives only while the run does.
    gc.freeze()
    gc.set_threshold(20_000, *gc.get_threshold()[1:])
    try:
        asyncio.run(_serve(teacher, out))
    finally:
        teacher.close()


if __name__ == "__main__":
    main()
