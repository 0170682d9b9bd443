"""The records the improvement rounds pass between their parts."""

from __future__ import annotations

from pydantic import BaseModel, Field

from distill.records import Message


class Attempt(BaseModel):
    """The student's answer to one training prompt (never a held-out one), judged against the teacher's.

    `prompt` is the conversation up to the assistant turn the student answered; `reference` is the teacher's
    turn there and `answer` the student's (tool calls parsed, as in eval). `passed` is False where the student's
    turn fails a check or disagrees with the teacher; `reason` says which (a short stable code, e.g.
    `label_mismatch`, `schema_invalid`, `wrong_tool`, `low_overlap`)."""

    example_id: str
    leaf: str
    task: str  # qa | classification | extraction | conversation ... (`distill.evaluate.report.task_of`)
    turn: int  # the index in the example's messages of the assistant turn answered
    prompt: list[Message]
    tools: list[dict] | None = None  # the tool definitions the prompt was rendered with
    reference: Message
    answer: Message
    passed: bool
    reason: str | None = None
    detail: str = ""
    scores: dict[str, float] = Field(default_factory=dict)  # what the verdict rests on (e.g. token_f1)
