"""Typed records that flow between stages.

Every stage takes and returns these pydantic models; `dataset.jsonl` holds `Example`s and
`rejected.jsonl` holds `Reject`s, one JSON object a line.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)

from distill.errors import DistillError
from distill.userfiles import text_lines

# "tool": a tool's answer in a multi-turn conversation (OpenAI's role; ShareGPT's tool/function turns)
Role = Literal["system", "user", "assistant", "tool"]


_ALWAYS = ("role", "content")


def _drop_unset_tools(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("tools") is None:
        data.pop("tools", None)
    return data


class ToolFunction(BaseModel):
    """What a tool call asks for: the tool's name and its arguments."""

    name: str
    # A JSON object, as transformers' chat templates and TRL take it. A teacher's arguments that are not one
    # (bad JSON, a list) are kept as the text it wrote, so the check that rejects them can say what was wrong.
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class ToolCall(BaseModel):
    """One call an assistant turn makes, in the shape OpenAI's API, transformers' templates and TRL share."""

    id: str = ""  # pairs the call with the tool message that answers it (`Message.tool_call_id`)
    type: Literal["function"] = "function"
    function: ToolFunction


class Message(BaseModel):
    """One turn. Besides role and content, an assistant turn may call tools and carry the teacher's reasoning;
    a tool turn names the call it answers. Fields left None are not written, so single-turn data reads and
    writes as it always did."""

    role: Role
    content: str
    tool_calls: list[ToolCall] | None = None  # assistant: the calls this turn makes (content may be "")
    tool_call_id: str | None = None  # tool: the call this result answers
    name: str | None = None  # tool: the tool that answered
    reasoning: str | None = None  # assistant: the teacher's reasoning, kept apart from the answer

    @model_serializer(mode="wrap")
    def _leave_out_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A plain turn is written as {"role", "content"} everywhere (run.db, datasets, fingerprints, Parquet),
        # as it was before turns could call tools: earlier runs, caches and exports stay byte for byte the same.
        data = handler(self)
        return {key: value for key, value in data.items() if value is not None or key in _ALWAYS}


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None

    def __add__(self, other: Usage) -> Usage:
        cost = None
        if self.cost_usd is not None or other.cost_usd is not None:
            cost = (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=cost,
        )


class SamplingParams(BaseModel):
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 384
    # Part of the cache key: two plan items with the same prompt still get two samples.
    seed: int | None = None


class GenerationRequest(BaseModel):
    key: str  # the caller's name for this request, echoed back in the result
    messages: list[Message]
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    json_schema: dict[str, Any] | None = None  # ask for structured output where the backend can
    # Tools the model may call, as OpenAI-style definitions ({"type": "function", "function": {"name",
    # "description", "parameters"}}); API teachers send them natively, in-process ones through the chat template.
    tools: list[dict[str, Any]] | None = None

    # The fingerprint's JSON less its teacher part, kept with the field objects it was made from (held,
    # so their ids cannot be reused; compared by identity): the runner and the response cache both
    # fingerprint each request under different teacher names, and encoding the messages (few-shot
    # turns included) is most of the cost. Requests are never changed in place once built.
    _content: tuple[Any, Any, Any, Any, str] | None = PrivateAttr(default=None)

    def fingerprint(self, teacher_spec: str) -> str:
        """Content address of everything that changes the answer (not the key).

        The sha256 of `json.dumps({"teacher", "messages", "sampling", "schema"}, sort_keys=True)`, with
        "tools" when there are any; "teacher" sorts last, so the rest is encoded once and the teacher appended.
        Messages leave out their unset fields (`Message`) and requests without tools leave out "tools": a single-turn
        request has the fingerprint it had before tool calls existed, so earlier runs and caches stay valid.
        """
        # (reading `self._content` goes through pydantic's __getattr__); a model with private attributes has the dict
        private = cast(dict[str, Any], self.__pydantic_private__)
        known = private["_content"]
        if known is None or known[0] is not self.messages or known[1] is not self.sampling \
                or known[2] is not self.json_schema or known[3] is not self.tools:  # unset, or a model_copy made it stale
            fields: dict[str, Any] = {"messages": [m.model_dump() for m in self.messages],
                                      "sampling": self.sampling.model_dump(), "schema": self.json_schema}
            if self.tools is not None:
                fields["tools"] = self.tools
            content = json.dumps(fields, sort_keys=True)
            known = private["_content"] = (self.messages, self.sampling, self.json_schema, self.tools, content[:-1])
        payload = f'{known[4]}, "teacher": {json.dumps(teacher_spec)}}}'
        return hashlib.sha256(payload.encode()).hexdigest()

    # Without tools, written (run.db's teacher_calls, a Ray worker's record) as it was before requests had them.
    _without_unset_tools = model_serializer(mode="wrap")(lambda self, handler: _drop_unset_tools(handler(self)))

    def __eq__(self, other: object) -> bool:
        # pydantic compares private attributes too: a fingerprinted request would differ from its twin.
        if not isinstance(other, GenerationRequest):
            return NotImplemented
        return (self.key, self.messages, self.sampling, self.json_schema, self.tools) == \
            (other.key, other.messages, other.sampling, other.json_schema, other.tools)


class GenerationResult(BaseModel):
    key: str
    text: str | None = None  # None when the call failed
    finish_reason: str | None = None  # "stop", "length", "content_filter", "refusal", ...
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None  # the last error, when the call failed after its retries
    cached: bool = False  # answered from a cache: no new spend
    tool_calls: list[ToolCall] | None = None  # the calls the answer makes (`text` is then often "")
    reasoning: str | None = None  # the teacher's reasoning, where the backend returns it apart from the answer

    @field_validator("text")
    @classmethod
    def _encodable(cls, text: str | None) -> str | None:
        # A lone surrogate (JSON allows "\ud800") cannot be written as UTF-8: not to SQLite, not to a
        # pipe, not to a JSONL export. Such an answer keeps everything else, the surrogate becomes "?".
        if text is not None and not text.isascii():
            try:
                text.encode()
            except UnicodeEncodeError:
                return text.encode("utf-8", "replace").decode()
        return text

    @property
    def ok(self) -> bool:
        return self.error is None and (self.text is not None or bool(self.tool_calls))

    def extra(self) -> str | None:
        """What run.db and the response cache keep beside the text: the tool calls and the reasoning, as JSON
        (None for a plain answer)."""
        if self.tool_calls is None and self.reasoning is None:
            return None
        return self.model_dump_json(include={"tool_calls", "reasoning"}, exclude_none=True)

    def with_extra(self, extra: str | None) -> GenerationResult:
        """This result with what `extra()` wrote read back in."""
        if not extra:
            return self
        fields = json.loads(extra)
        return self.model_copy(update={
            "tool_calls": [ToolCall.model_validate(c) for c in fields["tool_calls"]] if "tool_calls" in fields else None,
            "reasoning": fields.get("reasoning")})


class PlanItem(BaseModel):
    """One unit of work: a taxonomy leaf crossed with one value per axis."""

    id: str
    node_path: str
    axes: dict[str, str]
    index: int  # position of this item among the leaf's items

    @staticmethod
    def make_id(taxonomy: str, node_path: str, axes: dict[str, str], index: int) -> str:
        # Depends only on what identifies the item, so editing another node never changes it.
        key = json.dumps([taxonomy, node_path, sorted(axes.items()), index])
        return hashlib.sha256(key.encode()).hexdigest()[:16]


NO_NODE = "(none)"  # where an example with no taxonomy path is counted


def node_chain(path: str | None) -> list[str]:
    """A taxonomy path's node and all its ancestors: "a/b/c" -> ["a", "a/b", "a/b/c"]."""
    if not path:
        return [NO_NODE]
    parts = [p for p in path.split("/") if p]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))] or [NO_NODE]


class ExampleMeta(BaseModel):
    """Provenance of an example. All optional so externally made datasets load too."""

    model_config = ConfigDict(extra="allow")

    taxonomy: str | None = None
    taxonomy_path: str | None = None
    axes: dict[str, str] = Field(default_factory=dict)
    seed_ids: list[str] = Field(default_factory=list)
    teacher: str | None = None
    prompt_sha256: str | None = None
    sampling: SamplingParams | None = None
    usage: Usage | None = None
    plan_item_id: str | None = None
    task: str | None = None


class Example(BaseModel):
    """A training example in chat form; TRL's SFTTrainer takes `messages` as it is."""

    id: str
    messages: list[Message]
    meta: ExampleMeta = Field(default_factory=ExampleMeta)
    output: dict[str, Any] | None = None  # the parsed object, for structured tasks
    # The tools the conversation could call (OpenAI-style definitions), what the student's chat template is
    # given beside `messages` when it trains; the `tools` column TRL's SFTTrainer reads.
    tools: list[dict[str, Any]] | None = None

    # Without tools, written everywhere (run.db, review, Ray batches) as it was before examples had them.
    _without_unset_tools = model_serializer(mode="wrap")(lambda self, handler: _drop_unset_tools(handler(self)))

    def turn(self, role: Role) -> str:
        """Content of the last message with this role ('' when absent)."""
        for message in reversed(self.messages):
            if message.role == role:
                return message.content
        return ""

    @property
    def prompt(self) -> str:
        return self.turn("user")

    @property
    def response(self) -> str:
        return self.turn("assistant")


class Reject(BaseModel):
    """Something that did not make it into the dataset, and why. Never dropped silently."""

    id: str  # the plan item id, or the example id for curation rejects
    stage: Literal["generate", "check", "dedup", "decontaminate", "judge", "review", "split"]
    reason: str  # a short stable code, e.g. "unparseable_json", "near_duplicate"
    detail: str  # human readable: what exactly was wrong
    example: Example | None = None  # what was rejected, when there was one
    raw: str | None = None  # the raw teacher text, when parsing failed
    node_path: str | None = None


@dataclass
class Failure:
    """A check's verdict on one example: a short stable reason code and what exactly was wrong.

    Curation turns it into a `Reject(stage="check")`; every check (built-in, a task's, a plugin's) returns one
    or None."""

    reason: str
    detail: str


Verdict = Literal["accept", "reject", "edit", "skip", "undo"]

# Why a reviewer rejects an item: stable codes (the key that picks each, on the page and in the terminal).
REVIEW_REASONS: dict[str, str] = {
    "wrong": "wrong or hallucinated",
    "unsafe": "unsafe",
    "off_topic": "off-topic",
    "format": "format",
    "duplicate": "duplicate",
    "leaked_benchmark": "leaked benchmark",
    "other": "other",
}


class Decision(BaseModel):
    """One reviewer's verdict on one queued item; append-only (an undo is a new Decision)."""

    id: int | None = None
    item_id: str
    reviewer: str
    verdict: Verdict
    reasons: list[str] = Field(default_factory=list)  # REVIEW_REASONS codes, for rejects
    note: str = ""
    messages: list[Message] | None = None  # the edited conversation (edit only), a new version
    undoes: int | None = None  # the decision an undo withdraws
    seconds: float | None = None  # time the reviewer spent on the card
    client_id: str | None = None  # makes a retried submission land once
    created_at: float | None = None


def iter_jsonl(path):
    """(line number, object) for every non-blank line; a bad line is a `DistillError` naming file and line."""
    path = Path(path)
    for number, line in text_lines(path, "JSONL file"):  # bytes that are not UTF-8: one line naming the line
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as err:
            msg = err.msg if isinstance(err, json.JSONDecodeError) else "nested too deeply"
            raise DistillError(f"not valid JSON ({msg}); each line must be one JSON object",
                               path=path, line=number) from None
        if not isinstance(row, dict):
            raise DistillError("each line must be a JSON object", path=path, line=number)
        yield number, row


def read_jsonl(path) -> list[dict[str, Any]]:
    return [row for _, row in iter_jsonl(path)]


def read_examples(path) -> list[Example]:
    """Examples of a JSONL file (a split, a dataset `distill` wrote); a malformed line is a DistillError naming
    the line. External data with other shapes goes through `distill.curate.dataset_io.load_examples`."""
    path = Path(path)
    if not path.is_file():
        raise DistillError("not found", path=path)
    examples = []
    for number, row in iter_jsonl(path):
        try:
            examples.append(Example.model_validate(row))
        except ValidationError as exc:
            raise DistillError(f"not an Example: {exc.errors()[0]['msg']}", path=path, line=number) from None
    return examples


def jsonl_line(row) -> str:
    """One JSONL line: a pydantic record without its None fields, or any JSON value."""
    if isinstance(row, BaseModel):
        return row.model_dump_json(exclude_none=True) + "\n"
    return json.dumps(row, ensure_ascii=False) + "\n"


def write_jsonl(path, rows) -> None:
    """Write atomically: a crash mid-write never leaves a half file behind. (Outputs in a folder distill
    writes go through `distill.owned.OwnedFolder.write_jsonl`, which also keeps the user's files safe.)"""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(jsonl_line(row))
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)  # a full disk or a Ctrl-C leaves the old file, not half a new one
        if isinstance(exc, OSError) and exc.filename is None:  # a failed write() names no file: say which
            exc.filename = str(path)
        raise


# The files a held-out set may be (besides a `datasets` or Hub-layout folder), by suffix: what curate/heldout.py reads.
HELDOUT_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "csv",
                    ".parquet": "parquet"}


class HeldoutSource(BaseModel):
    """A held-out evaluation set to keep out of the training data (and to evaluate on)."""

    model_config = ConfigDict(extra="forbid")

    path: str  # JSONL, CSV, Parquet, or a `datasets` save_to_disk folder
    fields: list[str] | None = None  # text fields to match; CSV without header: column numbers "0", "1"...
    format: Literal["auto", "jsonl", "csv", "parquet", "datasets", "hub"] = "auto"  # hub: a folder as the Hub lays it out
    name: str | None = None

    @field_validator("fields")
    @classmethod
    def _named_fields(cls, fields: list[str] | None) -> list[str] | None:
        # An empty list would match nothing, and the set would decontaminate against nothing without a word.
        if fields is None:
            return None
        if not fields or not all(name.strip() for name in fields):
            problem = "an empty field name" if fields else "no field names"
            raise ValueError(f"{problem}; name the text fields (question,context), or leave fields out to use the "
                             "first of question, prompt, instruction, input, text")
        return [name.strip() for name in fields]
