"""The one engine every task runs on: a `TaskSpec` compiled once a taxonomy, then run for each plan item.

`Task.run` renders each step's prompts, awaits `call(step, request)` (which the runner answers from the
run store or the teacher), parses the reply, and builds the training example from the steps' outputs;
whatever does not parse raises `Rejected` with a reason.

What templates see, for the plan item: `taxonomy`, `system_prompt`, `topic` (title, description,
parents, path, context), `axes` (name, value, description each), `item` (id, path, axes), `seeds` (the
item's few-shot seeds), `context` (the leaf's grounding document, when it has one), `label` and
`label_description` (labelled tasks), `generation`, `passage` (with `distill generate --documents`: one chunk of
the user's documents attached to the leaf, with its text, file, page and headings; else None; its text is also
the `context` of a leaf that has none of its own) and `steps` (the outputs of the steps before).
A few-shot `request` turn is the step's prompt rendered for the seed instead: its own node, axes,
label and context (its `context` field, when it has one), and no `steps`. Shot templates see `seed`.
Example message templates also see `output`, the validated structured output.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from distill.check_names import unknown_checks
from distill.errors import DistillError
from distill.records import Example, ExampleMeta, Message, PlanItem, SamplingParams, Usage
from distill.tasks.checks import TaskCheck, compile_check
from distill.tasks.code import check_reference, load
from distill.tasks.parse import Rejected, extract_json, extract_question, normalize_question, usable_text
from distill.tasks.schema import DeferredSchema, OutputSchema, SchemaError, load_schema, model_schema, stand_in
from distill.tasks.spec import SamplingBounds, SeedField, Step, TaskError, TaskSpec
from distill.tasks.templates import Compiled, Expression, TemplateRefused, environment, search_path
from distill.teachers.base import GenerationRequest, GenerationResult

Call = Callable[[str, GenerationRequest], Awaitable[GenerationResult]]


class Seed(BaseModel):
    """A seed line: `id`, `axes`, and the task's own fields (a model is made from the task's `seed:`)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    axes: dict[str, str] = Field(default_factory=dict)



def seed_text(seed: BaseModel) -> str:
    """A seed's first text field: what a person is shown of it (the review card)."""
    for name, value in seed:
        if name not in ("id", "axes") and isinstance(value, str) and value:
            return value
    return ""


_TYPES: dict[str, Any] = {"text": str, "string": str, "integer": int, "number": float, "boolean": bool,
                          "list": list, "object": dict[str, Any], "label": str, "output": Any, "any": Any}


def seed_model(spec: TaskSpec) -> type[Seed]:
    fields: dict[str, Any] = {}
    for name, declared in spec.seed.items():
        kind = _TYPES[declared.type]
        info = Field(min_length=1) if declared.type == "text" else Field()
        if declared.optional:
            fields[name] = (kind | None, Field(default=None, min_length=1) if declared.type == "text" else Field(default=None))
        else:
            fields[name] = (kind, info)
    return create_model(f"{spec.name.replace('-', '_')}_seed", __base__=Seed, **fields)


@dataclass
class CompiledStep:
    spec: Step
    system: Compiled | None
    prompt: Compiled
    shot_user: Compiled | None  # None: the `request` form
    shot_assistant: Compiled | None
    shot_count: int | None
    schema: OutputSchema | None
    sampling: dict[str, Any]  # SamplingParams fields besides the seed

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class Task:
    """A task bound to a taxonomy: templates compiled against its folders, labels applied, checks loaded."""

    spec: TaskSpec
    seed_model: type[Seed]
    steps: list[CompiledStep]
    messages: list[tuple[str, Compiled]]
    output: Expression | dict[str, Expression] | None
    output_schema: OutputSchema | None
    checks: list[TaskCheck]
    labels: dict[str, str] = field(default_factory=dict)
    code_loaded: bool = True  # False: its Python files were checked, not imported (distill.tasks.code)
    # Renders that depend only on a seed (and the leaf and the item's axis names), shared by every
    # plan item that shows the seed the same way (rendering was ~7% of a request's CPU).
    rendered: dict[tuple, str] = field(default_factory=dict, repr=False)
    _avoid: dict[tuple, set[str]] = field(default_factory=dict, repr=False)
    _topics: dict[str, dict] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def seed_fields(self) -> dict[str, SeedField]:
        return self.spec.seed

    def label_seed_field(self) -> str | None:
        return next((name for name, f in self.spec.seed.items() if f.type == "label"), None)

    async def run(self, loaded, item: PlanItem, teacher_spec: str, call: Call) -> Example:
        """One plan item through every step: the training example, or `Rejected` with a reason."""
        leaf = loaded.leaf(item.node_path)
        seeds = self.choose_seeds(loaded, item, leaf)
        context = self.item_context(loaded, item, leaf, seeds)
        outputs: dict[str, Any] = {}
        context["steps"] = outputs
        base_sampling = self.sampling(loaded, item)
        usage: Usage | None = None
        first_prompt: str | None = None
        repaired: list[bool] = []
        raw = ""
        for step in self.steps:
            messages: list[Message] = []
            if step.system is not None:
                messages.append(Message(role="system", content=step.system.render(context)))
            messages += self.shots(loaded, step, item, leaf, seeds)
            prompt = step.prompt.render(context)
            messages.append(Message(role="user", content=prompt))
            first_prompt = prompt if first_prompt is None else first_prompt
            sampling = base_sampling if not step.sampling else base_sampling.model_copy(update=step.sampling)
            request = GenerationRequest(key=f"{item.id}:{step.name}", messages=messages, sampling=sampling,
                                        json_schema=step.schema.json_schema if step.schema else None)
            result = await call(step.name, request)
            usage = result.usage if usage is None else usage + result.usage
            outputs[step.name], raw, fixed = self.parse(step, result, leaf)
            if fixed is not None:
                repaired.append(fixed)
        output = self.build_output(context, raw)
        if output is not None:
            context["output"] = output
        extra: dict[str, Any] = {"json_repaired": any(repaired)} if repaired else {}
        if context["passage"] is not None:  # where the example's knowledge came from: file, page, span, sha256
            extra["source"] = {k: v for k, v in context["passage"].items() if k != "text"}
        return Example(
            id=item.id,
            messages=[Message(role=role, content=template.render(context, strip=False))
                      for role, template in self.messages],
            meta=ExampleMeta(
                taxonomy=loaded.name, taxonomy_path=item.node_path, axes=item.axes, seed_ids=[s.id for s in seeds],
                teacher=teacher_spec, prompt_sha256=hashlib.sha256((first_prompt or "").encode()).hexdigest(),
                sampling=base_sampling, usage=usage, plan_item_id=item.id, task=self.name, **extra),
            output=output,
        )

    def close(self) -> None:
        """Let go of what running items started (a conversation's tool process); the task may run again."""

    def check_code(self) -> None:
        """Before a run's first teacher call: import the Python the task runs apart from this process (a
        conversation's tools), so a broken file is one line now rather than an error in every example."""

    # -- the pieces of a run -------------------------------------------------------------------------

    def choose_seeds(self, loaded, item: PlanItem, leaf) -> list[Seed]:
        """Few-shot seeds from the leaf and its ancestors: those sharing the item's axes first, then at random."""
        k = loaded.taxonomy.generation.seeds_per_prompt
        pool = list(leaf.seeds)
        rng = random.Random(item.id)
        rng.shuffle(pool)
        pool.sort(key=lambda s: -sum(s.axes.get(a) == v for a, v in item.axes.items()))
        return pool[:k]

    def sampling(self, loaded, item: PlanItem) -> SamplingParams:
        gen = loaded.taxonomy.generation
        return SamplingParams(temperature=gen.temperature, top_p=gen.top_p, max_tokens=gen.max_tokens,
                              seed=int(item.id[:8], 16))

    def topic(self, node) -> dict[str, Any]:
        """What templates see of a node; built once a node (templates never change it)."""
        topic = self._topics.get(node.path)
        if topic is None:
            topic = self._topics[node.path] = {
                "title": _title(node.path.rsplit("/", 1)[-1]),
                "description": node.node.description,
                "parents": [_title(a.path.rsplit("/", 1)[-1]) for a in node.ancestors],
                "path": node.path,
                "context": node.context,
            }
        return topic

    def base_context(self, loaded, node, axes: dict[str, str], seeds: list) -> dict[str, Any]:
        defined = loaded.crossed_axes
        taxonomy = loaded.taxonomy
        return {
            "taxonomy": taxonomy,
            "topic": self.topic(node),
            "axes": [
                {"name": name, "value": value, "description": defined[name].description if name in defined else None}
                for name, value in axes.items()
            ],
            "seeds": seeds,
            "system_prompt": taxonomy.system_prompt,
            "generation": taxonomy.generation,
            "context": node.context,
            "passage": None,
        }

    def item_context(self, loaded, item: PlanItem, leaf, seeds: list[Seed]) -> dict[str, Any]:
        context = self.base_context(loaded, leaf, item.axes, seeds)
        context["item"] = {"id": item.id, "path": item.node_path, "axes": item.axes}
        context["passage"] = self.passage(loaded, item)
        if context["passage"] is not None and context["context"] is None:
            # A task that reads `context` (grounded-qa) keeps the passage in the student's prompt: open-book.
            # A node's own context, written by hand, wins.
            context["context"] = context["passage"]["text"]
        if self.labels:
            label = item.axes["label"]
            context["label"], context["label_description"] = label, self.labels[label]
        return context

    def passage(self, loaded, item: PlanItem) -> dict[str, Any] | None:
        """The leaf's passage for this item: its attached chunks taken in turn by the item's index among the
        leaf's items, so a leaf's items spread over its passages and a resumed run picks the same one."""
        passages = loaded.passages.get(item.node_path) or []
        return passages[item.index % len(passages)] if passages else None

    def seed_context(self, loaded, item: PlanItem, leaf, seed: Seed) -> dict[str, Any]:
        """What a step's prompt sees when it is rendered as the seed's own request, for a few-shot turn."""
        origin = leaf.seed_origin(seed)
        axes = {a: v for a, v in seed.axes.items() if a in item.axes}
        context = self.base_context(loaded, origin, axes, [])
        context["item"] = {"id": seed.id, "path": origin.path, "axes": axes}
        context["steps"] = {}
        own = getattr(seed, "context", None)
        if isinstance(own, str) and own:
            context["context"] = own
        label_field = self.label_seed_field()
        if self.labels and label_field:
            label = getattr(seed, label_field)
            context["label"], context["label_description"] = label, self.labels.get(label, "")
        return context

    def shots(self, loaded, step: CompiledStep, item: PlanItem, leaf, seeds: list[Seed]) -> list[Message]:
        if step.shot_assistant is None:
            return []
        chosen = seeds if step.shot_count is None else seeds[: step.shot_count]
        turns: list[Message] = []
        for seed in chosen:
            if step.shot_user is None:
                # Depends on the leaf, the seed and the item's axis names only: rendered once for all the
                # items that share them, not once an item.
                key = (step.name, "request", leaf.path, id(seed), tuple(item.axes))
                user = self.rendered.get(key)
                if user is None:
                    try:
                        user = step.prompt.render(self.seed_context(loaded, item, leaf, seed))
                    except TemplateRefused:
                        raise
                    except DistillError as exc:
                        raise DistillError(f"{exc} (while rendering seed {seed.id!r}'s own request, a few-shot turn: "
                                           "give the seed what the prompt reads, e.g. its axes, or set the step's "
                                           "shots.user)") from None
                    self.rendered[key] = user
            else:
                user = self._seed_render(loaded, step.name, "user", step.shot_user, seed)
            turns += [Message(role="user", content=user),
                      Message(role="assistant", content=self._seed_render(loaded, step.name, "assistant",
                                                                          step.shot_assistant, seed))]
        return turns

    def _seed_render(self, loaded, step: str, role: str, template: Compiled, seed: Seed) -> str:
        key = (step, role, id(seed))
        text = self.rendered.get(key)
        if text is None:
            text = self.rendered[key] = template.render(
                {"seed": seed, "taxonomy": loaded.taxonomy, "system_prompt": loaded.taxonomy.system_prompt,
                 "labels": self.labels}, strip=False)
        return text

    def parse(self, step: CompiledStep, result: GenerationResult, leaf) -> tuple[Any, str, bool | None]:
        """(the step's output, the raw text, whether JSON needed repair, None for text)."""
        spec = step.spec
        if spec.output == "json":
            raw = usable_text(result, step.name)
            value, repaired = extract_json(raw)
            if step.schema is not None:
                try:
                    value = step.schema.validate(value)
                except SchemaError as err:
                    raise Rejected("schema_invalid", f"{err.where}: {err.message}", raw) from None
            return value, raw, repaired
        if spec.accept_truncated and result.finish_reason == "length" and result.text:
            text = result.text
        else:
            text = usable_text(result, step.name)
        if spec.extract == "question":
            text = extract_question(text, avoid=self.avoid(leaf, spec.avoid_seed_field))
        return text, text, None

    def avoid(self, leaf, field_name: str | None) -> set[str]:
        if not field_name:
            return set()
        key = (leaf.path, field_name)
        known = self._avoid.get(key)
        if known is None:
            known = self._avoid[key] = {normalize_question(str(getattr(s, field_name, "") or "")) for s in leaf.seeds}
        return known

    def build_output(self, context: dict[str, Any], raw: str) -> Any:
        if self.output is None:
            return None
        if isinstance(self.output, dict):
            value = {name: expression.evaluate(context) for name, expression in self.output.items()}
        else:
            value = self.output.evaluate(context)
        assert self.output_schema is not None  # TaskSpec: an `example.output` needs an output_schema
        try:
            return self.output_schema.validate(value)
        except SchemaError as err:
            raise Rejected("schema_invalid", f"{err.where}: {err.message}", raw) from None

    def stand_in_answer(self, step_name: str) -> str:
        """A reply every parser of this step accepts: for rehearsals and estimates, never sent. A step whose
        schema is a model not imported has no known shape: `Rejected`, the rehearsal stops there."""
        step = next(s for s in self.steps if s.name == step_name)
        if step.schema is not None and step.schema.deferred:
            raise Rejected("not_rehearsed", f"step {step_name}'s schema {step.schema.name} is Python, imported only "
                           "when generating")
        if step.spec.output == "json":
            return json.dumps(stand_in(step.schema.json_schema) if step.schema else {"value": "rehearsal"})
        return "What should a person check first when this problem starts?"


def _title(name: str) -> str:
    return name.replace("-", " ").replace("_", " ").capitalize()


def compile_task(spec: TaskSpec, task_dir: Path | None, taxonomy_file: Path | None,
                 labels: dict[str, str] | None, generation: Any,
                 locate: Callable[[tuple], str] | None = None, *, code_root: Path | None = None,
                 code: bool = True) -> Task:
    """Bind a task to a taxonomy: compile its templates against the taxonomy's folders, apply the labels and
    its `generation:` settings, load its schemas and checks. A mistake in the task raises TaskError naming
    the field (the caller turns it into file:line), one in a template file DistillError naming that file.

    Python files the task names must lie in `code_root` (None: anywhere, and `package.module:name` too: a
    built-in or plugin task) and are imported only with `code`; without it they are checked by reading."""
    taxonomy_dir = taxonomy_file.resolve().parent if taxonomy_file is not None else None
    base = task_dir or taxonomy_dir

    def schema_of(source: Any, loc: tuple) -> OutputSchema:
        return _schema(source, loc, base, code_root, code)

    env = environment(search_path(task_dir, taxonomy_dir))
    # Inline templates and expressions are named in run-time errors by where they are written (file:line).
    locate = locate or (lambda loc: "task." + ".".join(map(str, loc)))

    def template(source: Any, loc: tuple) -> Compiled:
        return Compiled(env, source, loc, locate(loc))

    def expression(source: str, loc: tuple) -> Expression:
        return Expression(env, source, loc, locate(loc))

    steps = []
    for number, step in enumerate(spec.steps):
        at = ("steps", number)
        shots = step.shots
        schema = None
        if step.schema_ is not None:
            schema = schema_of(step.schema_, (*at, "schema"))
        overrides = _sampling(env, step, generation, (*at, "sampling"))
        steps.append(CompiledStep(
            spec=step,
            system=template(step.system, (*at, "system")) if step.system is not None else None,
            prompt=template(step.prompt, (*at, "prompt")),
            shot_user=None if shots is None or shots.user == "request" else template(shots.user, (*at, "shots", "user")),
            shot_assistant=template(shots.assistant, (*at, "shots", "assistant")) if shots is not None else None,
            shot_count=shots.count if shots is not None else None,
            schema=schema,
            sampling=overrides,
        ))
    output_schema = schema_of(spec.output_schema, ("output_schema",)) if spec.output_schema is not None else None
    if output_schema is not None and spec.labels == "required" and labels:
        output_schema = output_schema.with_labels(spec.label_field, tuple(labels))
    output: Expression | dict[str, Expression] | None = None
    example = spec.example  # None for a conversation (distill.tasks.conversation builds on what this compiles)
    if example is not None and isinstance(example.output, dict):
        output = {name: expression(source, ("example", "output", name))
                  for name, source in example.output.items()}
    elif example is not None and isinstance(example.output, str):
        output = expression(example.output, ("example", "output"))
    if message := unknown_checks(spec.skip_checks):
        raise TaskError(("skip_checks",), message)
    checks = []
    for number, check in enumerate(spec.checks):
        try:
            checks.append(compile_check(check, list(labels or {}) or None, base, code_root, code))
        except ValueError as exc:
            raise TaskError(("checks", number), str(exc)) from None
    return Task(
        spec=spec, seed_model=seed_model(spec), steps=steps,
        messages=[(m.role, template(m.content, ("example", "messages", n, "content")))
                  for n, m in enumerate(example.messages if example is not None else [])],
        output=output, output_schema=output_schema, checks=checks, labels=dict(labels or {}), code_loaded=code,
    )


def _schema(source: Any, where: tuple, base: Path | None, root: Path | None, code: bool) -> OutputSchema:
    """Inline JSON Schema, a model of a built-in or plugin task (installed code: imported), or a model in a
    file of the taxonomy's (imported only with `code`)."""
    try:
        if isinstance(source, dict):
            return load_schema(source)
        ref = check_reference(source, "class", base, root)
        if ref.file is not None and not code:
            return DeferredSchema(source)
        return model_schema(load(ref), source)
    except ValueError as exc:
        raise TaskError(where, str(exc)) from None


def _sampling(env, step: Step, generation: Any, where: tuple) -> dict[str, Any]:
    """A step's sampling overrides as numbers: an expression is read against the taxonomy's `generation:`."""
    values = {}
    for name, value in step.sampling.model_dump(exclude_none=True).items():
        if isinstance(value, str):
            try:
                value = Expression(env, value, (*where, name)).evaluate({"generation": generation})
            except DistillError as exc:
                raise TaskError((*where, name), str(exc).partition(": ")[2] or str(exc)) from None
        values[name] = value
    try:
        checked = SamplingBounds.model_validate(values)  # an expression's value meets the bounds a number does
    except ValidationError as exc:
        err = exc.errors()[0]
        raise TaskError((*where, err["loc"][0]), f"{err['msg']} (got {err.get('input')!r})") from None
    return {name: getattr(checked, name) for name in values}
