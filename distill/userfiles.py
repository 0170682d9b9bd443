"""Reading the files a user hands us (YAML, JSONL, CSV) so that every mistake is one line naming file, line and field.

All YAML a user writes (taxonomies, run configs, API configs, training configs) goes through `load_yaml`:
it bounds the work before building anything (nesting depth; nodes after alias expansion, so a 1 KB
file of aliases cannot expand into a million nodes) and keeps line numbers, which `located` uses to
turn a pydantic error into `file:line: field: what to do`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent, ScalarEvent

from distill.errors import DistillError, explain

# ruamel builds nested mappings recursively and hits Python's recursion limit at ~300 levels; a
# taxonomy tree uses two YAML levels a tree level (the node and its `children:`).
MAX_YAML_DEPTH = 64
# Nodes after alias expansion. The shipped medical taxonomy has ~600; a huge real taxonomy a few tens of thousands.
MAX_YAML_NODES = 200_000


def read_text(path: str | Path, what: str = "file") -> str:
    """The whole file as text; a missing file, a folder or bytes that are not UTF-8 are one line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _unreadable(exc, path, what) from None
    return decode(data, path)


def _unreadable(exc: OSError, path: Path, what: str) -> DistillError:
    if isinstance(exc, FileNotFoundError):
        return DistillError(f"{what} not found; check the path", path=path)
    if isinstance(exc, IsADirectoryError):
        return DistillError(f"is a folder; give the path of the {what}", path=path)
    return explain(exc, path)


def decode(data: bytes, path: str | Path, first_line: int = 1) -> str:
    """UTF-8 (a leading byte-order mark is dropped), or an error naming the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig" if first_line == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + data.count(b"\n", 0, exc.start)
        raise DistillError(f"not UTF-8 text (byte 0x{data[exc.start]:02x}: {exc.reason}); save the file as UTF-8",
                           path=path, line=line) from None


def text_lines(path: str | Path, what: str = "file") -> Iterator[tuple[int, str]]:
    """(line number, text) for every line, read as bytes and decoded one line at a time."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise _unreadable(exc, path, what) from None
    with handle:
        for number, raw in enumerate(handle, 1):
            yield number, decode(raw, path, first_line=number)


def load_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """The file's data (ruamel round-trip types, which remember their lines), or one line saying what is wrong."""
    path = Path(path)
    text = read_text(path, what)
    try:
        _check_bounds(text, path)
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "cannot parse"
        raise DistillError(f"malformed YAML: {problem}; fix the syntax", path=path, line=line) from None
    except YAMLError as exc:
        raise DistillError(f"malformed YAML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                           path=path) from None
    except RecursionError:
        raise DistillError("nested too deeply to read; flatten it", path=path) from None


def load_yaml_mapping(path: str | Path, what: str, expected: str) -> dict:
    """`load_yaml` for a file that must hold a mapping (an empty file is an empty mapping)."""
    data = load_yaml(path, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DistillError(f"expected a mapping of {expected}", path=path, line=1)
    return data


def _check_bounds(text: str, path: Path) -> None:
    """Walk the parser's events (no nodes are built) and stop a file nested too deep or expanding too far."""
    depth = 0
    nodes = 0  # after alias expansion
    anchored: dict[str, int] = {}  # anchor -> nodes in its subtree (once it is closed)
    open_anchors: list[tuple[str | None, int]] = []  # per open collection: its anchor and the count at its start
    for event in YAML(typ="rt").parse(text):
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, AliasEvent):
            if event.anchor not in anchored:
                raise DistillError(f"alias *{event.anchor} refers to a node that contains it (or to no anchor); "
                                   "write that part out instead", path=path, line=line)
            nodes += anchored[event.anchor]
        elif isinstance(event, NodeEvent):
            nodes += 1
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise DistillError(f"nested more than {MAX_YAML_DEPTH} levels deep (a taxonomy tree of about "
                                       f"{MAX_YAML_DEPTH // 2} levels); flatten it", path=path, line=line)
                open_anchors.append((event.anchor, nodes - 1))
            elif isinstance(event, ScalarEvent) and event.anchor:
                anchored[event.anchor] = 1
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
            anchor, start = open_anchors.pop()
            if anchor:
                anchored[anchor] = nodes - start
        if nodes > MAX_YAML_NODES:
            raise DistillError(f"expands to more than {MAX_YAML_NODES:,} YAML nodes (aliases such as *name repeat "
                               "whole parts); write a smaller file", path=path, line=line)


def line_of(data: Any, loc: tuple) -> int | None:
    """The 1-based line of the deepest YAML node on `loc` that exists."""
    line = None
    node = data
    for key in loc:
        lc = getattr(node, "lc", None)
        if isinstance(node, dict) and key in node:
            position = lc.key if lc is not None else None
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            position = lc.item if lc is not None else None
        else:
            break
        if position is not None:
            try:
                line = position(key)[0] + 1
            except (KeyError, TypeError):
                pass
        node = node[key]
        if line is None and lc is not None:
            line = lc.line + 1
    return line


def located(exc: ValidationError, data: Any, path: Path, prefix: tuple = (), page: str | None = None) -> DistillError:
    """A pydantic error as `file:line: field.path: what to do`; `prefix` is where the validated part sits in `data`,
    `page` the docs page that describes the file."""
    loc, message = _first_problem(exc)
    return DistillError(_at((*prefix, *loc), message), path=path, line=line_of(data, (*prefix, *loc)), page=page)


def invalid_options(exc: ValidationError, what: str = "option") -> DistillError:
    """A pydantic error about options given in code or on the command line (no file to point at):
    `bad option: field.path: what to do`."""
    loc, message = _first_problem(exc)
    return DistillError(f"bad {what}: {_at(loc, message)}")


def _at(loc: tuple, message: str) -> str:
    return f"{'.'.join(str(p) for p in loc) or '(top level)'}: {message}"


def _first_problem(exc: ValidationError) -> tuple[tuple, str]:
    """The first error's field path and what to do about it."""
    error = exc.errors()[0]
    # Validator wrappers (function-after[...]) show up in the location; they are not fields.
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden" and loc:
        message = f"unknown field {loc[-1]!r}; remove it or check its spelling"
    elif error["type"] == "missing" and loc:
        message = f"missing required field {loc[-1]!r}"
    elif "input" in error and not isinstance(error["input"], (dict, list)):
        message += f" (got {repr(error['input'])[:80]})"
    return loc, message
