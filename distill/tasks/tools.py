"""A conversation's tools: their definitions as the teacher is sent them, and the answer to each call.

A call is answered only when it names a declared tool and its arguments validate against the tool's
`parameters`; otherwise the tool turn says what was wrong, nothing runs, and the call stays in the example for
curation's checks to reject with a reason. A real tool runs in a child process with a timeout
(`distill.tasks.tool_worker`); a simulated tool's result is a teacher call (the conversation makes it).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.records import ToolCall
from distill.tasks.code import CodeRef, check_reference
from distill.tasks.schema import OutputSchema, SchemaError, load_schema
from distill.tasks.spec import ConversationSpec, TaskError, ToolSpec
from distill.tasks.tool_worker import ToolWorker, error_result


@dataclass
class Tool:
    spec: ToolSpec
    parameters: OutputSchema
    ref: CodeRef | None  # None: simulated
    timeout_s: float
    where: str  # its `function:` field, as errors name it (file:line: task.conversation.tools.N.function)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def definition(self) -> dict[str, Any]:
        """The OpenAI-style definition every backend is sent (and the example's `tools` keeps)."""
        return {"type": "function", "function": {"name": self.spec.name, "description": self.spec.description,
                                                 "parameters": self.spec.parameters}}


@dataclass
class Checked:
    """A call read against the declared tools: the tool and its arguments, or why it is not run."""

    tool: Tool | None
    arguments: dict[str, Any]
    problem: str | None = None  # the error result to record instead of running it


class ToolBox:
    """The declared tools of one task, and the process their real implementations run in."""

    def __init__(self, tools: list[Tool]):
        self.tools = {tool.name: tool for tool in tools}
        self.definitions = [tool.definition for tool in tools]
        self._worker = ToolWorker()

    def check(self, call: ToolCall) -> Checked:
        tool = self.tools.get(call.function.name)
        if tool is None:
            return Checked(None, {}, error_result("unknown_tool", f"there is no tool {call.function.name!r}; the "
                                                  f"tools are: {', '.join(self.tools) or 'none'}"))
        arguments = call.function.arguments
        if not isinstance(arguments, dict):
            return Checked(tool, {}, error_result("invalid_arguments", f"the arguments are not a JSON object: "
                                                  f"{str(arguments)[:200]!r}"))
        try:
            tool.parameters.validate(arguments)
        except SchemaError as err:
            return Checked(tool, arguments, error_result("invalid_arguments", f"{err.where}: {err.message}"))
        return Checked(tool, arguments)

    def check_loadable(self) -> None:
        """Import every real tool in the tools' process now, so a broken tool file stops the run before its first
        teacher call (one line naming the tool's field) instead of failing every call it would get."""
        for tool in self.tools.values():
            if tool.ref is not None and (problem := self._worker.loads(tool.ref)) is not None:
                raise DistillError(f"{tool.where}: {problem}")

    async def run(self, tool: Tool, arguments: dict[str, Any]) -> str:
        """A real tool's result (JSON) or its error, without blocking the event loop while it runs."""
        assert tool.ref is not None  # a simulated tool is answered by a teacher call
        return await asyncio.to_thread(self._worker.call, tool.ref, arguments, tool.timeout_s)

    def close(self) -> None:
        self._worker.close()


def compile_tools(spec: ConversationSpec, base: Path | None, root: Path | None,
                  locate: Callable[[tuple], str]) -> ToolBox:
    """The task's tools, each checked without running anything: its parameters a JSON Schema, its function a
    file under `root` that defines it (read with ast) or a module of an installed package (found, not imported)."""
    tools = []
    for number, tool in enumerate(spec.tools):
        at = ("conversation", "tools", number)
        try:
            parameters = load_schema(tool.parameters)
        except ValueError as exc:
            raise TaskError((*at, "parameters"), str(exc)) from None
        ref = None
        if tool.function is not None:
            try:
                ref = _function_ref(tool.function, base, root)
            except ValueError as exc:
                raise TaskError((*at, "function"), str(exc)) from None
        tools.append(Tool(tool, parameters, ref, tool.timeout_s or spec.tool_timeout_s, locate((*at, "function"))))
    return ToolBox(tools)


def _function_ref(reference: str, base: Path | None, root: Path | None) -> CodeRef:
    if ".py:" in reference:
        return check_reference(reference, "function", base, root)
    module, sep, name = reference.partition(":")
    if not sep or not module or not name.isidentifier():
        raise ValueError(f"{reference!r}: give file.py:function (a file in the taxonomy's folder) or "
                         "package.module:function (an installed package)")
    top = module.split(".")[0]
    if importlib.util.find_spec(top) is None:  # looks the package up without running it
        raise ValueError(f"{reference!r}: no installed package {top!r}; install it, or give file.py:function")
    return CodeRef(reference, "function", name, module=module)
