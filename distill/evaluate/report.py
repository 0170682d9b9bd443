"""`distill eval`: base vs the student's forms (adapter, merged, GGUF) and the teacher on the held-out split.

Writes `eval.json` (every number, every answer), `eval.md` (the tables a person reads, `markdown.py`) and its
plots (`figures.py`: per-leaf scores, confusion matrices).
The teacher's answers are the eval split's reference turns (the split holds teacher outputs never
trained on), so they enter comparisons where a reference can be judged against: schema validity and the
LLM-as-judge; reference-based scores of the teacher against itself would be 1 and are not reported.
When several forms of one student are given, each export step (adapter -> merged -> GGUF) is compared item by
item and a metric that falls by more than `max_drop` is flagged (`distill.evaluate.steps`).
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from distill.curate.split import read_split
from distill.errors import DistillError, RunFailed
from distill.evaluate import metrics as m
from distill.evaluate.constrain import task_schema
from distill.evaluate.faithfulness import faithful_share
from distill.evaluate.figures import write_figures
from distill.evaluate.forms import ModelForm, detect_forms, load_form, shared_manifest
from distill.evaluate.generate import Answer, generate, load_base, load_student
from distill.evaluate.markdown import render_markdown
from distill.evaluate.metrics import BASE, TEACHER
from distill.evaluate.steps import DEFAULT_MAX_DROP, compare_steps
from distill.evaluate.tool_scores import TOOL_METRICS, CallScore, call_turns, score_call, turn_prompt
from distill.extras import needs
from distill.models import set_threads
from distill.owned import OwnedFolder, writable_folder
from distill.records import Example, Message, SamplingParams
from distill.rundir import EVAL_JSON, EVAL_MD, EVAL_REPORT, RunDir
from distill.taxonomy.snapshot import read_snapshot
from distill.teachers.base import GenerationRequest
from distill.teachers.registry import TeacherSpec
from distill.teachers.stack import build_teacher
from distill.teachers.wrappers.cache import default_cache_dir
from distill.tool_calls import chat_for_template, split_reasoning, template_renders_tools
from distill.train.manifest import load_student_tokenizer


class EvalConfig(BaseModel):
    """Options of `distill eval`.

    - max_new_tokens / batch_size: greedy generation budget and batch size.
    - limit: evaluate at most this many held-out examples (None: all).
    - judge: a teacher spec (e.g. "openai:gpt-4o-mini") or a Teacher object for pairwise LLM-as-judge on open
      QA; None: reference-based overlap (token F1, ROUGE-L) only.
    - out_dir: where eval.json / eval.md go (default: the run directory); a folder of its own or one distill
      wrote (a run, an adapter, an export), checked before any model loads; `force` writes into a folder of
      the user's, beside what is there.
    - resamples / seed: bootstrap settings for the confidence intervals.
    - threads: CPU torch threads (None: the idle cores).
    - max_drop: a metric falling by more than this (absolute) after merge or quantization is flagged.
    - cache / cache_dir: an API judge answers from the shared response cache first (as generation does), so
      re-running an eval pays for no verdict twice; cache_dir None: $DISTILL_CACHE_DIR or ~/.cache/distill.
    - constrained: also answer each task that has a typed output (a label set, a JSON schema) with decoding held
      to its schema (`constrain.py`), and report both side by side (eval.json's "constrained").
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    max_new_tokens: int = Field(128, gt=0)
    batch_size: int = Field(8, gt=0)
    limit: int | None = Field(None, gt=0)
    judge: Any = None  # a TeacherSpec (parsed from its text) or a Teacher
    out_dir: Path | None = None
    resamples: int = Field(1000, gt=0)
    seed: int = 0
    threads: int | None = Field(None, gt=0)
    max_drop: float = Field(DEFAULT_MAX_DROP, ge=0, le=1)
    cache: bool = True
    cache_dir: Path | None = None
    force: bool = False  # write into a non-empty out_dir distill did not make, beside what is there
    constrained: bool = False

    @field_validator("judge", mode="before")
    @classmethod
    def _spec(cls, judge: Any) -> Any:
        return TeacherSpec.parse(judge) if isinstance(judge, str) else judge


class EvalResult(BaseModel):
    json_path: Path
    markdown_path: Path
    report: dict[str, Any]


def evaluate(run_dir: Path, students: Path | list[Path], config: EvalConfig,
             observe: Callable[[ModelForm, Any], None] | None = None,
             say: Callable[[str], None] | None = None) -> EvalResult:
    """`run` on the run folder at `run_dir` (`distill eval`, `distill.evaluate()`, `distill export-model`)."""
    return run(RunDir(run_dir, "RUN_DIR"), config, students, observe=observe, say=say)


@needs("local", "train", purpose="distill eval")  # transformers and torch; peft for an adapter
def run(run_dir: RunDir, config: EvalConfig, students: Path | list[Path],
        observe: Callable[[ModelForm, Any], None] | None = None,
        say: Callable[[str], None] | None = None) -> EvalResult:
    """The evaluation stage: answer the run's eval.jsonl with the base and each form of the student, score,
    write eval.json and eval.md.

    `students`: adapter folders, merged model folders and GGUF files of one student (any mix, in order).
    `observe(form, model)` is called with each form's model while it is loaded (export checks GGUF logits so).
    `say` gets what a person should know (the split extended to examples generated after it).
    """
    # Checked before torch and transformers load (~15 s on a busy machine): a typo fails at once.
    if not run_dir.root.is_dir():
        raise DistillError("run directory does not exist; give the folder `distill generate` wrote",
                           path=run_dir.root)
    eval_path = run_dir.eval
    if not eval_path.is_file():
        raise DistillError(f"no {eval_path.name}: run `distill train` (or `distill split`) first", path=run_dir.root)
    if run_dir.train.is_file():  # examples generated after the split are held out too, if drawn so
        _, held_out, update = read_split(run_dir)
        if update is not None and say is not None:
            say(f"split: {update.describe()}")
    else:
        held_out = run_dir.read_held_out()
    if not held_out:  # the split's problem comes first: no student can be scored on nothing
        raise DistillError(_empty_split_cause(run_dir), path=eval_path)
    if isinstance(config.judge, TeacherSpec):  # a folder the user named is checked before any model is looked at
        if config.judge.api and config.cache:
            writable_folder(Path(config.cache_dir) if config.cache_dir else default_cache_dir(), "--cache-dir")
    forms = detect_forms([students] if isinstance(students, (str, Path)) else list(students))
    manifest = shared_manifest(forms)
    examples = [e for e in held_out if e.response or call_turns(e)][: config.limit]
    if not examples:
        raise DistillError(f"none of the {len(held_out)} held-out examples has a reference answer (an assistant "
                           "turn) to score against", path=eval_path)
    folder = report_folder(run_dir, config)  # before any model loads
    set_threads(config.threads)
    renders, reasoning = template_renders_tools(manifest.chat_template), bool(manifest.config.get("reasoning"))
    turns = [(i, turn) for i, example in enumerate(examples) for turn in call_turns(example)]
    prompts = [_context(e, renders, reasoning) for e in examples] + \
        [turn_prompt(examples[i], turn, renders, reasoning) for i, turn in turns]
    snapshot = read_snapshot(run_dir.root)
    label_set = sorted(snapshot.labels) if snapshot and snapshot.labels else None
    schemas, notes = output_schemas(examples, snapshot, label_set) if config.constrained else ({}, [])
    for note in notes:
        if say is not None:
            say(note)
    held = [i for i, e in enumerate(examples) if task_of(e) in schemas]  # answered twice: free, then held
    prompts += [prompts[i] for i in held]
    free = len(prompts) - len(held)
    generated = generate_answers(forms, manifest, prompts, config, observe,
                                 schemas=[None] * free + [schemas[task_of(examples[i])] for i in held])
    constrained = {system: rows[free:] for system, rows in generated.items()}
    generated = {system: rows[:free] for system, rows in generated.items()}
    # A student trained with reasoning thinks first: its answer is what follows the <think> block.
    answers = {system: [split_reasoning(a.text)[1] for a in rows[: len(examples)]] for system, rows in generated.items()}
    ended = {system: [a.ended for a in rows[: len(examples)]] for system, rows in generated.items()}
    calls = {system: score_turns(examples, turns, [a.text for a in rows[len(examples):]])
             for system, rows in generated.items()}
    answers[TEACHER] = [e.response for e in examples]
    judge = _judge(config.judge, config)
    documents = run_dir.read_documents() or {}  # the passages the held-out questions were written from
    report = build_report(examples, answers, config, judge, ended=ended, calls=calls, label_set=label_set,
                          passages=documents.get("passages") or {})
    if config.constrained:
        report["constrained"] = constrained_report(report, [examples[i] for i in held], schemas, notes, constrained,
                                                   config, label_set)
    report["adapter"] = {"dir": str(forms[0].path), "student": manifest.student, "base_model": manifest.base_model,
                         "chat_template_sha256": manifest.chat_template_sha256,
                         "tokenizer_sha256": manifest.tokenizer_sha256}
    report["forms"] = [form.model_dump(mode="json") for form in forms]
    report.update(compare_steps(report, config.max_drop))
    report["figures"] = write_figures(report, folder)
    json_path = folder.write_text(EVAL_JSON, json.dumps(report, indent=2, ensure_ascii=False))
    md_path = folder.write_text(EVAL_MD, render_markdown(report))
    return EvalResult(json_path=json_path, markdown_path=md_path, report=report)


def report_folder(run_dir: RunDir, config: EvalConfig) -> OwnedFolder:
    """Where the report goes, checked before any model loads: the run directory (in place), or an --out of
    its own; a file of the report's names there that distill did not write stops the evaluation now."""
    out_dir = Path(config.out_dir) if config.out_dir else run_dir.root
    if out_dir.resolve() == run_dir.root.resolve():
        folder = OwnedFolder.in_place(out_dir, option="RUN_DIR")
    else:
        folder = OwnedFolder.claim(out_dir, "eval", force=config.force,
                                   hosts=("run", "curated", "adapter", "merged", "model-export"))
    folder.check_all(EVAL_REPORT)
    return folder


def _empty_split_cause(run_dir: RunDir) -> str:
    """Why eval.jsonl holds nothing, from the split's record in stats.json, and what to do."""
    split = run_dir.recorded_split()
    redo = (f"generate more examples (a larger --limit), then `distill split {run_dir}` and `distill train` again"
            if split is None or split["train"] + split["eval"] < 10 else
            f"re-split with `distill split {run_dir}` and train again")
    if split is None:
        return f"the eval split is empty (no split is recorded in stats.json); {redo}"
    return (f"the eval split is empty: the split had {split['train'] + split['eval']} example(s) in all "
            f"(fraction {split['fraction']}); {split.get('note') or redo}")


def generate_answers(forms: list[ModelForm], manifest, prompts: list[tuple[list[dict], list[dict] | None]],
                     config: EvalConfig, observe: Callable[[ModelForm, Any], None] | None = None,
                     schemas: list[dict | None] | None = None) -> dict[str, list[Answer]]:
    """Greedy answers of the base and of each form to each (conversation, tools), one model in memory at a time.

    With an adapter, the base answers come from the same weights with the adapter switched off.
    `schemas`: per prompt, the JSON Schema its decoding is held to (None: free).
    """
    conversations, tools = [chat for chat, _ in prompts], [defined for _, defined in prompts]

    def answer(model, tokenizer, adapter: bool = True) -> list[Answer]:
        return generate(model, tokenizer, manifest, conversations, max_new_tokens=config.max_new_tokens,
                        batch_size=config.batch_size, adapter=adapter, tools=tools, schemas=schemas)

    answers: dict[str, list[Answer]] = {}
    adapter = next((form for form in forms if form.kind == "adapter"), None)
    if adapter:
        model, tokenizer, _ = load_student(adapter.path)
        answers[BASE] = answer(model, tokenizer, adapter=False)
        answers[adapter.name] = answer(model, tokenizer)
        if observe:
            observe(adapter, model)
    else:
        tokenizer = load_student_tokenizer(manifest)
        model = load_base(manifest)
        answers[BASE] = answer(model, tokenizer)
    for form in forms:
        if form.name not in answers:
            del model
            gc.collect()  # one model in memory at a time
            model = load_student(form.path)[0] if form.kind == "adapter" else load_form(form)
            answers[form.name] = answer(model, tokenizer)
            if observe:
                observe(form, model)
    return {BASE: answers[BASE], **{form.name: answers[form.name] for form in forms}}


def _context(example: Example, renders_tools: bool = False,
             reasoning: bool = False) -> tuple[list[dict], list[dict] | None]:
    """(the turns before the reference answer, the tools): what the model is asked, as its template renders it
    (a plain turn as {"role", "content"}, as before conversations)."""
    last = max(i for i, msg in enumerate(example.messages) if msg.role == "assistant")
    return chat_for_template(example.messages[:last], example.tools, renders_tools, reasoning=reasoning)


def score_turns(examples: list[Example], turns: list[tuple[int, int]], texts: list[str]) -> list[list[CallScore]]:
    """Per example, the scores of a model's calls at its reference's tool-calling turns (`turns`: (example,
    turn) in the order `texts` answers them)."""
    scores: list[list[CallScore]] = [[] for _ in examples]
    for (i, turn), text in zip(turns, texts):
        reference = examples[i].messages[turn].tool_calls or []
        scores[i].append(score_call(text, reference, examples[i].tools, turn))
    return scores


def task_of(example: Example) -> str:
    if example.meta.task:
        return example.meta.task
    return "classification" if example.output and "label" in example.output else "qa"


def build_report(examples: list[Example], answers: dict[str, list[str]], config: EvalConfig, judge=None,
                 ended: dict[str, list[bool]] | None = None, calls: dict[str, list[list[CallScore]]] | None = None,
                 label_set: Sequence[str] | None = None, passages: dict[str, str] | None = None) -> dict:
    """Scores per task, per taxonomy leaf, and the answers themselves. Pure: no model involved.

    `ended`: per model system, whether each answer ended its turn (None where unknown: no format measures).
    `calls`: per model system and example, the scores of its tool calls (`score_turns`).
    `label_set`: the taxonomy's labels, where the run knows them (else the held-out labels are the set).
    `passages`: the run's passages by id (documents.json), for the share of answers faithful to them."""
    ended, calls = ended or {}, calls or {}
    by_task: dict[str, list[int]] = defaultdict(list)
    by_leaf: dict[str, list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        by_task[task_of(example)].append(i)
        by_leaf[example.meta.taxonomy_path or "(none)"].append(i)

    def pick(idx: list[int]) -> tuple[list[Example], dict[str, list[str]], dict[str, list[bool]],
                                      dict[str, list[list[CallScore]]]]:
        return ([examples[i] for i in idx], {s: [a[i] for i in idx] for s, a in answers.items()},
                {s: [e[i] for i in idx] for s, e in ended.items()},
                {s: [c[i] for i in idx] for s, c in calls.items()})

    report: dict[str, Any] = {"n": len(examples), "systems": list(answers), "tasks": {}, "leaves": {},
                              "length_band": list(m.LENGTH_BAND)}
    for task, idx in sorted(by_task.items()):
        report["tasks"][task] = score(task, *pick(idx), config=config, judge=judge, label_set=label_set,
                                      passages=passages)
    for leaf, idx in sorted(by_leaf.items()):
        tasks = sorted({task_of(examples[i]) for i in idx})
        report["leaves"][leaf] = {
            task: score(task, *pick([i for i in idx if task_of(examples[i]) == task]), config=config, judge=None,
                        with_confusion=False, label_set=label_set, passages=passages)
            for task in tasks
        }
    report["examples"] = [
        {"id": e.id, "leaf": e.meta.taxonomy_path, "task": task_of(e), **{s: answers[s][i] for s in answers},
         **({"ended": {s: flags[i] for s, flags in ended.items()}} if ended else {}),
         **({"tool_calls": {s: [vars(c) for c in scores[i]] for s, scores in calls.items()}}
            if any(scores[i] for scores in calls.values()) else {})}
        for i, e in enumerate(examples)
    ]
    return report


def score(task: str, examples: list[Example], answers: dict[str, list[str]], ended: dict[str, list[bool]],
          calls: dict[str, list[list[CallScore]]], config: EvalConfig, judge=None, with_confusion: bool = True,
          label_set: Sequence[str] | None = None, passages: dict[str, str] | None = None) -> dict:
    out: dict[str, Any] = {"n": len(examples), "systems": {}}
    structured = [i for i, e in enumerate(examples) if e.output]
    # A label outside the set is not a valid answer, however well-formed its JSON (the schema's enum). The set is
    # the taxonomy's (taxonomy.json), else the held-out labels: the split is stratified, so it holds every label
    # a run of enough examples has (a run of 12 held-out tickets lacked some of the ten).
    choices: dict[str, Sequence[str]] | None = \
        {"label": list(label_set) if label_set else sorted({gold_label(e) for e in examples} - {m.NO_LABEL})} \
        if task == "classification" else None
    for system, texts in answers.items():
        row: dict[str, Any] = {}
        if structured:
            valid = sum(m.schema_valid(texts[i], cast(dict, examples[i].output), choices) for i in structured)
            row["schema_validity"] = m.wilson(valid, len(structured)).model_dump()
        if system != TEACHER:
            row.update(_classification(examples, texts, config, with_confusion) if task == "classification"
                       else _overlap(examples, texts, config))
            if system in ended:
                row.update(_format(task, examples, texts, ended[system]))
            if any(calls.get(system, [])):
                row.update(_tool_calls([score for scores in calls[system] for score in scores]))
        share = faithful_share(examples, texts, passages) if passages and task != "classification" else None
        if share is not None:  # examples made from a passage of the user's documents
            row["faithful"] = share.model_dump()
        out["systems"][system] = row
    versus = versus_base(out["systems"])
    if versus:
        out["versus_base"] = versus
    if judge is not None and task != "classification":
        first = next(system for system in answers if system not in (BASE, TEACHER))  # the first form given
        out["judge"] = {
            f"{first}_vs_{other}": _judge_pairs(judge, examples, answers[first], answers[other], config)
            for other in (BASE, TEACHER)
        }
    return out


def output_schemas(examples: list[Example], snapshot, label_set: Sequence[str] | None
                   ) -> tuple[dict[str, dict], list[str]]:
    """({task: the JSON Schema its answers are held to}, a note for each task that has none) for --constrained."""
    schemas, notes = {}, []
    for task in sorted({task_of(e) for e in examples}):
        mine = [e for e in examples if task_of(e) == task]
        run_schema = snapshot.output_schema if snapshot is not None and snapshot.task == task else None
        labels = label_set or sorted({gold_label(e) for e in mine} - {m.NO_LABEL})
        schema = task_schema(task, mine, run_schema, labels)
        if schema is None:
            notes.append(f"--constrained: task {task} has no typed output (no output schema, no `output` in its "
                         "references): its answers are decoded as without the option")
        else:
            schemas[task] = schema
    return schemas, notes


def constrained_report(report: dict, examples: list[Example], schemas: dict[str, dict], notes: list[str],
                       answers: dict[str, list[Answer]], config: EvalConfig,
                       label_set: Sequence[str] | None) -> dict:
    """eval.json's "constrained": per task held to a schema, each model's scores free and constrained side by
    side (the same measures, the same items), the schema, the constrained answers, and the notes."""
    texts = {system: [split_reasoning(a.text)[1] for a in rows] for system, rows in answers.items()}
    ended = {system: [a.ended for a in rows] for system, rows in answers.items()}
    held = build_report(examples, texts, config, ended=ended, label_set=label_set)
    tasks = {}
    for task, schema in schemas.items():
        systems = {}
        for system in answers:
            free, bound = report["tasks"][task]["systems"][system], held["tasks"][task]["systems"][system]
            systems[system] = {metric: {"free": free[metric], "constrained": bound[metric]}
                               for metric in ("schema_validity", "ends_turn", "accuracy", "macro_f1", "token_f1",
                                              "rouge_l") if metric in free and metric in bound}
        tasks[task] = {"n": held["tasks"][task]["n"], "schema": schema, "systems": systems}
    return {"tasks": tasks, "notes": notes,
            "examples": [{key: row[key] for key in ("id", "task", *answers, "ended") if key in row}
                         for row in held["examples"]]}


def _format(task: str, examples: list[Example], texts: list[str], ended: list[bool]) -> dict:
    """Format measures: the answer ends its turn (the end-of-turn token within the budget), and for open QA,
    also stays in length (ends its turn at LENGTH_BAND times the reference's length in words)."""
    row = {"ends_turn": m.wilson(sum(ended), len(ended)).model_dump()}
    if task != "classification":
        fits = [done and m.in_length(text, answer) for text, done, answer in
                zip(texts, ended, (final_answer(e) for e in examples)) if answer is not None]
        if fits:
            row["in_length"] = m.wilson(sum(fits), len(fits)).model_dump()
    return row


def _tool_calls(scores: list[CallScore]) -> dict:
    """The tool-call rates over every tool-calling turn, each with its Wilson interval."""
    return {metric: m.wilson(sum(getattr(s, field) for s in scores), len(scores)).model_dump()
            for metric, field in zip(TOOL_METRICS, ("valid", "right_tool", "arguments_equal"))}


def versus_base(systems: dict[str, dict]) -> dict:
    """The first student form against the base, per metric: the difference and whether the 95% intervals are
    apart (`above`: the student's lower end over the base's upper end; `below`; else `overlap`)."""
    base = systems.get(BASE)
    first = next((name for name in systems if name not in (BASE, TEACHER)), None)
    if base is None or first is None:
        return {}
    out = {}
    for metric, student in systems[first].items():
        if not isinstance(student, dict) or "low" not in student or metric not in base:
            continue
        other = base[metric]
        verdict = ("above" if student["low"] > other["high"] else "below" if student["high"] < other["low"]
                   else "overlap")
        out[metric] = {"system": first, "student": student["value"], "base": other["value"],
                       "difference": student["value"] - other["value"], "intervals": verdict}
    return out


def gold_label(example: Example) -> str:
    if example.output and isinstance(example.output.get("label"), str):
        return example.output["label"].strip()
    return m.extract_label(example.response, [])  # no label set known: (none)


def _classification(examples, texts, config: EvalConfig, with_confusion: bool) -> dict:
    golds = [gold_label(e) for e in examples]
    labels = sorted({g for g in golds if g != m.NO_LABEL})
    preds = [m.extract_label(t, labels) for t in texts]
    row: dict[str, Any] = {"accuracy": m.accuracy(golds, preds).model_dump(),
           "macro_f1": m.macro_f1(golds, preds, labels, config.resamples, config.seed).model_dump()}
    if with_confusion:
        row["labels"] = labels
        row["confusion"] = m.confusion_matrix(golds, preds, labels)
    return row


def final_answer(example: Example) -> str | None:
    """The reference's closing answer in words, or None when the reference ends in a tool call: such a
    conversation is scored at its call turns (valid call, right tool, arguments) and has no answer whose
    words an overlap score could compare (its call turn's preface, often empty, is not one)."""
    last = example.messages[-1] if example.messages else None
    if last is None or last.role != "assistant" or last.tool_calls:
        return None
    return last.content


def _overlap(examples, texts, config: EvalConfig) -> dict:
    pairs = [(t, r) for t, r in zip(texts, (final_answer(e) for e in examples)) if r is not None]
    if not pairs:
        return {}
    return {
        "token_f1": m.mean_estimate([m.token_f1(t, r) for t, r in pairs], config.resamples, config.seed).model_dump(),
        "rouge_l": m.mean_estimate([m.rouge_l(t, r) for t, r in pairs], config.resamples, config.seed).model_dump(),
    }


# --- LLM-as-judge -------------------------------------------------------------------------------------------

JUDGE_PROMPT = """You compare two answers to the same question. Judge correctness first, then helpfulness and \
concision. Ignore which answer comes first.

Question:
{question}

Answer A:
{a}

Answer B:
{b}

Reply with exactly one word: A, B, or tie."""


def _judge(judge, config: EvalConfig):
    """A judge spec is checked now (an API key missing fails before any answer is judged) and kept as a
    spec: each round of judging makes its teacher inside its own event loop (see `_judge_pairs`)."""
    if judge is None or not isinstance(judge, TeacherSpec):
        return judge
    asyncio.run(_closed(_judge_teacher(judge, config)))
    return judge


def _judge_teacher(spec: TeacherSpec, config: EvalConfig):
    """The judge's teacher, from the one builder: an API judge answers from the shared response cache first
    (a re-run of eval pays nothing twice), and never through a provider batch job (verdicts are wanted now)."""
    cache_dir = (Path(config.cache_dir) if config.cache_dir else default_cache_dir()) if config.cache else None
    return build_teacher(spec.text, cache_dir=cache_dir, online=True)


async def _closed(teacher) -> None:
    await teacher.aclose()  # HTTP clients close inside the loop that used them
    teacher.close()


def _judge_pairs(judge, examples, first: list[str], second: list[str], config: EvalConfig) -> dict:
    """Each pair judged twice with positions swapped; a win needs both orders to agree, else it is a tie.

    Score per item: 1 win, 0.5 tie, 0 loss for `first`; the mean with a bootstrap interval.
    """
    requests = []
    for i, example in enumerate(examples):
        question = "\n\n".join(msg.content for msg in example.messages if msg.role == "user")
        for order, (a, b) in enumerate(((first[i], second[i]), (second[i], first[i]))):
            requests.append(GenerationRequest(
                key=f"{i}:{order}",
                messages=[Message(role="user", content=JUDGE_PROMPT.format(question=question, a=a, b=b))],
                sampling=SamplingParams(temperature=0.0, top_p=1.0, max_tokens=4)))

    async def ask_all() -> list:
        # One event loop for every request: an API teacher's HTTP clients belong to the loop that made
        # them (one asyncio.run a batch sent the first request and failed every later one).
        teacher = _judge_teacher(judge, config) if isinstance(judge, TeacherSpec) else judge
        size = max(1, teacher.batch_size)
        gate = asyncio.Semaphore(max(1, teacher.concurrency))

        async def ask(batch):
            async with gate:
                return await teacher.generate(batch)

        try:
            answered = await asyncio.gather(*(ask(requests[start:start + size])
                                              for start in range(0, len(requests), size)))
        finally:
            if isinstance(judge, TeacherSpec):
                await _closed(teacher)
        return [result for batch in answered for result in batch]

    answered = asyncio.run(ask_all())
    results = {result.key: _verdict(result.text if result.ok else None) for result in answered}
    errors = [result.error for result in answered if not result.ok]
    if answered and len(errors) == len(answered):  # a judge that answered nothing is not a result of 0.5
        raise RunFailed(f"--judge {judge.text if isinstance(judge, TeacherSpec) else 'judge'}: none of {len(answered)} judge "
                        f"requests succeeded; e.g. {errors[0]}")
    scores, failed = [], 0
    for i in range(len(examples)):
        straight, swapped = results.get(f"{i}:0"), results.get(f"{i}:1")
        if straight is None or swapped is None:
            failed += 1
            continue
        first_wins = (straight == "A") + (swapped == "B")
        first_loses = (straight == "B") + (swapped == "A")
        scores.append(1.0 if first_wins == 2 else 0.0 if first_loses == 2 else 0.5)
    estimate = m.mean_estimate(scores, config.resamples, config.seed).model_dump()
    return {"win_rate": estimate, "wins": scores.count(1.0), "ties": scores.count(0.5), "losses": scores.count(0.0),
            "failed": failed, "judge": judge.text if isinstance(judge, TeacherSpec) else judge.spec}


def _verdict(text: str | None) -> str | None:
    if not text:
        return None
    word = text.strip().split()[0].strip(".:*'\"").lower() if text.strip() else ""
    return {"a": "A", "b": "B", "tie": "tie"}.get(word)
