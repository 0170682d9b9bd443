"""The process that runs a conversation's real tools, so a tool that hangs can be stopped.

A tool is user code called with a teacher's arguments. Run in a thread, a tool stuck in a loop or a blocking call
could never be stopped: Python cannot kill a thread, and the interpreter waits for its non-daemon threads at exit,
so one hung tool would hang the run's end too. In a child process it is killed at its timeout (`ToolWorker.call`)
and the next call starts a fresh process. The child imports the tool's file itself, through the same loader and
checks as the task's other Python (`distill.tasks.code.load`); the parent only checks it by reading.

The child is `python -m distill.tasks.tool_worker`, not a multiprocessing child: multiprocessing's spawn runs the
parent's main script again in the child, so a user's script that calls `distill.generate()` without an
`if __name__ == "__main__":` guard would start a second run. Calls and results are JSON lines on its stdin and
on a copy of its stdout; a tool's own prints go to stderr.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from distill.tasks.code import CodeRef, load

START_TIMEOUT_S = 120  # a fresh interpreter importing pydantic on a busy machine; not part of a tool's timeout
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds `distill`, for the child's imports


def error_result(kind: str, message: str) -> str:
    """A tool turn's content for a call that gave no result: what the teacher and the checks read."""
    return json.dumps({"error": {"type": kind, "message": message}}, ensure_ascii=False)


def run_tool(ref: CodeRef, arguments: dict[str, Any] | None) -> str:
    """Call the tool with the arguments as keywords: its result as JSON, or its exception as an error result.
    No arguments: only import it ("loaded" as JSON)."""
    try:
        function = load(ref)
    except ValueError as exc:
        return error_result("ToolNotLoaded", str(exc))
    if arguments is None:
        return json.dumps("loaded")
    try:
        result = function(**arguments)
    except Exception as exc:  # the tool's own failure is its answer, recorded for the teacher and the checks
        return error_result(type(exc).__name__, str(exc))
    try:
        return json.dumps(result, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        return error_result("TypeError", f"the tool's result is not JSON: {exc}")


class ToolWorker:
    """One child process for a task's real tools, started at the first call; calls take turns (a lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def call(self, ref: CodeRef, arguments: dict[str, Any] | None, timeout_s: float) -> str:
        """The tool's result (JSON text) or an error result; blocks up to `timeout_s` once the process runs.
        No `arguments`: the tool is only imported (the result is "loaded")."""
        job = {"reference": ref.reference, "name": ref.name, "module": ref.module,
               "file": str(ref.file) if ref.file is not None else None, "arguments": arguments}
        with self._lock:
            process = self._start()
            stdin, stdout = process.stdin, process.stdout
            assert stdin is not None and stdout is not None
            try:
                stdin.write(json.dumps(job, ensure_ascii=False) + "\n")
                stdin.flush()
            except OSError:
                return self._crashed(ref)
            if not _readable(stdout, timeout_s):
                self._stop()
                return error_result("TimeoutError", f"{ref.reference} gave no result within {timeout_s:g} s and was "
                                                    "stopped")
            line = stdout.readline()
            if not line:
                return self._crashed(ref)
            return json.loads(line)

    def loads(self, ref: CodeRef) -> str | None:
        """Why the tool cannot be imported in the tools' process (None: it loads), without calling it."""
        result = json.loads(self.call(ref, None, START_TIMEOUT_S))
        return None if result == "loaded" else result["error"]["message"]

    def _crashed(self, ref: CodeRef) -> str:
        code = self._process.poll() if self._process is not None else None
        self._stop()
        return error_result("ToolCrashed", f"{ref.reference}: the tool's process exited (code {code})")

    def _start(self) -> subprocess.Popen:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._stop()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT),
                                                                         os.environ.get("PYTHONPATH")]))}
        process = subprocess.Popen([sys.executable, "-m", "distill.tasks.tool_worker"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, encoding="utf-8", env=env)
        assert process.stdout is not None
        if not _readable(process.stdout, START_TIMEOUT_S) or process.stdout.readline().strip() != "ready":
            process.kill()
            process.wait()
            raise RuntimeError(f"the tool process did not start (exit code {process.poll()})")
        self._process = process
        return process

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
        self._process = None

    def close(self) -> None:
        with self._lock:
            self._stop()


def _readable(pipe: IO[str], timeout_s: float) -> bool:
    # One line is written for each line read, so nothing waits in the pipe's buffer when this is asked.
    return bool(select.select([pipe], [], [], timeout_s)[0])


def _orphan_watch(parent: int) -> None:
    """End this process once its parent is gone (a run killed with -9 cannot kill it), even in a hung tool."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def main() -> None:
    """The child: one JSON call a line on stdin, one JSON result a line on the protocol stream."""
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # a tool's print() goes to stderr, never into the results
    threading.Thread(target=_orphan_watch, args=(os.getppid(),), daemon=True).start()
    protocol.write("ready\n")
    protocol.flush()
    for line in sys.stdin:
        job = json.loads(line)
        ref = CodeRef(job["reference"], "function", job["name"], file=Path(job["file"]) if job["file"] else None,
                      module=job["module"])
        protocol.write(json.dumps(run_tool(ref, job["arguments"]), ensure_ascii=False) + "\n")
        protocol.flush()


if __name__ == "__main__":
    main()
