"""Generation end to end with the real SmolLM2 teacher, rejects with reasons, and resume after kill -9."""

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from cli_helpers import ROOT as REPO, TINY as FIXTURES
from distill.generate.runner import GenerateOptions, generate
from distill.records import Example, Reject, read_jsonl
from distill.tasks.parse import Rejected, extract_json, extract_question, usable_text
from distill.taxonomy import build_plan, load_taxonomy
from distill.teachers.base import GenerationResult, WrappedTeacher

GENERATE_REASONS = {"truncated", "empty_output", "refusal", "no_question", "unparseable_json", "schema_invalid",
                    "content_filter", "teacher_failed"}


class CountingTeacher(WrappedTeacher):
    """Passes every batch to the real teacher and remembers what it was asked (not a stand-in)."""

    def __init__(self, inner):
        super().__init__(inner)
        self.asked = []

    async def generate(self, requests):
        self.asked.extend(r.fingerprint(self.spec) for r in requests)
        return await self.inner.generate(requests)

    def close(self):
        pass


@pytest.fixture(scope="session")
def local_teacher():
    import torch

    from distill.teachers.registry import TeacherOptions, make_teacher

    torch.set_num_threads(2)
    return make_teacher("local", TeacherOptions(batch_size=4))


def test_prompt_renders_topic_axes_and_seed_turns():
    loaded = load_taxonomy(FIXTURES / "qa.yaml")
    item = build_plan(loaded)[0]
    task, leaf = loaded.task, loaded.leaf(item.node_path)
    seeds = task.choose_seeds(loaded, item, leaf)
    context = task.item_context(loaded, item, leaf, seeds)
    instruction, response = task.steps
    prompt = instruction.prompt.render(context)
    topic = item.node_path.rsplit("/", 1)[-1].replace("-", " ")
    assert topic in prompt.lower()
    assert all(f": {value}." in prompt for value in item.axes.values())
    assert len(seeds) == 2  # seeds_per_prompt, inherited from the parent
    system = response.system.render(context)
    assert system.startswith(loaded.taxonomy.system_prompt)
    # The same item always sees the same seeds, in a fresh load too: its prompt hash is stable.
    again = load_taxonomy(FIXTURES / "qa.yaml")
    fresh = again.task.choose_seeds(again, item, again.leaf(item.node_path))
    assert [s.id for s in fresh] == [s.id for s in seeds]


def test_classification_seeds_are_chat_turns_answered_with_their_json():
    loaded = load_taxonomy(FIXTURES / "tickets.yaml")
    item = build_plan(loaded)[0]
    asked = []

    async def call(step, request):
        asked.append(request)
        return GenerationResult(key=request.key, text=json.dumps({"text": "I want my money back for the kettle",
                                                                 "rationale": "Asks for a refund."}),
                                finish_reason="stop")

    example = asyncio.run(loaded.task.run(loaded, item, "local", call))
    messages = asked[0].messages
    seeds = loaded.task.choose_seeds(loaded, item, loaded.leaf(item.node_path))
    assert [m.role for m in messages] == ["user", "assistant"] * len(seeds) + ["user"]
    for seed, answer in zip(seeds, messages[1::2]):
        assert json.loads(answer.content) == {"text": seed.text, "rationale": seed.rationale}
    assert f'label "{item.axes["label"]}"' in messages[-1].content
    assert json.loads(example.response)["label"] == item.axes["label"]
    assert asked[0].json_schema["required"] == ["text", "rationale"]  # the teacher is asked for the draft's schema


@pytest.mark.parametrize("taxonomy", [FIXTURES / "qa.yaml", FIXTURES / "tickets.yaml",
                                      REPO / "taxonomies" / "medical.yaml", REPO / "taxonomies" / "support-tickets.yaml"])
def test_few_shot_prompts_rendered_once_a_leaf_match_a_fresh_render(taxonomy):
    # Few-shot requests are memoised by leaf, seed and axis names; every item must still get exactly its own render.
    loaded = load_taxonomy(taxonomy)
    task = loaded.task
    step = task.steps[0]  # the step whose shots are the seeds' own requests
    checked = 0
    for item in build_plan(loaded)[:200]:
        leaf = loaded.leaf(item.node_path)
        seeds = task.choose_seeds(loaded, item, leaf)
        turns = task.shots(loaded, step, item, leaf, seeds)
        for seed, turn in zip(seeds, turns[::2]):
            assert turn.content == step.prompt.render(task.seed_context(loaded, item, leaf, seed))
            checked += 1
    rendered = [key for key in task.rendered if key[1] == "request"]
    assert checked and len(rendered) < checked  # shared between items, or it saves nothing


def test_parsers_turn_bad_output_into_reasons():
    with pytest.raises(Rejected) as truncated:
        usable_text(GenerationResult(key="k", text="An answer that was cut", finish_reason="length"), "response")
    assert truncated.value.reason == "truncated"
    with pytest.raises(Rejected) as refused:
        usable_text(GenerationResult(key="k", text="I'm sorry, I cannot help with that.", finish_reason="stop"), "r")
    assert refused.value.reason == "refusal"
    assert extract_question('Question: "What causes wheeze in asthma?" It is caused by') == \
        "What causes wheeze in asthma?"
    with pytest.raises(Rejected, match="no_question"):
        extract_question("What causes wheeze in asthma?", avoid={"what causes wheeze in asthma"})
    value, repaired = extract_json('Sure!\n```json\n{"text": "My card was charged twice", "rationale": "double",}\n```')
    assert value == {"text": "My card was charged twice", "rationale": "double"} and repaired
    with pytest.raises(Rejected, match="unparseable_json"):
        extract_json("The customer is upset about billing.")


@pytest.mark.model
def test_generate_qa_end_to_end_with_the_real_model(tmp_path, local_teacher):
    out = tmp_path / "run"
    report = generate(GenerateOptions(taxonomy=FIXTURES / "qa.yaml", out=out, progress=False),
                      teacher_factory=lambda: local_teacher)
    stats = json.loads((out / "stats.json").read_text())
    kept = [Example.model_validate(row) for row in read_jsonl(out / "dataset.jsonl")]
    rejected = [Reject.model_validate(row) for row in read_jsonl(out / "rejected.jsonl")]
    # Every plan item is accounted for: kept, or rejected with a reason.
    assert stats["counts"]["planned"] == 4 == len({e.id for e in kept} | {r.id for r in rejected})
    assert report.total.planned == 4 and report.total.generated == 4
    for example in kept:
        assert [m.role for m in example.messages] == ["system", "user", "assistant"]
        assert example.messages[1].content.endswith("?")
        meta = example.meta
        assert meta.teacher.startswith("local") and meta.taxonomy_path.startswith("respiratory/")
        assert len(meta.prompt_sha256) == 64 and meta.seed_ids and meta.usage.completion_tokens > 0
        assert set(meta.axes) == {"question_type", "audience"}
    for reject in rejected:
        assert reject.reason and reject.detail
        if reject.stage == "generate":
            assert reject.reason in GENERATE_REASONS
    calls = sqlite3.connect(out / "run.db").execute("SELECT COUNT(*), COUNT(text) FROM teacher_calls").fetchone()
    assert calls[0] == calls[1] >= 4  # every raw response is kept
    # The embedded teacher must yield data, not only rejects: with a repetition penalty over the prompt
    # too (transformers' default) it asked no question or rambled to max_tokens and kept 0.
    assert kept, f"no item kept; reasons: {[r.reason for r in rejected]}"


@pytest.mark.model
def test_classification_outputs_are_schema_checked(tmp_path, local_teacher):
    out = tmp_path / "run"
    generate(GenerateOptions(taxonomy=FIXTURES / "tickets.yaml", out=out, progress=False),
             teacher_factory=lambda: local_teacher)
    kept = [Example.model_validate(row) for row in read_jsonl(out / "dataset.jsonl")]
    rejected = [Reject.model_validate(row) for row in read_jsonl(out / "rejected.jsonl")]
    assert len({e.id for e in kept} | {r.id for r in rejected}) == 4
    # Seeds as few-shot chat turns: with them listed inside one prompt the embedded teacher kept 0 of 4.
    assert kept, f"no item kept; reasons: {[r.reason for r in rejected]}"
    for example in kept:
        answer = json.loads(example.response)
        assert answer == example.output and answer["label"] == example.meta.axes["label"]
    for reject in rejected:
        if reject.stage == "generate" and reject.reason != "teacher_failed":
            assert reject.raw is not None  # the teacher's text is kept for every parse failure


@pytest.mark.model
def test_killed_run_resumes_without_asking_again(tmp_path, local_teacher):
    """kill -9 mid-run, then re-run: no request already answered is sent to the teacher again."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "distill.cli", "generate", "--taxonomy", str(FIXTURES / "qa.yaml"),
           "--out", str(out), "--batch-size", "1", "--no-curate", "--limit", "2"]
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 240
    answered = 0
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.5)
        if (out / "run.db").exists():
            try:
                answered = sqlite3.connect(out / "run.db").execute("SELECT COUNT(*) FROM teacher_calls").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if answered >= 1:
                break
    assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read()}"
    process.send_signal(signal.SIGKILL)
    process.wait()
    db = sqlite3.connect(out / "run.db")
    before = {row[0] for row in db.execute("SELECT fingerprint FROM teacher_calls WHERE error IS NULL")}
    assert len(before) >= 1

    counting = CountingTeacher(local_teacher)
    generate(GenerateOptions(taxonomy=FIXTURES / "qa.yaml", out=out, progress=False, curate=False, limit=2),
             teacher_factory=lambda: counting)
    assert not before & set(counting.asked)
    statuses = {row[0] for row in db.execute("SELECT status FROM plan_items")}
    assert statuses <= {"generated", "rejected"}

    # A third run has nothing left to ask.
    again = CountingTeacher(local_teacher)
    generate(GenerateOptions(taxonomy=FIXTURES / "qa.yaml", out=out, progress=False, limit=2),
             teacher_factory=lambda: again)
    assert again.asked == []
