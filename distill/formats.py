"""The row formats people bring (OpenAI `messages`, ShareGPT `conversations`, Alpaca, prompt/completion), told
apart by their fields and turned into chat messages, every turn kept. One place for all of it: `distill curate`'s
input, held-out sets and seed files read rows through here (docs/formats.md lists the formats with an example).

A row fits a format when it has that format's fields; a row that fits none, or more than one, is one line naming
its file and line. `fmt` forces a format (`distill curate --input-format`) where a row has the fields of two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import DistillError

PAGE = "docs/formats.md"
AUTO = "auto"

# ShareGPT's `from` values as chat roles. `function_call` is the assistant asking for a tool (Glaive, ToolACE);
# `observation` is a tool's answer (LLaMA-Factory's layout of the same).
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant", "function_call": "assistant", "tool": "tool", "function": "tool",
                  "observation": "tool"}


@dataclass(frozen=True)
class RowFormat:
    name: str
    title: str  # how the docs and the messages name it
    fits: Callable[[dict[str, Any]], bool]
    messages: Callable[[dict[str, Any]], list[dict[str, str]]]  # the row's turns; ValueError names what is wrong


def _openai(row: dict[str, Any]) -> list[dict[str, str]]:
    for number, turn in enumerate(row["messages"]):
        if not isinstance(turn, dict) or "role" not in turn or "content" not in turn:
            raise ValueError(f"messages.{number}: a turn is an object with `role` and `content`")
    return row["messages"]  # roles and text are checked by the record that takes them (`Message`)


def _sharegpt(row: dict[str, Any]) -> list[dict[str, str]]:
    turns = [{"role": "system", "content": row["system"]}] if isinstance(row.get("system"), str) and row["system"] \
        else []
    for number, turn in enumerate(row["conversations"]):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise ValueError(f"conversations.{number}: a turn is an object with `from` and `value`")
        role = SHAREGPT_ROLES.get(str(turn["from"]).lower())
        if role is None:
            raise ValueError(f"conversations.{number}.from: {turn['from']!r} is not a ShareGPT role "
                             f"({', '.join(SHAREGPT_ROLES)})")
        if not isinstance(turn["value"], str):
            raise ValueError(f"conversations.{number}.value: must be text (got {type(turn['value']).__name__})")
        turns.append({"role": role, "content": turn["value"]})
    return turns


def _alpaca(row: dict[str, Any]) -> list[dict[str, str]]:
    prompt = str(row["instruction"]) + (f"\n\n{row['input']}" if row.get("input") else "")
    system = [{"role": "system", "content": row["system"]}] if isinstance(row.get("system"), str) and row["system"] \
        else []
    return [*system, {"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]


def _prompt_completion(row: dict[str, Any]) -> list[dict[str, str]]:
    answer = row["completion"] if "completion" in row else row["response"]
    return [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": answer}]


FORMATS = {f.name: f for f in (
    RowFormat("messages", "OpenAI messages", lambda row: isinstance(row.get("messages"), list), _openai),
    RowFormat("sharegpt", "ShareGPT conversations", lambda row: isinstance(row.get("conversations"), list),
              _sharegpt),
    RowFormat("alpaca", "Alpaca instruction/input/output", lambda row: "instruction" in row and "output" in row,
              _alpaca),
    RowFormat("prompt-completion", "prompt/completion",
              lambda row: "prompt" in row and ("completion" in row or "response" in row), _prompt_completion),
)}
NAMES = (AUTO, *FORMATS)
ACCEPTED = ", ".join(f"{f.title} ({f.name})" for f in FORMATS.values())


def detect(row: dict[str, Any]) -> list[str]:
    """The names of the formats whose fields the row has (none, one, or more when it is ambiguous)."""
    return [name for name, fmt in FORMATS.items() if fmt.fits(row)]


def row_format(row: Any, path: str | Path, line: int, fmt: str = AUTO, force_with: str = "--input-format") -> str:
    """The one format of `row` (`fmt` when forced and the row has its fields); else one line naming file:line and
    the formats accepted (`force_with`: how the user picks one)."""
    if not isinstance(row, dict):
        raise DistillError(f"a row is a JSON object; distill reads {ACCEPTED}", path=path, line=line, page=PAGE)
    if fmt != AUTO:
        if fmt not in FORMATS:
            raise DistillError(f"unknown input format {fmt!r}; use one of {', '.join(NAMES)}", page=PAGE)
        if not FORMATS[fmt].fits(row):
            raise DistillError(f"not a {FORMATS[fmt].title} row (its fields: {_fields(row)}); distill reads "
                               f"{ACCEPTED}", path=path, line=line, page=PAGE)
        return fmt
    found = detect(row)
    if len(found) > 1:
        raise DistillError(f"the row has the fields of {' and '.join(found)}; pick one with {force_with}",
                           path=path, line=line, page=PAGE)
    if not found:
        raise DistillError(f"no known row format (its fields: {_fields(row)}); distill reads {ACCEPTED}",
                           path=path, line=line, page=PAGE)
    return found[0]


def row_messages(row: Any, path: str | Path, line: int, fmt: str = AUTO,
                 force_with: str = "--input-format") -> list[dict[str, str]]:
    """The row's turns as chat messages (role, content), every turn kept; one line naming file:line when the
    row fits no format, more than one, or its turns are malformed."""
    name = row_format(row, path, line, fmt, force_with)
    try:
        return FORMATS[name].messages(row)
    except ValueError as exc:
        raise DistillError(f"{exc} (a {FORMATS[name].title} row)", path=path, line=line, page=PAGE) from None


def as_example_row(row: Any, path: str | Path, line: int, fmt: str = AUTO) -> dict[str, Any]:
    """The row as an `Example`'s fields: a `messages` row as it is (distill's own dataset.jsonl keeps its meta
    and output); another format's turns as `messages`, with the row's `id` and `meta` when it has them."""
    messages = row_messages(row, path, line, fmt)
    if row_format(row, path, line, fmt) == "messages":
        return row
    kept: dict[str, Any] = {"messages": messages}
    if row.get("id") is not None:
        kept["id"] = str(row["id"])
    if isinstance(row.get("meta"), dict):
        kept["meta"] = row["meta"]
    return kept


def _fields(row: dict[str, Any]) -> str:
    return ", ".join(map(str, row)) or "none"
