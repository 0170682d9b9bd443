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

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import regex

from distill.errors import DistillError
from distill.records import Example, Failure, Role
from distill.tasks.code import CodeRef, check_reference, load
from distill.tasks.spec import CheckSpec, CustomRule

MISSING = object()
# A task's regex runs on the `regex` engine (re's syntax and Unicode classes) with this much CPU time per
# example: a pattern that backtracks without end (`^(a+)+$` on a line of 20,000 a's then a b) is a reject,
# not a hang. A usual match takes microseconds (3-4 us a value with the time limit, 0.2-0.5 with re), so
# the limit only meets runaway patterns. google-re2 never backtracks, but its \w and \d are ASCII only
# and it refuses backreferences and lookarounds: task files written for re would change meaning.
REGEX_TIMEOUT_S = 1.0
REGEX_TIMEOUT = "regex_timeout"  # its reason, kept under a check's own `reason`: the example is not at fault


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
        return [example.turn(cast(Role, head))]
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
    check = KINDS[kind](getattr(spec, kind), labels)
    reason = spec.reason
    if reason is None:
        return TaskCheck(kind, check)

    def renamed(example: Example) -> Failure | None:
        failure = check(example)
        if failure is None or failure.reason == REGEX_TIMEOUT:
            return failure
        return Failure(reason, failure.detail)

    return TaskCheck(reason, renamed)


def _required(fields: list[str], labels) -> Callable[[Example], Failure | None]:
    """`required: [field, ...]`: every field listed must be present and not empty.

    A field is `user`, `assistant` or `system` (that turn's text) or `output.<path>` into the structured
    answer, where `name[]` steps into each item of a list (`output.medications[].name`: every item needs a
    name). Empty means missing, null, "", [] or {}.
    """
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
    """`allowed: {field, values}`: every value at `field` must be one of `values`.

    `values: labels` means the taxonomy's labels. A value that is not there passes (pair it with
    `required` to demand it). The detail names the value and the allowed ones.
    """
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
    """`regex: {field, pattern}`: every value at `field` must be a string the pattern matches whole.

    The pattern is Python's `re` syntax (run by the `regex` engine), checked when the task loads; a value that is
    not there passes. Each example gets 1 s of CPU for the pattern: one that backtracks without end (`^(a+)+$` on
    a long line) rejects that example as `regex_timeout` instead of hanging curation.
    """
    values_at(Example(id="", messages=[]), rule.field)
    pattern = regex.compile(rule.pattern)

    def check(example: Example) -> Failure | None:
        # regex counts its timeout in CPU time, so the example's budget does too: a loaded machine slows
        # the wall clock, not the verdict.
        deadline = time.thread_time() + REGEX_TIMEOUT_S
        for value in values_at(example, rule.field):
            if value is MISSING:
                continue
            try:
                matched = isinstance(value, str) and pattern.fullmatch(
                    value, timeout=max(0.0, deadline - time.thread_time())) is not None
            except TimeoutError:
                return Failure(REGEX_TIMEOUT, f"{rule.field}: {rule.pattern} ran over {REGEX_TIMEOUT_S:g} s of CPU "
                                              f"on a {len(value)}-character value; simplify the pattern")
            if not matched:
                return Failure("pattern_mismatch", f"{rule.field}: {_shown(value)} does not match {rule.pattern}")
        return None

    return check


def _length(rule, labels) -> Callable[[Example], Failure | None]:
    """`length: {field, min, max, unit}`: every value at `field` must be within `min` and `max`.

    `unit` is `words` (the default), `chars`, or `items` (the length of a list or mapping). Either bound
    may be left out; a value that is not there passes.
    """
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


# A declared check's kind -> the function that builds it from its rule (`custom` is resolved by name instead).
KINDS: dict[str, Callable[[Any, list[str] | None], Callable[[Example], Failure | None]]] = {
    "required": _required, "allowed": _allowed, "regex": _regex, "length": _length,
}


def _custom(name: str, function: Callable, args: dict[str, Any], reason: str | None) -> Callable:
    """`custom: CHECK` or `custom: {check: CHECK, args: {...}}`: a Python function decides.

    CHECK is a `distill.checks` plugin's name, or `file.py:function`: a plain function defined at the top
    of a file in the taxonomy's folder (the path relative to the file that declares the task), read on
    `taxonomy validate`, `show` and dry runs and imported only by generate and curate (built-in and plugin
    tasks may also name `package.module:function`). The function is called as `check(example, **args)`
    and returns None (or True) to pass, or a `Failure`, a string saying what is wrong, or False; the reason
    code is then the check's name (the function's), unless the check gives `reason:`. A check that raises stops
    curation with one line naming it and the example: that is a bug in the check, not in the data.
    """
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
