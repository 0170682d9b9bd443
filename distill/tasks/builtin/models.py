"""Pydantic schemas of the built-in tasks (named from their YAML as distill.tasks.builtin.models:Name)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TicketDraft(BaseModel):
    """What the teacher writes for a classification item; the label comes from the plan."""

    text: str = Field(min_length=12)
    rationale: str = Field(min_length=8)


class ClassificationOutput(BaseModel):
    """The student's answer; the task restricts `label` to the taxonomy's label set."""

    label: str
    rationale: str = Field(min_length=1)
