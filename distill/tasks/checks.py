"""A task's own checks, declared in its YAML and run by curation after the general ones.

Each becomes a `TaskCheck`: a name and a function `example -> Failure | None`, the shape of every
check in `distill/curate/checks.py`, so its rejects carry a reason code and a detail like theirs.
Declarative kinds: `required`, `allowed`, `regex`, `length`. `custom` names a Python function: a
`distill.checks` plugin by name, or `file.py:function` in the taxonomy's folder (code.py says what may
be named, and when it is imported).

A custom check is `check(example, **args)` returning None (passes), a `Failure`, or a string (what is
wrong; the reason code is then the check's name).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.records import Example, Failure
from distill.tasks.code import CodeRef, check_reference, load
from distill.tasks.spec import CheckSpec, CustomRule

MISSING = object()


@dataclass(frozen=True)
class TaskCheck:
    name: str
    run: Callable[[Example], Failure | None]

    def __call__(self, example: Example) -> Failure | None:
        return self.run(example)


def values_at(example: Example, path: str) -> list[Any]:
    """Every value at `path`: `user` / `assistant` / `system` (that turn's text), or `output.a.b`, where
    `name[]` steps into each item of a list. A value that is not there is `MISSING`."""
    head, _, rest = path.partition(".")
    if head in ("user", "assistant", "system") and not rest:
        return [example.turn(head)]
    if head.removesuffix("[]") != "output":
        raise ValueError(f"field {path!r}: start with user, assistant, system or output")
    values: list[Any] = [example.output if example.output is not None else MISSING]
    if head.endswith("[]"):
        values = _each(values)
    for part in rest.split(".") if rest else []:
        key, fan_out = part.removesuffix("[]"), part.endswith("[]")
        values = [v.get(key, MISSING) if isinstance(v, dict) else MISSING for v in values]
        if fan_out:
            values = _each(values)
    return values


def _each(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        out.extend(value if isinstance(value, list) else [MISSING])
    return out


def _empty(value: Any) -> bool:
    return value is MISSING or value is None or value == "" or value == [] or value == {}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def compile_check(spec: CheckSpec, labels: list[str] | None, base: Path | None, root: Path | None = None,
                  code: bool = True) -> TaskCheck:
    """The runnable form of one declared check; ValueError for a custom check that cannot be found. A custom
    check's Python is imported only with `code` (else it is checked by reading, and the check refuses to run);
    `root` is the folder its file must lie in (None: a built-in or plugin task)."""
    kind = spec.kind
    if kind == "custom":
        rule = spec.custom if isinstance(spec.custom, CustomRule) else CustomRule(check=spec.custom)
        ref = check_reference(rule.check, "function", base, root)
        name = rule.check if ref.plugin else ref.name.rpartition(".")[2]
        function = load(ref) if code else _not_loaded(ref)
        return TaskCheck(name, _custom(name, function, rule.args, spec.reason))
    build = {"required": _required, "allowed": _allowed, "regex": _regex, "length": _length}[kind]
    check = build(getattr(spec, kind), labels)
    reason = spec.reason
    if reason is None:
        return TaskCheck(kind, check)

    def renamed(example: Example) -> Failure | None:
        failure = check(example)
        return None if failure is None else Failure(reason, failure.detail)

    return TaskCheck(reason, renamed)


def _required(fields: list[str], labels) -> Callable[[Example], Failure | None]:
    for field in fields:
        values_at(Example(id="", messages=[]), field)  # a bad path fails when the task loads, not per example

    def check(example: Example) -> Failure | None:
        for field in fields:
            values = values_at(example, field)
            if not values or any(_empty(v) for v in values):
                return Failure("missing_field", f"{field}: missing or empty")
        return None

    return check


def _allowed(rule, labels) -> Callable[[Example], Failure | None]:
    values_at(Example(id="", messages=[]), rule.field)
    allowed = list(labels or []) if rule.values == "labels" else list(rule.values)
    allowed_set = {_hashable(v) for v in allowed}
    listed = ", ".join(str(v) for v in allowed[:12]) + (" ..." if len(allowed) > 12 else "")

    def check(example: Example) -> Failure | None:
        for value in values_at(example, rule.field):
            if value is not MISSING and _hashable(value) not in allowed_set:
                return Failure("value_not_allowed", f"{rule.field}: {_shown(value)} is not one of {listed}")
        return None

    return check


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, (list, dict)) else value


def _regex(rule, labels) -> Callable[[Example], Failure | None]:
    values_at(Example(id="", messages=[]), rule.field)
    pattern = re.compile(rule.pattern)

    def check(example: Example) -> Failure | None:
        for value in values_at(example, rule.field):
            if value is MISSING:
                continue
            if not isinstance(value, str) or pattern.fullmatch(value) is None:
                return Failure("pattern_mismatch", f"{rule.field}: {_shown(value)} does not match {rule.pattern}")
        return None

    return check


def _length(rule, labels) -> Callable[[Example], Failure | None]:
    values_at(Example(id="", messages=[]), rule.field)

    def size(value: Any) -> int:
        if rule.unit == "items":
            return len(value) if isinstance(value, (list, dict)) else 1
        text = value if isinstance(value, str) else str(value)
        return len(text.split()) if rule.unit == "words" else len(text)

    def check(example: Example) -> Failure | None:
        for value in values_at(example, rule.field):
            if value is MISSING:
                continue
            n = size(value)
            if rule.min is not None and n < rule.min:
                return Failure("too_short", f"{rule.field}: {n} {rule.unit} < {rule.min}")
            if rule.max is not None and n > rule.max:
                return Failure("too_long", f"{rule.field}: {n} {rule.unit} > {rule.max}")
        return None

    return check


def _custom(name: str, function: Callable, args: dict[str, Any], reason: str | None) -> Callable:
    def check(example: Example) -> Failure | None:
        try:
            verdict = function(example, **args)
        except DistillError:
            raise
        except Exception as exc:  # a bug in the check, not in the example: say which, and stop
            raise DistillError(f"task check {name!r} raised {type(exc).__name__} on example {example.id}: {exc}; "
                               "fix the check") from None
        if verdict is None or verdict is True:
            return None
        if isinstance(verdict, Failure):
            return Failure(reason, verdict.detail) if reason else verdict
        detail = "failed" if verdict is False else str(verdict)
        return Failure(reason or name, detail)

    return check


def _not_loaded(ref: CodeRef) -> Callable:
    def refuse(example: Example, **args: Any) -> None:
        # A taxonomy loaded without its Python (validate, show, a dry run) never curates; reaching this is a bug.
        raise DistillError(f"the task check {ref.reference!r} was not imported: load the taxonomy with code=True "
                           "(only generating and curating do)")

    return refuse
