"""Checks a teacher decides: the label round trip for classification, and topical relevance by a judge.

The label round trip shows a teacher each generated input blind (the label set and what each label
means, never the planned label) and rejects the example (`label_mismatch`) where its answer differs
from the plan. The topic judge asks whether a question and answer belong to their taxonomy node
(`off_topic`), in place of the lexical check. Both ask for structured output (a JSON schema whose
values are an enum or a boolean), so each backend uses its own mechanism: json_schema / tool use for
APIs, constrained decoding for in-process models.

Every call is looked up in, and recorded to, a call log (run.db's `teacher_calls`) by the request's
fingerprint, exactly as generation's calls are: a re-run, or a run killed half-way, pays nothing twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

from pydantic import create_model

from distill.curate.faithfulness import passage_text
from distill.curate.topic import NodeText
from distill.records import Example, Message, SamplingParams
from distill.teachers.base import GenerationRequest, GenerationResult, Teacher

LABEL_STEP = "label_check"
TOPIC_STEP = "topic_check"
FAITHFUL_STEP = "faithful_check"
# Greedy and short: a verdict, not prose. The seed is fixed so an API's sampled answer is repeatable too.
VERDICT_SAMPLING = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=48, seed=0)

Progress = Callable[[str, int, int], None]


class CallLog(Protocol):
    """Where teacher calls are recorded and found again (`distill.store.RunStore`)."""

    def find_call(self, fingerprint: str) -> GenerationResult | None: ...

    def add_call(self, plan_item_id: str | None, step: str, teacher: str, request: GenerationRequest,
                 fingerprint: str, result: GenerationResult) -> None: ...


@dataclass
class Question:
    """One verdict to ask for: which example, which check, and the request."""

    index: int  # the example's position in the curated list
    step: str
    request: GenerationRequest
    item_id: str | None = None


class Judge:
    """A teacher for verdicts, made on first use, whose every call goes through `log`."""

    def __init__(self, spec: str, make_teacher: Callable[[], Teacher], log: CallLog):
        self.spec = spec
        self.make_teacher = make_teacher
        self.log = log
        self.asked = 0  # calls sent to the teacher (not answered from the log)
        self.found = 0  # calls answered from the log

    def ask(self, questions: list[Question], progress: Progress | None = None) -> list[GenerationResult]:
        """One result per question, in order: from the log where it holds the answer, else from the teacher."""
        if not questions:
            return []
        teacher = self.make_teacher()
        try:
            results: list[GenerationResult | None] = [None] * len(questions)
            prints = [q.request.fingerprint(teacher.spec) for q in questions]
            missing = []
            for k, (question, fingerprint) in enumerate(zip(questions, prints)):
                stored = self.log.find_call(fingerprint)
                if stored is None:
                    missing.append(k)
                else:
                    results[k] = stored.model_copy(update={"key": question.request.key})
            self.found += len(questions) - len(missing)
            if missing:
                asyncio.run(self._send(teacher, questions, prints, missing, results, progress))
        finally:
            teacher.close()
        return [r if r is not None else GenerationResult(key=q.request.key, error="not answered")
                for q, r in zip(questions, results)]

    async def _send(self, teacher: Teacher, questions: list[Question], prints: list[str], missing: list[int],
                    results: list[GenerationResult | None], progress: Progress | None) -> None:
        gate = asyncio.Semaphore(max(1, teacher.concurrency))
        size = max(1, teacher.batch_size)
        chunks = [missing[i : i + size] for i in range(0, len(missing), size)]
        done = 0

        async def send(chunk: list[int]) -> None:
            nonlocal done
            requests = [questions[k].request for k in chunk]
            async with gate:
                try:
                    answered = await teacher.generate(requests)
                except Exception as exc:  # a broken backend fails these verdicts; the stats say so
                    answered = [GenerationResult(key=r.key, error=f"{type(exc).__name__}: {exc}") for r in requests]
            for k, result in zip(chunk, answered):
                question = questions[k]
                self.log.add_call(question.item_id, question.step, teacher.spec, question.request, prints[k], result)
                results[k] = result
            self.asked += len(chunk)
            done += len(chunk)
            if progress:
                progress("judge", done, len(missing))

        try:
            await asyncio.gather(*(send(chunk) for chunk in chunks))
        finally:
            await teacher.aclose()  # async HTTP clients close inside the loop that owns them


# The label round trip


def label_schema(labels: list[str]) -> dict:
    """{"label": one of the labels}: the enum every backend can enforce."""
    return create_model("LabelVerdict", label=(cast(Any, Literal[tuple(labels)]), ...)).model_json_schema()


@dataclass
class LabelTask:
    """What the blind classifier is shown: the labels and their meanings, the task's own instructions
    (a taxonomy's system prompt), and labelled seeds as earlier chat turns."""

    labels: dict[str, str]  # label -> when it applies ("" when unknown)
    instructions: str | None = None
    shots: list[tuple[str, str]] = field(default_factory=list)  # (text, label)


def label_request(example: Example, task: LabelTask) -> GenerationRequest:
    """Classify the example's input blind: the label set and their meanings, never the planned label.

    Labelled seeds go first as chat turns: with two of them the embedded 135M model labelled 4 of 4
    tiny-tickets inputs right, without them 2 of 4 (it answered login_problem for all four).
    """
    listed = "\n".join(f"- {name}: {meaning}" if meaning else f"- {name}" for name, meaning in task.labels.items())
    system = "\n\n".join(filter(None, [
        task.instructions,
        f"Classify the text the user sends into exactly one of these labels:\n{listed}",
        'Reply with JSON only: {"label": "<one of the labels above>"}.',
    ]))
    shots = [m for text, label in task.shots for m in (Message(role="user", content=text),
                                                        Message(role="assistant", content=json.dumps({"label": label})))]
    return GenerationRequest(key=f"{example.id}:{LABEL_STEP}", sampling=VERDICT_SAMPLING,
                             messages=[Message(role="system", content=system), *shots,
                                       Message(role="user", content=example.prompt)],
                             json_schema=label_schema(list(task.labels)))


def planned_label(example: Example) -> str | None:
    if isinstance(example.output, dict) and isinstance(example.output.get("label"), str):
        return example.output["label"]
    try:
        data = json.loads(example.response)
    except ValueError:
        return None
    return data.get("label") if isinstance(data, dict) and isinstance(data.get("label"), str) else None


def read_json_field(text: str | None, name: str):
    """The field `name` of the JSON object in a verdict (fenced or bare), or None."""
    if not text:
        return None
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end < start:
        return None
    try:
        data = json.loads(text[start : end + 1])
    except ValueError:
        return None
    return data.get(name) if isinstance(data, dict) else None


def read_label(text: str | None, labels: list[str]) -> str | None:
    """The label a verdict names: its JSON field, else the one label the text mentions; None if unclear."""
    value = read_json_field(text, "label")
    by_fold = {label.casefold(): label for label in labels}
    if isinstance(value, str) and value.strip().casefold() in by_fold:
        return by_fold[value.strip().casefold()]
    mentioned = [label for label in labels if text and label.casefold() in text.casefold()]
    return mentioned[0] if len(mentioned) == 1 else None


# The topic judge


def topic_schema() -> dict:
    return create_model("TopicVerdict", on_topic=(bool, ...)).model_json_schema()


def topic_request(example: Example, node: NodeText) -> GenerationRequest:
    system = ("You review training data for one topic of a dataset.\n"
              f"Topic: {node.topic_line()}\n"
              "Decide whether the user's question and the answer below are about this topic. An answer "
              "about a different condition, drug or subject is not on topic, even if it is correct.\n"
              'Reply with JSON only: {"on_topic": true} or {"on_topic": false}.')
    user = f"Question:\n{example.prompt}\n\nAnswer:\n{example.response}"
    return GenerationRequest(key=f"{example.id}:{TOPIC_STEP}", sampling=VERDICT_SAMPLING,
                             messages=[Message(role="system", content=system), Message(role="user", content=user)],
                             json_schema=topic_schema())


def read_on_topic(text: str | None) -> bool | None:
    return read_boolean(text, "on_topic")


# The faithfulness judge


def faithful_schema() -> dict:
    return create_model("FaithfulVerdict", supported=(bool, ...)).model_json_schema()


def faithful_request(example: Example, passage: str) -> GenerationRequest:
    system = ("You review training data written from a passage of a document.\n"
              "Decide whether every claim of the answer below (each number, name, step and fact) is stated in or "
              "follows from the passage. An answer that adds a fact the passage does not give, or contradicts it, "
              "is not supported, even if the fact is true.\n"
              'Reply with JSON only: {"supported": true} or {"supported": false}.')
    user = f"Passage:\n{passage}\n\nQuestion:\n{example.prompt}\n\nAnswer:\n{example.response}"
    return GenerationRequest(key=f"{example.id}:{FAITHFUL_STEP}", sampling=VERDICT_SAMPLING,
                             messages=[Message(role="system", content=system), Message(role="user", content=user)],
                             json_schema=faithful_schema())


def read_boolean(text: str | None, name: str) -> bool | None:
    value = read_json_field(text, name)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


# Running them


@dataclass
class StepStats:
    """What one judged check did: how many it checked, agreed with, removed, could not read, failed."""

    teacher: str
    checked: int = 0
    agreed: int = 0
    disagreed: int = 0
    removed: int = 0  # disagreed and not already removed by the other judged check
    unclear: int = 0  # the verdict named no label / no boolean: kept, counted
    failed: int = 0  # the call failed after its retries: kept, counted; a re-run asks again

    def as_dict(self) -> dict:
        return {"teacher": self.teacher, "checked": self.checked, "agreed": self.agreed, "disagreed": self.disagreed,
                "removed": self.removed,
                "unclear": self.unclear, "failed": self.failed}


@dataclass
class JudgedFailure:
    index: int
    reason: str
    detail: str


@dataclass
class JudgeOutcome:
    failures: list[JudgedFailure] = field(default_factory=list)
    stats: dict[str, StepStats] = field(default_factory=dict)
    asked: int = 0  # new teacher calls
    found: int = 0  # answered from the log


def run_judged_checks(examples: list[Example], candidates: list[int], *, labels: LabelTask | None,
                      label_judge: Judge | None, topics: dict[str, NodeText] | None, topic_judge: Judge | None,
                      passages: dict[str, str] | None = None, faithful_judge: Judge | None = None,
                      progress: Progress | None = None) -> JudgeOutcome:
    """Ask the judges about every candidate example; a label that differs, an off-topic verdict, or an answer
    judged unsupported by its passage (`passages`: chunk id -> text, for `faithful_judge`) fails it."""
    asks: dict[int, tuple[Judge, list[Question]]] = {}  # one batch of questions per judge (often the same one)
    for i in candidates:
        example = examples[i]
        item_id = example.meta.plan_item_id or example.id
        if labels and label_judge is not None and planned_label(example) is not None:
            asks.setdefault(id(label_judge), (label_judge, []))[1].append(
                Question(i, LABEL_STEP, label_request(example, labels), item_id))
        node = topics.get(example.meta.taxonomy_path or "") if topics and topic_judge is not None else None
        if node is not None and topic_judge is not None and planned_label(example) is None:  # labels cross leaves: see check_off_topic
            asks.setdefault(id(topic_judge), (topic_judge, []))[1].append(
                Question(i, TOPIC_STEP, topic_request(example, node), item_id))
        passage = passage_text(example, passages) if passages and faithful_judge is not None else None
        if passage is not None and faithful_judge is not None:
            asks.setdefault(id(faithful_judge), (faithful_judge, []))[1].append(
                Question(i, FAITHFUL_STEP, faithful_request(example, passage), item_id))
    outcome = JudgeOutcome()
    failed_already: set[int] = set()
    for judge, questions in asks.values():
        before_asked, before_found = judge.asked, judge.found
        results = judge.ask(questions, progress)
        outcome.asked += judge.asked - before_asked
        outcome.found += judge.found - before_found
        for question, result in zip(questions, results):
            _decide(examples[question.index], question, result, judge.spec, labels, outcome, failed_already)
    return outcome


def _decide(example: Example, question: Question, result: GenerationResult, spec: str, labels: LabelTask | None,
            outcome: JudgeOutcome, failed_already: set[int]) -> None:
    stats = outcome.stats.setdefault(question.step, StepStats(teacher=spec))
    stats.checked += 1
    if not result.ok:
        stats.failed += 1
        return
    if question.step == LABEL_STEP:
        planned, said = planned_label(example), read_label(result.text, list(labels.labels if labels else {}))
        verdict = None if said is None else said == planned
        failure = ("label_mismatch", f"planned {planned!r}; {spec} classified it blind as {said!r}")
    elif question.step == FAITHFUL_STEP:
        verdict = read_boolean(result.text, "supported")
        source = (example.meta.model_extra or {}).get("source") or {}
        where = source.get("file", "?") + (f", page {source['page']}" if source.get("page") else "")
        failure = ("unfaithful", f"{spec} judged the answer not supported by its passage ({where})")
    else:
        verdict = read_on_topic(result.text)
        failure = ("off_topic", f"{spec} judged it not about {example.meta.taxonomy_path}")
    if verdict is None:
        stats.unclear += 1
    elif verdict:
        stats.agreed += 1
    else:
        stats.disagreed += 1
        if question.index not in failed_already:  # one reject an example: the first check that failed it
            stats.removed += 1
            failed_already.add(question.index)
            outcome.failures.append(JudgedFailure(question.index, *failure))
