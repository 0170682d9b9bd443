"""What curation checks in a conversation beyond its last question and answer: tool calls, tool results, repeated
turns and the reasoning behind a label.

Each function looks at one example and returns None (passes) or a `Failure(reason, detail)`; `curate/checks.py`
runs them as checks. A turn is named by its position in `messages`, counted from 1 with the system turn included
("turn 3"), so `messages[2]` is the turn a detail names. Every function first asks whether the example has what
it checks (tool calls, tool results, a second turn of a role, reasoning) and returns at once when it has not: a
single-turn example costs an attribute read or two.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from distill.curate.normalize import normalized_words
from distill.curate.vocabulary import STOPWORDS, fold, words
from distill.records import Example, Failure, Message, ToolCall
from distill.tasks.schema import OutputSchema, SchemaError

# repeated_turn: turns shorter than this (in words) may rightly recur ("Yes, please.", "Thank you!"), and a
# near copy is one whose word 3-grams overlap at least this much (Jaccard) with an earlier turn of its role.
MIN_REPEAT_WORDS = 5
NEAR_REPEAT_JACCARD = 0.8
_REPEAT_NGRAM = 3

# tool_error_ignored: what an answer says when it reports an action as done. Kept short on purpose: the check
# is for the plain case of a teacher that writes "Your refund has been processed" over a tool's error.
_CLAIMS_SUCCESS = re.compile(
    r"\b(successfully|succeeded|(?:has|have) been (?:refunded|cancell?ed|processed|updated|completed|issued|sent"
    r"|created|booked|scheduled|changed|applied)|i(?:'ve| have) (?:refunded|cancell?ed|processed|updated|completed"
    r"|issued|sent|created|booked|scheduled|changed|applied))\b",
    re.IGNORECASE,
)

# Validators by the JSON text of a tool's `parameters`: every conversation of a task declares the same tools,
# and building a jsonschema validator costs far more than using one.
_VALIDATORS: dict[str, OutputSchema | str] = {}
_VALIDATORS_MAX = 256


def has_tool_calls(example: Example) -> bool:
    """Whether any turn calls a tool."""
    for message in example.messages:  # a plain loop: any() over a generator costs twice as much on 3 turns
        if message.tool_calls:
            return True
    return False


def _has_tool_results(example: Example) -> bool:
    for message in example.messages:
        if message.role == "tool":
            return True
    return False


def conversation_turns(example: Example) -> list[Message]:
    """The user and assistant turns, in order (no system prompt, no tool results)."""
    return [m for m in example.messages if m.role in ("user", "assistant")]


def call_text(call: ToolCall) -> str:
    """A call as text: its tool's name and its arguments (JSON with sorted keys, or the text the teacher wrote)."""
    args = call.function.arguments
    return f"{call.function.name} {json.dumps(args, sort_keys=True, ensure_ascii=False) if isinstance(args, dict) else args}"


def turn_text(message: Message) -> str:
    """A turn's text with its tool calls written out after it (the content alone for a turn without calls)."""
    if not message.tool_calls:
        return message.content
    return "\n".join([*([message.content] if message.content else []), *map(call_text, message.tool_calls)])


def declared_tools(example: Example) -> dict[str, dict[str, Any]]:
    """Tool name -> its definition's `function` part, for the tools the example declares."""
    out: dict[str, dict[str, Any]] = {}
    for tool in example.tools or []:
        inner = tool.get("function")
        function: dict[str, Any] = inner if isinstance(inner, dict) else tool  # OpenAI's wrapper, or the bare function
        if isinstance(function.get("name"), str):
            out[function["name"]] = function
    return out


def _calls(example: Example) -> Iterator[tuple[int, ToolCall]]:
    for number, message in enumerate(example.messages, 1):
        for call in message.tool_calls or ():
            yield number, call


def unknown_tool(example: Example) -> Failure | None:
    """A call must name a tool the example declares (`tools`)."""
    if not has_tool_calls(example):
        return None
    tools = declared_tools(example)
    for number, call in _calls(example):
        if call.function.name not in tools:
            known = ", ".join(sorted(tools)) or "none"
            return Failure("tool_unknown", f"turn {number}: calls {call.function.name!r}, not a declared tool "
                                           f"(declared: {known})")
    return None


def invalid_arguments(example: Example) -> Failure | None:
    """A call's arguments must be a JSON object that its tool's `parameters` JSON Schema accepts."""
    if not has_tool_calls(example):
        return None
    tools = declared_tools(example)
    for number, call in _calls(example):
        name, args = call.function.name, call.function.arguments
        if not isinstance(args, dict):
            shown = args if len(args) <= 60 else args[:57] + "..."
            return Failure("tool_arguments_invalid", f"turn {number}: {name}: the arguments are not a JSON object: "
                                                     f"{shown!r}")
        parameters = tools.get(name, {}).get("parameters")
        if not isinstance(parameters, dict):
            continue  # a tool declared without parameters takes whatever it is given
        validator = _validator(parameters)
        if isinstance(validator, str):
            return Failure("tool_arguments_invalid", f"turn {number}: {name}: the tool's parameters are not a valid "
                                                     f"JSON Schema ({validator})")
        try:
            validator.validate(args)
        except SchemaError as err:
            return Failure("tool_arguments_invalid", f"turn {number}: {name}: {err.where}: {err.message}")
    return None


def _validator(parameters: dict[str, Any]) -> OutputSchema | str:
    """The cached validator of a tool's parameters, or why the schema itself is invalid."""
    key = json.dumps(parameters, sort_keys=True)
    found = _VALIDATORS.get(key)
    if found is None:
        if len(_VALIDATORS) >= _VALIDATORS_MAX:
            _VALIDATORS.clear()
        try:
            found = OutputSchema(parameters, name="parameters")
        except Exception as err:  # jsonschema's SchemaError, imported with jsonschema only where tools are declared
            found = str(getattr(err, "message", err))
        _VALIDATORS[key] = found
    return found


def _exchanges(example: Example) -> Iterator[list[tuple[int, Message]]]:
    """The turns after each user turn up to the next one (what the assistant does to answer it), numbered."""
    current: list[tuple[int, Message]] = []
    for number, message in enumerate(example.messages, 1):
        if message.role == "user":
            if current:
                yield current
            current = []
        elif message.role != "system":
            current.append((number, message))
    if current:
        yield current


def tool_loop(example: Example, max_rounds: int) -> Failure | None:
    """No loop: at most `max_rounds` assistant turns with tool calls between two user turns, and no call repeated
    there with the same arguments (a model that asks again what it was just told is looping)."""
    if not has_tool_calls(example):
        return None
    for exchange in _exchanges(example):
        rounds = 0
        seen: dict[str, int] = {}
        for number, message in exchange:
            if not message.tool_calls:
                continue
            rounds += 1
            if rounds > max_rounds:
                return Failure("tool_loop", f"turn {number}: tool round {rounds} before answering (max_tool_rounds "
                                            f"{max_rounds})")
            for call in message.tool_calls:
                key = call_text(call)
                if key in seen:
                    return Failure("tool_loop", f"turn {number}: repeats the call of turn {seen[key]}: "
                                                f"{_short(key, 80)}")
                seen[key] = number
    return None


def _tokens(text: str) -> set[str]:
    """Folded words that could carry a value: no stop words, no single letters (numbers kept)."""
    return {fold(w) for w in words(text) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())}


def _values(data: Any) -> Iterator[str]:
    """The strings and numbers of a JSON value (not its keys, not booleans or nulls)."""
    if isinstance(data, dict):
        for value in data.values():
            yield from _values(value)
    elif isinstance(data, list):
        for value in data:
            yield from _values(value)
    elif isinstance(data, float) and data.is_integer():
        yield str(int(data))  # 249.0 is "249" in an answer
    elif isinstance(data, (str, int, float)) and not isinstance(data, bool):
        yield str(data)


def _result(content: str) -> tuple[Any, bool]:
    """A tool result as JSON (the text itself when it is not JSON), and whether it reports an error: a JSON
    object with an "error" key."""
    try:
        data = json.loads(content)
    except ValueError:
        return content, False
    return data, isinstance(data, dict) and bool(data.get("error"))


def unused_result(example: Example) -> Failure | None:
    """What the assistant does after a tool result must use it, and must not claim success over an error.

    A result is used when a word or number among its values that the conversation had not said before (the
    user's words, the call's arguments) comes back in what the assistant writes after it, before the next user
    turn (its answer, or the arguments of its next calls). A result with nothing new to say needs no use. A result
    that reports an error (a JSON object with an "error" key) need not be used, but the answer after it must not
    say the action was done ("successfully", "has been refunded" ...): `tool_error_ignored`.
    """
    if not _has_tool_results(example):
        return None
    said: set[str] = set()  # the words of every user and assistant turn so far
    for number, message in enumerate(example.messages, 1):
        if message.role in ("user", "assistant"):
            said |= _tokens(turn_text(message))
            continue
        if message.role != "tool":
            continue
        after = _after(example.messages, number)  # messages[number] is the turn after this one
        data, error = _result(message.content)
        tool = message.name or "the tool"
        if error:
            answer = " ".join(m.content for m in after if m.content)
            if claim := _CLAIMS_SUCCESS.search(answer):
                return Failure("tool_error_ignored", f"turn {number}: {tool} returned an error, but the answer "
                                                     f"after it says {claim.group(0)!r}")
            continue
        new = set().union(*map(_tokens, _values(data))) - said
        if new and after and not new & set().union(*(_tokens(turn_text(m)) for m in after)):
            shown = ", ".join(sorted(new)[:5])
            return Failure("tool_result_unused", f"turn {number}: nothing of {tool}'s result ({shown} ...) is used "
                                                 f"in the assistant's turns after it")
    return None


def _after(messages: list[Message], start: int) -> list[Message]:
    """The assistant turns from `start` up to the next user turn."""
    out = []
    for message in messages[start:]:
        if message.role == "user":
            break
        if message.role == "assistant":
            out.append(message)
    return out


def repeated_turn(example: Example) -> Failure | None:
    """No user or assistant turn repeats an earlier one of its role, word for word or nearly (word 3-grams with a
    Jaccard of `NEAR_REPEAT_JACCARD` or more, after normalisation). Turns under `MIN_REPEAT_WORDS` words may
    recur. A single-turn example has no earlier turn to repeat."""
    messages = example.messages
    # Up to three turns of different roles (system, question, answer): nothing to repeat
    if len(messages) < 3 or (len(messages) == 3 and len({m.role for m in messages}) == 3):
        return None
    earlier: dict[str, list[tuple[int, tuple[str, ...], set[tuple[str, ...]]]]] = {"user": [], "assistant": []}
    for number, message in enumerate(example.messages, 1):
        if message.role not in earlier or not message.content:
            continue
        tokens = tuple(normalized_words(message.content))
        if len(tokens) < MIN_REPEAT_WORDS:
            continue
        grams = set(zip(*(tokens[i:] for i in range(_REPEAT_NGRAM))))
        for before, their_tokens, their_grams in earlier[message.role]:
            if tokens == their_tokens:
                return Failure("repeated_turn", f"turn {number} ({message.role}) repeats turn {before} word for word")
            similarity = len(grams & their_grams) / len(grams | their_grams)
            if similarity >= NEAR_REPEAT_JACCARD:
                return Failure("repeated_turn", f"turn {number} ({message.role}) nearly repeats turn {before} "
                                                f"(Jaccard {similarity:.2f})")
        earlier[message.role].append((number, tokens, grams))
    return None


def reasoning_disagrees(example: Example, labels: list[str] | None, label: str) -> Failure | None:
    """The reasoning behind a label must conclude with that label: the label it names last is the answer's.

    Only where the task has a label set and the answering (last) assistant turn carries reasoning. A label is
    found as a whole word, case ignored, with "_" and "-" matching a space ("login_problem" in "a login
    problem"); reasoning that names no label passes.
    """
    if not labels:
        return None
    answer = next((m for m in reversed(example.messages) if m.role == "assistant"), None)
    if answer is None or not answer.reasoning:
        return None
    last, at = None, -1
    for name in labels:
        for match in _label_pattern(name).finditer(answer.reasoning):
            if match.start() > at:
                last, at = name, match.start()
    if last is None or last.casefold() == label.casefold():
        return None
    return Failure("reasoning_disagrees", f"the reasoning names {last!r} last, the answer is {label!r}")


@lru_cache(maxsize=256)
def _label_pattern(label: str) -> re.Pattern[str]:
    parts = (re.escape(part) for part in re.split(r"[\s_-]+", label.strip()))
    return re.compile(r"(?<!\w)" + r"[\s_-]+".join(parts) + r"(?!\w)", re.IGNORECASE)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
