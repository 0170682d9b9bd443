"""The taxonomy file, as typed records. Unknown fields are errors: a typo must not pass silently."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from distill.records import HeldoutSource
from distill.tasks.spec import TaskSpec

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Axis(Strict):
    """Values crossed with every leaf, with weights. YAML: a list, a {value: weight} map, or the long form."""

    description: str | None = None
    values: dict[str, float]

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"values": {str(v): 1.0 for v in data}}
        if isinstance(data, dict) and "values" not in data:
            return {"values": data}
        if isinstance(data, dict) and isinstance(data.get("values"), list):
            return {**data, "values": {str(v): 1.0 for v in data["values"]}}
        return data

    @field_validator("values")
    @classmethod
    def _weights(cls, values: dict[str, float]) -> dict[str, float]:
        if not values:
            raise ValueError("an axis needs at least one value")
        if any(w <= 0 for w in values.values()):
            raise ValueError("axis weights must be positive numbers")
        return values


class Generation(Strict):
    per_leaf: int | None = Field(default=None, ge=1)
    total: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(default=384, ge=16)
    instruction_max_tokens: int = Field(default=96, ge=16)
    seeds_per_prompt: int = Field(default=3, ge=0)

    @model_validator(mode="after")
    def _one_quota(self) -> Generation:
        if self.per_leaf is not None and self.total is not None:
            raise ValueError("give either per_leaf or total, not both")
        if self.per_leaf is None and self.total is None:
            self.per_leaf = 3
        return self


class Node(Strict):
    description: str = Field(min_length=1)
    # JSONL files (paths relative to the taxonomy) and seeds written inline (mappings), both kinds mixed.
    seeds: list[str | dict[str, Any]] = Field(default_factory=list)
    quota: int | None = Field(default=None, ge=0)
    # A grounding document for grounded tasks (templates read it as `context`); inherited by the nodes below.
    context: str | None = None
    context_file: str | None = None  # the same, read from a text file (relative to the taxonomy)
    # Files or folders of the user's documents (relative to the taxonomy, under its project) whose chunks belong
    # to this node: to this leaf, or to the leaves below it (docs/documents.md#pinning-documents-to-a-node).
    documents: list[str] = Field(default_factory=list)
    children: dict[str, Node] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_context(self) -> Node:
        if self.context is not None and self.context_file is not None:
            raise ValueError("give either context or context_file, not both")
        return self

    @field_validator("seeds", "documents", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, (str, dict)) else value

    @field_validator("children")
    @classmethod
    def _names(cls, children: dict[str, Node]) -> dict[str, Node]:
        for name in children:
            if not NAME_RE.match(name):
                raise ValueError(f"node name {name!r}: use lowercase letters, digits, '-' and '_'")
        return children


class Taxonomy(Strict):
    name: str
    description: str = ""
    # A built-in task (qa, classification), a task plugin's name, the path of a task YAML file (relative to
    # the taxonomy), or the task itself (a mapping: see distill/tasks/spec.py).
    task: str | TaskSpec = "qa"
    system_prompt: str = Field(min_length=1)
    generation: Generation = Field(default_factory=Generation)
    axes: dict[str, Axis] = Field(default_factory=dict)
    labels: dict[str, str] | None = None  # labelled tasks (classification): label -> when it applies
    heldout: list[HeldoutSource] = Field(default_factory=list)
    tree: dict[str, Node] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not NAME_RE.match(name):
            raise ValueError("use lowercase letters, digits, '-' and '_' (it names the run folder)")
        return name

    @field_validator("tree")
    @classmethod
    def _top_names(cls, tree: dict[str, Node]) -> dict[str, Node]:
        return Node._names(tree)

    @model_validator(mode="after")
    def _label_axis(self) -> Taxonomy:
        if self.labels and "label" in self.axes:
            raise ValueError("the `label` axis comes from `labels:`; remove it from `axes:`")
        return self

    def crossed_axes(self) -> dict[str, Axis]:
        """The axes every leaf is crossed with; classification adds its labels as a balanced axis."""
        axes = dict(self.axes)
        if self.labels:
            axes["label"] = Axis(description="the label the example must have", values={k: 1.0 for k in self.labels})
        return axes
