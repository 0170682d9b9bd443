"""The process that runs a conversation's real tools, so a tool that hangs can be stopped.

A tool is user code called with a teacher's arguments. Run in a thread, a tool stuck in a loop or a blocking call
could never be stopped: Python cannot kill a thread, and the interpreter waits for its non-daemon threads at exit,
so one hung tool would hang the run's end too. In a child process it is killed at its timeout (`ToolWorker.call`)
and the next call starts a fresh process. The child imports the tool's file itself, through the same loader and
checks as the task's other Python (`distill.tasks.code.load`); the parent only checks it by reading.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from distill.tasks.code import CodeRef, load

START_TIMEOUT_S = 120  # a fresh interpreter importing pydantic on a busy machine; not part of a tool's timeout


def error_result(kind: str, message: str) -> str:
    """A tool turn's content for a call that gave no result: what the teacher and the checks read."""
    return json.dumps({"error": {"type": kind, "message": message}}, ensure_ascii=False)


def run_tool(ref: CodeRef, arguments: dict[str, Any]) -> str:
    """Call the tool with the arguments as keywords: its result as JSON, or its exception as an error result."""
    try:
        function = load(ref)
    except ValueError as exc:
        return error_result("ToolNotLoaded", str(exc))
    try:
        result = function(**arguments)
    except Exception as exc:  # the tool's own failure is its answer, recorded for the teacher and the checks
        return error_result(type(exc).__name__, str(exc))
    try:
        return json.dumps(result, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        return error_result("TypeError", f"the tool's result is not JSON: {exc}")


def _serve(conn: Connection) -> None:
    conn.send("ready")
    while True:
        try:
            ref, arguments = conn.recv()
        except EOFError:  # the parent closed its end or died: nothing more to do
            return
        conn.send(run_tool(ref, arguments))


class ToolWorker:
    """One child process for a task's real tools, started at the first call; calls take turns (a lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def call(self, ref: CodeRef, arguments: dict[str, Any], timeout_s: float) -> str:
        """The tool's result (JSON text) or an error result; blocks up to `timeout_s` once the process runs."""
        with self._lock:
            conn = self._start()
            conn.send((ref, arguments))
            if not conn.poll(timeout_s):
                self._stop()
                return error_result("TimeoutError", f"{ref.reference} gave no result within {timeout_s:g} s and was "
                                                    "stopped")
            try:
                return conn.recv()
            except EOFError:
                code = self._process.exitcode if self._process is not None else None
                self._stop()
                return error_result("ToolCrashed", f"{ref.reference}: the tool's process exited (code {code})")

    def _start(self) -> Connection:
        if self._conn is not None and self._process is not None and self._process.is_alive():
            return self._conn
        self._stop()
        # spawn: a fresh interpreter, not a fork of a process holding an event loop, HTTP clients and threads.
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(child,), daemon=True, name="distill-tools")
        process.start()
        child.close()
        if not parent.poll(START_TIMEOUT_S):
            process.kill()
            raise RuntimeError("the tool process did not start")
        parent.recv()
        self._process, self._conn = process, parent
        return parent

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def close(self) -> None:
        with self._lock:
            self._stop()
