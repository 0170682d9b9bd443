"""Preference pairs from the student's own answers (on-policy): where its turn failed, the teacher's is chosen."""

from __future__ import annotations

from collections.abc import Iterable

from distill.improve.records import Attempt
from distill.records import Message
from distill.train.preferences import PreferencePair


def preference_pairs(attempts: Iterable[Attempt]) -> list[PreferencePair]:
    """One pair for each attempt the student failed: the teacher's turn chosen, the student's rejected."""
    pairs = []
    for attempt in attempts:
        # A passed attempt agrees with the teacher: rejecting the student's turn there would push the model away
        # from an answer it already gets right.
        if attempt.passed:
            continue
        # A teacher's turn with neither text nor a call gives DPO nothing to prefer (and trains the model to stop
        # at once).
        if not _said(attempt.reference):
            continue
        # The same turn on both sides (a verdict that failed on something else than the text, e.g. a schema the
        # teacher missed too): DPO's margin is zero by construction and its gradient cancels, so the pair only
        # costs a forward pass.
        if _same_turn(attempt.reference, attempt.answer):
            continue
        pairs.append(PreferencePair(
            prompt=attempt.prompt, chosen=[_as_assistant(attempt.reference)], rejected=[_as_assistant(attempt.answer)],
            tools=attempt.tools, example_id=attempt.example_id, leaf=attempt.leaf, reason=attempt.reason or "failed",
        ))
    return pairs


def _said(turn: Message) -> bool:
    return bool(turn.content.strip() or turn.tool_calls)


def _same_turn(a: Message, b: Message) -> bool:
    # Whitespace around an answer is how the model stopped, not what it said.
    calls = [[call.function.model_dump() for call in turn.tool_calls or []] for turn in (a, b)]
    return a.content.strip() == b.content.strip() and calls[0] == calls[1]


def _as_assistant(turn: Message) -> Message:
    # The reasoning is left out: the student is compared on what it answers, as eval scores it.
    return Message(role="assistant", content=turn.content.strip(), tool_calls=turn.tool_calls or None)
