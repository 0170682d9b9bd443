"""Preference pairs (a prompt, the turn to prefer, the turn to avoid) and `preferences.jsonl`, their file.

A line of `preferences.jsonl` is a row of TRL's conversational preference form, as `DPOTrainer` reads it:

    {"prompt": [{"role": "system", ...}, {"role": "user", ...}],
     "chosen": [{"role": "assistant", "content": "..."}], "rejected": [{"role": "assistant", "content": "..."}],
     "tools": [...], "example_id": "...", "leaf": "...", "reason": "label_mismatch"}

`chosen` and `rejected` are each one assistant turn (with its tool calls, where it makes any); `tools` are the
definitions the prompt was rendered with; `example_id`, `leaf` and `reason` say where the pair came from, so a
person can read why the student's turn was rejected.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError, field_validator

from distill.errors import DistillError
from distill.records import Message, iter_jsonl
from distill.rundir import PREFERENCES, RunDir


def _one_assistant_turn(turns: list[Message]) -> list[Message]:
    # DPO compares the log-likelihood of two continuations of the same prompt: each side is one assistant turn.
    if len(turns) != 1 or turns[0].role != "assistant":
        raise ValueError("must be a list of one assistant turn: [{\"role\": \"assistant\", \"content\": ...}]")
    return turns


class PreferencePair(BaseModel):
    """A prompt, the assistant turn to prefer (`chosen`) and the one to avoid (`rejected`), in TRL's
    conversational preference form, with where the pair came from."""

    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    tools: list[dict[str, Any]] | None = None
    example_id: str = ""
    leaf: str = ""
    reason: str = ""  # why the rejected turn lost (the Attempt's reason, e.g. label_mismatch)

    _one_chosen = field_validator("chosen")(_one_assistant_turn)
    _one_rejected = field_validator("rejected")(_one_assistant_turn)

    @field_validator("prompt")
    @classmethod
    def _asks_something(cls, prompt: list[Message]) -> list[Message]:
        if not prompt:
            raise ValueError("is empty: give the turns before the answer")
        return prompt


def write_preferences(run_dir: Path | RunDir, pairs: Iterable[PreferencePair]) -> Path:
    """RUN_DIR/preferences.jsonl, replaced whole (never over a file of that name distill did not write)."""
    run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    return run_dir.folder().write_jsonl(PREFERENCES, pairs)


def read_preferences(path: Path) -> list[PreferencePair]:
    """The pairs of a preferences file; a line that is not one is a DistillError naming the file, the line and
    the field."""
    path = Path(path)
    if not path.is_file():
        raise DistillError("not found: give a preferences.jsonl (one pair a line: prompt, chosen, rejected)",
                           path=path)
    pairs = []
    for number, row in iter_jsonl(path):
        try:
            pairs.append(PreferencePair.model_validate(row))
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or "pair"
            raise DistillError(f"{field}: {error['msg'].removeprefix('Value error, ')}", path=path,
                               line=number) from None
    if not pairs:
        raise DistillError("no preference pairs: the file is empty", path=path)
    return pairs
