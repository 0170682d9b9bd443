"""Task kinds: how a plan item becomes teacher requests, and the answers become an `Example`.

A task is one async function: it renders prompts, awaits `ctx.call(step, request)` (which the
runner answers from the run store or the teacher), and returns an Example or raises `Rejected`.
"""

from __future__ import annotations

import hashlib
import json
import random
from functools import lru_cache
from pathlib import Path
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field, create_model

from distill.generate.parse import Rejected, normalize_question, extract_json, extract_question, usable_text, validate
from distill.generate.prompts import render
from distill.records import Example, ExampleMeta, Message, PlanItem, SamplingParams, Usage
from distill.taxonomy.load import LoadedTaxonomy, TreeNode
from distill.taxonomy.model import ClassificationSeed, QASeed, Seed
from distill.teachers.base import GenerationRequest, GenerationResult

Call = Callable[[str, GenerationRequest], Awaitable[GenerationResult]]


@dataclass
class ItemContext:
    loaded: LoadedTaxonomy
    item: PlanItem
    leaf: TreeNode
    teacher_spec: str
    call: Call

    @property
    def taxonomy(self):
        return self.loaded.taxonomy

    def seeds(self) -> list[Seed]:
        """Few-shot seeds from the leaf and its ancestors: those sharing the item's axes first, then at random."""
        k = self.taxonomy.generation.seeds_per_prompt
        pool = list(self.leaf.seeds)
        rng = random.Random(self.item.id)
        rng.shuffle(pool)
        pool.sort(key=lambda s: -sum(s.axes.get(a) == v for a, v in self.item.axes.items()))
        return pool[:k]

    def sampling(self, max_tokens: int | None = None) -> SamplingParams:
        gen = self.taxonomy.generation
        return SamplingParams(
            temperature=gen.temperature,
            top_p=gen.top_p,
            max_tokens=max_tokens or gen.max_tokens,
            seed=int(self.item.id[:8], 16),
        )

    def template_context(self, seeds: list[Seed], node: TreeNode | None = None,
                         axes: dict[str, str] | None = None) -> dict:
        """What templates see; `node` and `axes` default to the plan item's (a seed's own for few-shot turns)."""
        node = node or self.leaf
        defined = self.loaded.crossed_axes
        values = self.item.axes if axes is None else axes
        return {
            "taxonomy": self.taxonomy,
            "topic": {
                "title": _title(node.path.rsplit("/", 1)[-1]),
                "description": node.node.description,
                "parents": [_title(a.path.rsplit("/", 1)[-1]) for a in node.ancestors],
            },
            "axes": [
                {"name": name, "value": value, "description": defined[name].description if name in defined else None}
                for name, value in values.items()
            ],
            "seeds": seeds,
            "system_prompt": self.taxonomy.system_prompt,
        }

    async def ask(self, step: str, messages: list[Message], max_tokens: int | None = None,
                  json_schema: dict | None = None) -> GenerationResult:
        """One teacher call for this item's `step`, under the taxonomy's sampling settings."""
        request = GenerationRequest(key=f"{self.item.id}:{step}", messages=messages,
                                    sampling=self.sampling(max_tokens), json_schema=json_schema)
        return await self.call(step, request)

    def seed_prompt(self, template: str, seed: Seed, **extra: str) -> str:
        """A seed's own request, the user half of a few-shot turn.

        It depends on the leaf, the seed and the item's axis names only, so it is rendered once for
        all the items that share them, not once an item (rendering was ~7% of a request's CPU).
        """
        key = (template, self.leaf.path, id(seed), tuple(self.item.axes), tuple(extra.items()))
        text = self.loaded.rendered.get(key)
        if text is None:
            text = self.loaded.rendered[key] = self.render(template, **self.seed_context(seed), **extra)
        return text

    def seed_context(self, seed: Seed) -> dict:
        """What a template sees when it renders a seed's own request, for a few-shot chat turn."""
        return self.template_context([], node=self.leaf.seed_origin(seed),
                                     axes={a: v for a, v in seed.axes.items() if a in self.item.axes})

    def meta(self, seeds: list[Seed], prompt: str, usage: Usage, **extra) -> ExampleMeta:
        return ExampleMeta(
            taxonomy=self.loaded.name,
            taxonomy_path=self.item.node_path,
            axes=self.item.axes,
            seed_ids=[s.id for s in seeds],
            teacher=self.teacher_spec,
            prompt_sha256=hashlib.sha256(prompt.encode()).hexdigest(),
            sampling=self.sampling(),
            usage=usage,
            plan_item_id=self.item.id,
            task=self.taxonomy.task,
            **extra,
        )

    def render(self, name: str, **context) -> str:
        return render(_folder(self.loaded.file), name, **context)


@lru_cache(maxsize=8)
def _folder(file: Path) -> Path:
    return file.resolve().parent  # resolve() is a syscall a path component: once a taxonomy, not once an item


def _instruction_text(result: GenerationResult) -> str:
    # A question is short: a reply cut at max_tokens often still holds a complete one.
    if result.finish_reason == "length" and result.text:
        return result.text
    return usable_text(result, "instruction")


def _title(name: str) -> str:
    return name.replace("-", " ").replace("_", " ").capitalize()


async def generate_qa(ctx: ItemContext) -> Example:
    """Two steps: the teacher writes a question, then answers it as the student should."""
    seeds = [s for s in ctx.seeds() if isinstance(s, QASeed)]
    context = ctx.template_context(seeds)
    # Few-shot as chat turns: each seed's own request (its topic and axes), answered by the seed.
    # Small teachers follow turns far better than examples listed inside one prompt.
    shots = []
    for seed in seeds:
        shots += [Message(role="user", content=ctx.seed_prompt("qa_instruction.j2", seed)),
                  Message(role="assistant", content=seed.question)]
    instruction_prompt = ctx.render("qa_instruction.j2", **context)
    asked = await ctx.ask(
        "instruction",
        [Message(role="system", content=ctx.render("qa_instruction_system.j2", **context)), *shots,
         Message(role="user", content=instruction_prompt)],
        max_tokens=ctx.taxonomy.generation.instruction_max_tokens,
    )
    question = extract_question(_instruction_text(asked), avoid={normalize_question(s.question) for s in ctx.leaf.seeds})

    # Seeds become earlier turns, so the answer takes their length and care; the training example
    # itself keeps only the taxonomy's system prompt, the question and the answer.
    shots = [m for s in seeds[:2] for m in (Message(role="user", content=s.question),
                                             Message(role="assistant", content=s.answer))]
    answered = await ctx.ask(
        "response",
        [Message(role="system", content=ctx.render("qa_response.j2", **context)), *shots,
         Message(role="user", content=question)],
    )
    answer = usable_text(answered, "response")
    return Example(
        id=ctx.item.id,
        messages=[
            Message(role="system", content=ctx.taxonomy.system_prompt),
            Message(role="user", content=question),
            Message(role="assistant", content=answer),
        ],
        meta=ctx.meta(seeds, instruction_prompt, asked.usage + answered.usage),
    )


class TicketDraft(BaseModel):
    """What the teacher writes for a classification item; the label comes from the plan."""

    text: str = Field(min_length=12)
    rationale: str = Field(min_length=8)


# Built once: model_json_schema() walks the model on every call (~0.4 ms, a sixth of a request's CPU).
# Shared by every request, so never mutated.
TICKET_DRAFT_SCHEMA = TicketDraft.model_json_schema()


def classification_schema(labels: list[str] | tuple[str, ...]) -> type[BaseModel]:
    """The student's output for a classification task: a label from the set and a rationale."""
    return _classification_schema(tuple(labels))


@lru_cache(maxsize=32)
def _classification_schema(labels: tuple[str, ...]) -> type[BaseModel]:
    # create_model costs ~1 ms; every item of a run shares the same label set.
    return create_model(
        "ClassificationOutput",
        label=(Literal[labels], ...),
        rationale=(str, Field(min_length=1)),
    )


async def generate_classification(ctx: ItemContext) -> Example:
    seeds = [s for s in ctx.seeds() if isinstance(s, ClassificationSeed)]
    label = ctx.item.axes["label"]
    labels = ctx.taxonomy.labels or {}
    # Few-shot as chat turns, as for QA: each seed's own request (its topic, label and axes) answered
    # by the seed as JSON. Listed inside one prompt, the embedded teacher kept 0 of 4 fixture items
    # (no rationale, no JSON, refusals); as turns it copies the shape.
    shots = []
    for seed in seeds:
        shots += [Message(role="user", content=ctx.seed_prompt("classification.j2", seed, label=seed.label,
                                                               label_description=labels.get(seed.label, ""))),
                  Message(role="assistant", content=json.dumps({"text": seed.text, "rationale": seed.rationale},
                                                               ensure_ascii=False))]
    prompt = ctx.render("classification.j2", **ctx.template_context(seeds), label=label,
                        label_description=labels[label])
    result = await ctx.ask("draft", [*shots, Message(role="user", content=prompt)], json_schema=TICKET_DRAFT_SCHEMA)
    raw = usable_text(result, "draft")
    value, repaired = extract_json(raw)
    draft = validate(TicketDraft, value, raw)
    output = validate(classification_schema(list(labels)), {"label": label, "rationale": draft.rationale}, raw)
    return Example(
        id=ctx.item.id,
        messages=[
            Message(role="system", content=ctx.taxonomy.system_prompt),
            Message(role="user", content=draft.text),
            Message(role="assistant", content=json.dumps(output.model_dump(), ensure_ascii=False)),
        ],
        meta=ctx.meta(seeds, prompt, result.usage, json_repaired=repaired),
        output=output.model_dump(),
    )


TASKS: dict[str, Callable[[ItemContext], Awaitable[Example]]] = {
    "qa": generate_qa,
    "classification": generate_classification,
}

__all__ = ["TASKS", "ItemContext", "Rejected", "classification_schema"]
