"""Tasks declared in YAML: the clinical-extraction example end to end, custom tasks (inline JSON Schema, a
pydantic model path, a grounded task), their checks in curation, and every mistake as one line."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import textwrap
from pathlib import Path

import pytest

from cli_helpers import ROOT, cli_env, distill, error_lines
from distill.generate.runner import GenerateOptions, generate
from distill.records import Example, read_jsonl
from distill.taxonomy import build_plan, load_taxonomy
from distill.teachers.base import GenerationResult
from distill.teachers.registry import teacher_options
from fakeapi import FakeAPI, Faults
from fakeapi.server import conversation_key

CLINICAL = ROOT / "taxonomies" / "clinical-extraction.yaml"


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-tasks")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-tasks")
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


def run_api(api: FakeAPI, taxonomy: Path, out: Path, provider: str = "openai", **overrides):
    base = api.url + "/v1" if provider == "openai" else api.url
    options = GenerateOptions(taxonomy=taxonomy, teacher=f"{provider}:test-model", out=out, progress=False,
                              teacher_options=teacher_options(base_url=base, concurrency=8, timeout_s=5,
                                                              max_retries=2), **overrides)
    return generate(options)


def kept(out: Path) -> list[Example]:
    return [Example.model_validate(row) for row in read_jsonl(out / "dataset.jsonl")]


def rejects(out: Path) -> dict[str, dict]:
    return {row["id"]: row for row in read_jsonl(out / "rejected.jsonl")}


def extract_kinds(api: FakeAPI, out: Path, provider: str) -> dict[str, str | None]:
    """item id -> the content fault the fake gave its extraction answer."""
    kinds = {}
    with sqlite3.connect(out / "run.db") as db:
        for item, request in db.execute("SELECT plan_item_id, request FROM teacher_calls WHERE step = 'extract'"):
            request = json.loads(request)
            seed = request["sampling"]["seed"] if provider == "openai" else None
            kinds[item] = api.kinds[conversation_key(request["messages"], seed)]
    return kinds


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_clinical_extraction_end_to_end_with_the_api_teacher(tmp_path, provider):
    out = tmp_path / "run"
    with FakeAPI(Faults(content={"hallucinated": 0.25})) as api:
        report = run_api(api, CLINICAL, out, provider)
        kinds = extract_kinds(api, out, provider)
    counts = report.stats["counts"]
    assert counts["planned"] == 33 and counts["failed"] == 0 and counts["pending"] == 0
    examples = kept(out)
    assert len(examples) >= 15
    loaded = load_taxonomy(CLINICAL)
    for example in examples:
        # The student's turn is the extraction as JSON; `output` holds it parsed and schema-valid.
        assert json.loads(example.response) == example.output
        loaded.task.output_schema.validate(example.output)
        assert example.meta.task == "medication-extraction" and example.messages[1].content.startswith("Seen in")
        for medication in example.output["medications"]:
            assert medication["name"] in example.prompt  # what the custom check guarantees
    # Each invented drug was caught by the task's custom check, and only those: item by item.
    rejected = rejects(out)
    invented = {item for item, kind in kinds.items() if kind == "hallucinated"}
    assert invented and len(invented) < len(kinds)
    for item in invented:
        assert rejected[item]["reason"] == "drug_names_in_note" and "'warfarin' is not in the note" in \
            rejected[item]["detail"]
    assert {r["reason"] for i, r in rejected.items() if i not in invented} <= {"near_duplicate", "exact_duplicate"}
    # Structured output went through the provider's own mechanism, with the task's schema.
    if provider == "openai":
        formats = [body["response_format"] for body in api.bodies if "response_format" in body]
        assert formats and all(f["json_schema"]["schema"]["required"] == ["medications"] for f in formats)
    else:
        tools = [body["tools"][0] for body in api.bodies if body.get("tools")]
        assert tools and all("medications" in t["input_schema"]["properties"] for t in tools)


@pytest.mark.slow
def test_clinical_extraction_through_the_cli(tmp_path):
    with FakeAPI() as api:
        done = distill("generate", "--taxonomy", str(CLINICAL), "--teacher", "openai:test-model", "--base-url",
                       api.url + "/v1", "--out", str(tmp_path / "run"), "--limit", "6", cwd=tmp_path,
                       env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "clinical-extraction" in done.stdout
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["task"] == "medication-extraction" and stats["counts"]["kept"] >= 4


def test_clinical_seeds_show_the_teacher_notes_then_their_extractions():
    loaded = load_taxonomy(CLINICAL)
    item = build_plan(loaded)[0]
    asked = []

    async def call(step, request):
        asked.append(request)
        text = ("Seen in clinic. Plan: ramipril 5 mg oral once daily. Review in two weeks with blood tests and "
                "a repeat blood pressure." if step == "note" else
                json.dumps({"medications": [{"name": "ramipril", "dose": 5, "unit": "mg", "route": "oral",
                                             "frequency": "once daily"}]}))
        return GenerationResult(key=request.key, text=text, finish_reason="stop")

    example = asyncio.run(loaded.task.run(loaded, item, "test", call))
    note, extract = asked
    seeds = loaded.task.choose_seeds(loaded, item, loaded.leaf(item.node_path))
    # The note step: each seed's own request (its note type and counts) answered by its note.
    assert [m.content for m in note.messages[2::2]] == [s.note for s in seeds]
    assert item.axes["note_type"].replace("-", " ") in note.messages[-1].content
    # The extraction step: each seed's note answered by its output, as JSON, under the taxonomy's system prompt.
    assert extract.messages[0].content == loaded.taxonomy.system_prompt
    assert [json.loads(m.content) for m in extract.messages[2::2]] == [s.output for s in seeds]
    assert extract.json_schema["properties"]["medications"]["type"] == "array"
    assert extract.sampling.temperature == 0.2 and note.sampling.max_tokens == 300
    assert example.output["medications"][0]["name"] == "ramipril"
    assert [m.role for m in example.messages] == ["system", "user", "assistant"]


@pytest.mark.model
def test_clinical_extraction_with_the_embedded_model(tmp_path):
    import torch

    from distill.teachers.registry import TeacherOptions, make_teacher

    torch.set_num_threads(1)
    teacher = make_teacher("local", TeacherOptions(batch_size=2))
    report = generate(GenerateOptions(taxonomy=CLINICAL, out=tmp_path / "run", limit=2, progress=False),
                      teacher_factory=lambda: teacher)
    counts = report.stats["counts"]
    # The 135M teacher rarely writes a usable extraction; the pipeline must still account for every item.
    assert counts["planned"] == 2 and counts["generated"] == 2 and counts["failed"] == 0
    assert counts["kept"] + counts["rejected"] == 2
    with sqlite3.connect(tmp_path / "run" / "run.db") as db:
        steps = [step for (step,) in db.execute("SELECT step FROM teacher_calls")]
    assert steps.count("note") == 2  # every item's note was asked for and recorded


TRIAGE = """\
name: triage
description: Triage of messages to a help desk
system_prompt: Triage the message. Answer with JSON.
generation: {per_leaf: 6, max_tokens: 120, seeds_per_prompt: 2}
axes:
  tone: [calm, upset]
task:
  name: triage
  seed:
    message: text
    output: output
  steps:
    - name: answer
      prompt: "Write a help-desk message about {{ topic.title }} ({{ item.axes.tone }}) and triage it."
      shots:
        assistant: '{{ {"message": seed.message, "triage": seed.output} | json }}'
      output: json
      schema:
        type: object
        properties:
          message: {type: string, minLength: 5}
          triage:
            type: object
            properties:
              priority: {enum: [low, normal, urgent]}
              summary: {type: string}
            required: [priority, summary]
        required: [message, triage]
  example:
    messages:
      - {role: system, content: "{{ system_prompt }}"}
      - {role: user, content: "{{ steps.answer.message }}"}
      - {role: assistant, content: "{{ output | json }}"}
    output: steps.answer.triage
  output_schema:
    type: object
    properties:
      priority: {enum: [low, normal, urgent]}
      summary: {type: string, minLength: 3}
    required: [priority, summary]
    additionalProperties: false
  checks:
    - allowed: {field: output.priority, values: [low, normal]}
      reason: escalated
    - length: {field: output.summary, max: 200, unit: chars}
tree:
  printers:
    description: Printers and scanners
    seeds:
      - {id: p1, message: The printer on floor 2 jams on every page., output: {priority: normal, summary: Jam.},
         axes: {tone: upset}}
      - {id: p2, message: Cannot scan to email since this morning., output: {priority: low, summary: Scan.},
         axes: {tone: calm}}
  network:
    description: Wi-Fi and VPN
    seeds:
      - {id: n1, message: The VPN drops every ten minutes., output: {priority: urgent, summary: VPN drops.},
         axes: {tone: upset}}
"""


def test_a_custom_task_with_an_inline_json_schema_and_its_checks(tmp_path):
    taxonomy = tmp_path / "triage.yaml"
    taxonomy.write_text(TRIAGE)
    out = tmp_path / "run"
    with FakeAPI() as api:
        report = run_api(api, taxonomy, out)
    assert report.stats["counts"]["planned"] == 12 and report.stats["task"] == "triage"
    examples, rejected = kept(out), rejects(out)
    assert examples and len(examples) + len(rejected) == 12
    for example in examples:
        assert example.output["priority"] in ("low", "normal")
        assert json.loads(example.response) == example.output
    # An urgent triage fails the task's `allowed` check, under the reason the task gave it.
    escalated = [r for r in rejected.values() if r["reason"] == "escalated"]
    assert escalated and all("output.priority: 'urgent' is not one of low, normal" in r["detail"] for r in escalated)
    assert {r["reason"] for r in rejected.values()} <= {"escalated", "near_duplicate", "exact_duplicate"}


PYDANTIC_TASK = """\
name: summary
seed:
  text: text
  summary: text
steps:
  - name: write
    prompt: {file: write.j2}
    output: json
    schema: shop_models.py:Draft
example:
  messages:
    - {role: user, content: "{{ steps.write.text }}"}
    - {role: assistant, content: "{{ output | json }}"}
  output: {title: steps.write.title, words: steps.write.words}
output_schema: shop_models.py:Summary
"""

SHOP_MODELS = """\
from pydantic import BaseModel, Field


class Draft(BaseModel):
    text: str = Field(min_length=5)
    title: str
    words: int = Field(ge=1)


class Summary(BaseModel):
    title: str = Field(min_length=3)
    words: int = Field(ge=1, le=12)
"""


@pytest.mark.slow
def test_a_task_file_with_a_pydantic_model_path_through_the_cli(tmp_path):
    tasks = tmp_path / "project" / "tasks"
    tasks.mkdir(parents=True)
    (tasks / "shop_models.py").write_text(SHOP_MODELS)  # beside the task file, in the taxonomy's folder
    (tasks / "summary.yaml").write_text(PYDANTIC_TASK)
    (tasks / "write.j2").write_text("Write a short text about {{ topic.title }} with a title and its word count.")
    (tmp_path / "project" / "shop.yaml").write_text(textwrap.dedent("""\
        name: shop
        system_prompt: Summarise.
        task: tasks/summary.yaml
        generation: {per_leaf: 3}
        tree:
          lamps: {description: Desk lamps, seeds: [{id: s1, text: A brass desk lamp., summary: Lamp.}]}
          rugs: {description: Wool rugs, seeds: [{id: s2, text: A striped wool rug., summary: Rug.}]}
        """))
    env = cli_env(tmp_path)
    with FakeAPI() as api:
        done = distill("generate", "-t", "project/shop.yaml", "--teacher", "openai:m", "--base-url", api.url + "/v1",
                       "--out", "run", "--no-preflight", cwd=tmp_path, env=env)
        asked = [body["response_format"]["json_schema"]["schema"] for body in api.bodies]
    assert done.returncode == 0, done.stderr
    assert all(schema["title"] == "Draft" for schema in asked) and len(asked) == 6  # the pydantic model's schema
    examples, rejected = kept(tmp_path / "run"), rejects(tmp_path / "run")
    assert len(examples) + len(rejected) == 6
    # The fake's word count is the length of two words (6..18): over 12 fails the pydantic output schema, whose
    # error is the reject's detail; item by item, from the answers run.db recorded.
    with sqlite3.connect(tmp_path / "run" / "run.db") as db:
        counts = {item: json.loads(text)["words"] for item, text in db.execute(
            "SELECT plan_item_id, text FROM teacher_calls")}
    assert {e.id for e in examples} == {i for i, n in counts.items() if n <= 12}
    assert set(rejected) == {i for i, n in counts.items() if n > 12} != set()
    assert all(r["reason"] == "schema_invalid" and "words: Input should be less than or equal to 12" in r["detail"]
               for r in rejected.values())


GROUNDED = """\
name: handbook
system_prompt: Answer from the handbook passage you are given.
generation: {per_leaf: 2, seeds_per_prompt: 2}
task:
  name: grounded-qa
  seed:
    context: {type: text, optional: true}
    question: text
    answer: text
  steps:
    - name: question
      prompt: "Passage:\\n{{ context }}\\n\\nWrite one question this passage answers."
      shots: {assistant: "{{ seed.question }}"}
      extract: question
      avoid_seed_field: question
    - name: answer
      system: "{{ system_prompt }}"
      prompt: "Passage:\\n{{ context }}\\n\\nQuestion: {{ steps.question }}"
  example:
    messages:
      - {role: system, content: "{{ system_prompt }}"}
      - {role: user, content: "Passage:\\n{{ context }}\\n\\nQuestion: {{ steps.question }}"}
      - {role: assistant, content: "{{ steps.answer }}"}
tree:
  leave:
    description: Annual leave
    context: Staff have 25 days of annual leave a year, plus public holidays. Up to 5 days carry over.
    seeds:
      - {id: l1, question: How many days of leave carry over?, answer: Up to 5 days.}
      - {id: l2, context: Leave requests go to your line manager two weeks ahead., question: Who approves leave?,
         answer: Your line manager.}
    children:
      carry-over: {description: Carrying leave over}
  expenses:
    description: Expenses
    context: Claims above 50 pounds need a receipt. Claims are paid with the next month's salary.
    seeds:
      - {id: e1, question: When are expense claims paid?, answer: With the next month's salary.}
"""


def test_a_grounded_task_puts_each_passage_into_its_prompts_and_examples(tmp_path):
    taxonomy = tmp_path / "handbook.yaml"
    taxonomy.write_text(GROUNDED)
    loaded = load_taxonomy(taxonomy)
    item = next(i for i in build_plan(loaded) if i.node_path == "leave/carry-over")
    asked = []

    async def call(step, request):
        asked.append(request)
        return GenerationResult(key=request.key, finish_reason="stop",
                                text="How many days can a person carry over?" if step == "question" else "Five.")

    example = asyncio.run(loaded.task.run(loaded, item, "test", call))
    question = asked[0]
    # The leaf inherits its parent's passage; a seed with its own passage shows that one in its turn.
    assert "25 days of annual leave" in question.messages[-1].content
    shots = [m.content for m in question.messages if m.role == "user"][:-1]
    assert len(shots) == 2 and {"two weeks ahead" in shot for shot in shots} == {True, False}
    assert all(("two weeks ahead" in shot) != ("25 days" in shot) for shot in shots)
    assert "25 days of annual leave" in example.prompt and example.prompt.endswith("carry over?")
    out = tmp_path / "run"
    with FakeAPI() as api:
        report = run_api(api, taxonomy, out)
    assert report.stats["counts"]["generated"] == 4
    contexts = {e.meta.taxonomy_path: e.prompt for e in kept(out)}
    assert all(("25 days" in p) if path.startswith("leave") else ("receipt" in p) for path, p in contexts.items())


def broken(tmp_path: Path, old: str, new: str, name: str = "clinical-extraction.yaml") -> Path:
    folder = tmp_path / "t"
    if not folder.exists():
        shutil.copytree(ROOT / "taxonomies", folder / "taxonomies")
        shutil.copytree(ROOT / "seeds" / "clinical-extraction", folder / "seeds" / "clinical-extraction")
    path = folder / "taxonomies" / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("old, new, expected", [
    ("    - name: extract\n", "    - name: extract\n      temprature: 0.2\n",
     "clinical-extraction.yaml:57: task.steps.1.temprature: unknown field 'temprature'"),
    ("name: medication-extraction", "name: medication-extraction\n  steps_: []",
     "clinical-extraction.yaml:34: task.steps_: unknown field 'steps_'"),
    ("prompt: \"{{ steps.note }}\"", "prompt: \"{{ steps.note \"",
     "clinical-extraction.yaml:61: task.steps.1.prompt: template syntax"),
    ("custom: ./clinical_checks.py:drug_names_in_note", "custom: ./clinical_checks.py:no_such_check",
     "clinical-extraction.yaml:100: task.checks.4: clinical_checks.py has no function"),
    ("custom: ./clinical_checks.py:drug_names_in_note", "custom: no_such_plugin",
     "task.checks.4: unknown check 'no_such_plugin'"),
    # A taxonomy names Python only as a file in its folder, never a module (more in test_code_safety.py).
    ("output_schema: *medications", "output_schema: shop.models:Nothing",
     "clinical-extraction.yaml:88: task.output_schema: 'shop.models:Nothing' names a Python module"),
    ("output_schema: *medications", "output_schema: ./shop_models.py:Nothing",
     "clinical-extraction.yaml:88: task.output_schema: model file"),
    ("sampling: {temperature: 0.2}", "sampling: {temperature: 7}",
     "clinical-extraction.yaml:81: task.steps.1.sampling.temperature: Input should be less than or equal to 2"),
    ("pattern: \"[a-z][a-z0-9 -]*\"", "pattern: \"[a-z\"", "task.checks.3.regex.pattern: not a valid regular"),
    ("task:\n", "task: poetry\nold_task:\n", "clinical-extraction.yaml:32: task: unknown task 'poetry'"),
])
def test_a_mistake_in_a_task_is_one_line_naming_file_line_and_field(tmp_path, old, new, expected):
    path = broken(tmp_path, old, new)
    if "old_task" in new:  # drop the inline task that `task: poetry` replaced
        text = path.read_text()
        path.write_text(text[:text.index("old_task:")] + text[text.index("tree:"):])
    done = distill("taxonomy", "validate", str(path), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2, done.stdout
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert expected in lines[0], lines[0]


def test_a_seed_that_breaks_the_output_schema_is_named_with_its_line(tmp_path):
    path = broken(tmp_path, "x", "x")
    seeds = path.parents[1] / "seeds" / "clinical-extraction" / "pain.jsonl"
    rows = seeds.read_text().splitlines()
    rows[1] = rows[1].replace('"dose": 10,', '"dose": "ten",', 1)
    seeds.write_text("\n".join(rows) + "\n")
    done = distill("taxonomy", "validate", str(path), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2
    assert "pain.jsonl:2: field 'output': medications.0.dose: 'ten' is not of type 'number'" in done.stderr
