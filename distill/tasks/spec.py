"""A task as data: what a seed holds, the teacher calls that make one example, and how the example is checked.

A `TaskSpec` is what a task YAML file (or a taxonomy's inline `task:`) holds, field for field; the
built-in `qa` and `classification` are such files (`distill/tasks/builtin/`). Unknown fields are
errors, so a typo in a task is a `file:line` message rather than a silently ignored setting.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class TaskError(ValueError):
    """A mistake in a task found while compiling it; `loc` is the field path inside the task (for its line)."""

    def __init__(self, loc: tuple, message: str):
        super().__init__(f"{'.'.join(map(str, loc))}: {message}")
        self.loc, self.message = loc, message


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateFile(Strict):
    """`{file: name.j2}`: a Jinja2 file, looked up next to the task, then next to the taxonomy, then built in."""

    file: str = Field(min_length=1)


# A template is inline Jinja2 text, or a file.
Template = str | TemplateFile


class SeedField(Strict):
    """One field of a seed line. YAML short form: the type alone (`question: text`)."""

    # text: a non-empty string; label: one of the taxonomy's labels; output: a value the task's
    # output_schema accepts (what the student should answer for this seed).
    type: Literal["text", "string", "integer", "number", "boolean", "list", "object", "label", "output", "any"] = "text"
    optional: bool = False
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {"type": data} if isinstance(data, str) else data


class Shots(Strict):
    """Few-shot chat turns, one pair a seed: the item's seeds (nearest and best matching first)."""

    count: int | None = Field(default=None, ge=0)  # at most this many (default: all the item's seeds)
    # "request": the step's own prompt, rendered for the seed (its node, its axes, its label and context).
    user: Literal["request"] | Template = "request"
    assistant: Template


class Sampling(Strict):
    """Overrides of the taxonomy's `generation:` settings for one step. A string is a Jinja2 expression
    over `generation` (e.g. `generation.instruction_max_tokens`)."""

    temperature: float | str | None = None
    top_p: float | str | None = None
    max_tokens: int | str | None = None


class SamplingBounds(Strict):
    """What a step's sampling values may be, numbers and expressions' values alike (checked when it compiles)."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)


class Step(Strict):
    """One teacher call. Its output is `steps.<name>` in later templates: text, or the parsed JSON object."""

    name: str
    system: Template | None = None
    prompt: Template
    shots: Shots | None = None
    sampling: Sampling = Field(default_factory=Sampling)
    output: Literal["text", "json"] = "text"
    # json: the schema the teacher is asked for (json_schema, tool use or the prompt, as the backend can)
    # and the reply is validated against: inline JSON Schema, or `package.module:Model` (a pydantic model).
    schema_: dict[str, Any] | str | None = Field(default=None, alias="schema")
    accept_truncated: bool = False  # text: a reply cut at max_tokens is still used (a question usually is)
    extract: Literal["question"] | None = None  # text: keep only the first new question of the reply
    avoid_seed_field: str | None = None  # extract: skip replies that repeat this field of the leaf's seeds

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError("a step name is lowercase letters, digits and '_' (templates read it as steps.<name>)")
        return name

    @model_validator(mode="after")
    def _output_settings(self) -> Step:
        if self.output == "text" and self.schema_ is not None:
            raise ValueError("`schema` is for `output: json` steps")
        if self.output == "json" and (self.extract or self.accept_truncated):
            raise ValueError("`extract` and `accept_truncated` are for `output: text` steps")
        if self.avoid_seed_field and not self.extract:
            raise ValueError("`avoid_seed_field` goes with `extract: question`")
        return self


class MessageTemplate(Strict):
    role: Literal["system", "user", "assistant"]
    content: Template


class ExampleSpec(Strict):
    """The training example: its messages (templates over the steps' outputs) and its structured output."""

    messages: list[MessageTemplate] = Field(min_length=2)
    # A Jinja2 expression (`steps.extract`) or a mapping of field -> expression; validated against
    # output_schema and stored as the example's `output`. Templates read it as `output`.
    output: str | dict[str, str] | None = None

    @field_validator("messages")
    @classmethod
    def _ends_with_assistant(cls, messages: list[MessageTemplate]) -> list[MessageTemplate]:
        if messages[-1].role != "assistant":
            raise ValueError("the last message is the student's answer: role assistant")
        return messages


class FieldRule(Strict):
    field: str  # user | assistant | system | output.<path>, `[]` for every item of a list: output.meds[].name


class AllowedRule(FieldRule):
    values: list[Any] | Literal["labels"]  # "labels": the taxonomy's labels


class RegexRule(FieldRule):
    pattern: str  # the whole value must match

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            regex.compile(pattern)  # the engine the check runs on (tasks/checks.py)
        except regex.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return pattern


class LengthRule(FieldRule):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    unit: Literal["words", "chars", "items"] = "words"


class CustomRule(Strict):
    # A check by name (a `distill.checks` plugin), `package.module:function`, or `file.py:function`
    # (relative to the file that declares the task).
    check: str
    args: dict[str, Any] = Field(default_factory=dict)


class CheckSpec(Strict):
    """One task check; exactly one of its kinds. `reason` replaces the reject reason code."""

    required: list[str] | None = None  # fields that must be present and not empty
    allowed: AllowedRule | None = None
    regex: RegexRule | None = None
    length: LengthRule | None = None
    custom: CustomRule | str | None = None
    reason: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CheckSpec:
        kinds = [k for k in ("required", "allowed", "regex", "length", "custom") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a check is exactly one of: required, allowed, regex, length, custom")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("required", "allowed", "regex", "length", "custom") if getattr(self, k) is not None)


class Turns(Strict):
    """How many user turns a conversation has: each plan item picks one in [min, max] from its id. YAML short
    form: a number (`turns: 3`)."""

    min: int = Field(default=1, ge=1, le=50)
    max: int = Field(default=3, ge=1, le=50)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {"min": data, "max": data} if isinstance(data, int) else data

    @model_validator(mode="after")
    def _ordered(self) -> Turns:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is more than max ({self.max})")
        return self


class SimulatedUser(Strict):
    """Who plays the user: templates of the request that writes each user turn (defaults built in)."""

    system: Template | None = None
    prompt: Template | None = None  # the instruction; the conversation so far follows it, roles flipped


class ToolSpec(Strict):
    """A tool the assistant may call: its definition (sent to the teacher) and what answers a call."""

    name: str
    description: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    # `file.py:function` (a file in the taxonomy's folder) or `package.module:function` (an installed
    # package), called with the call's arguments as keywords; or `simulated: true`, a teacher writes the result.
    function: str | None = None
    simulated: bool = False
    timeout_s: float | None = Field(default=None, gt=0, le=600)  # default: the conversation's tool_timeout_s

    @field_validator("name")
    @classmethod
    def _tool_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,63}", name):
            raise ValueError("a tool name is letters, digits, '_' and '-' (at most 64), as the APIs take it")
        return name

    @model_validator(mode="after")
    def _one_implementation(self) -> ToolSpec:
        if (self.function is None) == (not self.simulated):
            raise ValueError("a tool has exactly one of `function: file.py:function` and `simulated: true`")
        return self


class ConversationSpec(Strict):
    """A multi-turn conversation in place of `steps` and `example`: a simulated user and the assistant take
    turns, the assistant may call `tools`; every turn is its own teacher call (docs/taxonomies.md#conversations)."""

    turns: Turns = Field(default_factory=Turns)
    system: Template | None = None  # the assistant's system prompt, kept in the example (default: system_prompt)
    user: SimulatedUser = Field(default_factory=SimulatedUser)
    user_teacher: str | None = None  # the teacher that plays the user (default: the run's; --user-teacher wins)
    persona_axis: str | None = None  # the taxonomy axis whose value is the user's persona
    end_marker: str | None = "[END]"  # the simulated user writes it when satisfied: the conversation ends there
    max_tool_rounds: int = Field(default=4, ge=1, le=20)  # assistant replies with calls, per user turn
    tool_timeout_s: float = Field(default=10.0, gt=0, le=600)
    # A result longer than this is cut, saying so, before it enters the conversation: a tool that returns a whole
    # table would otherwise fill the assistant's context and every later turn's prompt (and bill).
    max_tool_result_chars: int = Field(default=8000, ge=200, le=1_000_000)
    tools: list[ToolSpec] = Field(default_factory=list)

    @field_validator("tools")
    @classmethod
    def _distinct(cls, tools: list[ToolSpec]) -> list[ToolSpec]:
        names = [tool.name for tool in tools]
        if len(set(names)) != len(names):
            raise ValueError(f"tool names must differ: {names}")
        return tools


class TaskSpec(Strict):
    name: str
    description: str = ""
    # required: the taxonomy gives `labels:`, crossed with every leaf as the axis `label`.
    labels: Literal["none", "required"] = "none"
    label_field: str = "label"  # labels: the output field whose values are the taxonomy's labels
    seed: dict[str, SeedField] = Field(min_length=1)  # a seed line's fields besides `id` and `axes`
    # A task is either `steps` and `example` (one example from a fixed list of teacher calls) or a `conversation`.
    steps: list[Step] = Field(default_factory=list)
    example: ExampleSpec | None = None
    conversation: ConversationSpec | None = None
    output_schema: dict[str, Any] | str | None = None
    checks: list[CheckSpec] = Field(default_factory=list)
    # General curation checks that do not fit this task, by name (e.g. repeats_question for a task whose
    # answer restates its input); `distill curate --help` lists them.
    skip_checks: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _task_name(cls, name: str) -> str:
        if not NAME_RE.match(name):
            raise ValueError("use lowercase letters, digits, '-' and '_'")
        return name

    @field_validator("seed")
    @classmethod
    def _seed_fields(cls, fields: dict[str, SeedField]) -> dict[str, SeedField]:
        for name in fields:
            if name in ("id", "axes"):
                raise ValueError(f"`{name}` is part of every seed; declare only the task's own fields")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"seed field {name!r}: use letters, digits and '_' (templates read seed.{name})")
        return fields

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        if self.conversation is not None and (self.steps or self.example is not None):
            raise ValueError("a task has either `conversation:` or `steps:` and `example:`, not both")
        if self.conversation is None and not self.steps:
            raise ValueError("a task needs `steps:` (at least one) and `example:`, or a `conversation:`")
        if self.conversation is None and self.example is None:
            raise ValueError("a task with `steps:` needs an `example:` (the messages of the training example)")
        names = [step.name for step in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"step names must differ: {names}")
        types = {f.type for f in self.seed.values()}
        if "output" in types and self.output_schema is None:
            raise ValueError("a seed field of type `output` needs the task's `output_schema`")
        if "label" in types and self.labels != "required":
            raise ValueError("a seed field of type `label` needs `labels: required`")
        if self.example is not None and self.example.output is not None and self.output_schema is None:
            raise ValueError("`example.output` needs an `output_schema` to validate it")
        return self
