"""`distill eval --constrained`: the embedded SmolLM2 (base and a trained adapter) held to each task's schema,
through the installed console script, with free and constrained scores side by side."""

from __future__ import annotations

import json

import pytest

from cli_helpers import cli_env, distill

pytestmark = [pytest.mark.model]

# An extraction task's output schema as `distill generate` keeps it in taxonomy.json: nested, closed, bounded.
PERSON = {"type": "object", "additionalProperties": False, "required": ["person", "hobbies"], "properties": {
    "person": {"type": "object", "additionalProperties": False, "required": ["name", "age", "unit"], "properties": {
        "name": {"type": "string", "maxLength": 20}, "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "unit": {"enum": ["years", "months"]}}},
    "hobbies": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 12}}}}
PEOPLE = [("Anna Berg, 34, lives in Oslo and likes skiing and chess.",
           {"person": {"name": "Anna Berg", "age": 34, "unit": "years"}, "hobbies": ["skiing", "chess"]}),
          ("Baby Leo is 9 months old and loves his drum.",
           {"person": {"name": "Leo", "age": 9, "unit": "months"}, "hobbies": ["drum"]})]
REVIEWS = [("I love it (review 1)", "positive"), ("awful (review 2)", "negative"),
           ("great stuff (review 3)", "positive"), ("broke after a day (review 4)", "negative")]


def _rows() -> list[dict]:
    rows = [{"id": f"c{i}", "output": {"label": label}, "messages": [
        {"role": "system", "content": "Classify the sentiment. Reply with JSON."}, {"role": "user", "content": text},
        {"role": "assistant", "content": json.dumps({"label": label})}],
        "meta": {"taxonomy_path": "sentiment", "task": "classification"}} for i, (text, label) in enumerate(REVIEWS)]
    rows += [{"id": f"x{i}", "output": output, "messages": [
        {"role": "system", "content": "Extract the person and their hobbies as JSON."},
        {"role": "user", "content": text}, {"role": "assistant", "content": json.dumps(output)}],
        "meta": {"taxonomy_path": "people", "task": "extraction"}} for i, (text, output) in enumerate(PEOPLE)]
    rows.append({"id": "q0", "messages": [
        {"role": "system", "content": "Answer in one short sentence."},
        {"role": "user", "content": "What colour is snow?"}, {"role": "assistant", "content": "Snow is white."}],
        "meta": {"taxonomy_path": "colours", "task": "qa"}})
    return rows


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder whose held-out set has three tasks, its taxonomy.json the extraction task's schema."""
    run = tmp_path_factory.mktemp("constrained") / "run"
    run.mkdir()
    (run / "eval.jsonl").write_text("".join(json.dumps(row) + "\n" for row in _rows()), encoding="utf-8")
    (run / "taxonomy.json").write_text(json.dumps({"name": "people", "task": "extraction",
                                                   "output_schema": PERSON}), encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def evaluated(trained, run):
    """(eval.json, eval.md, stderr) of one `distill eval --constrained` on a held-out set of three tasks."""
    _, result = trained
    tmp = run.parent
    out = tmp / "eval"
    done = distill("eval", str(run), "--student", str(result.adapter_dir), "--out", str(out), "--constrained",
                   "--max-new-tokens", "64", "--threads", "1", cwd=tmp, env=cli_env(tmp), timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "eval.json").read_text()), (out / "eval.md").read_text(), done.stderr


def test_constrained_labels_are_all_in_the_set_and_the_free_figure_stands_beside_them(evaluated):
    report, markdown, _ = evaluated
    validity = report["constrained"]["tasks"]["classification"]["systems"]["base"]["schema_validity"]
    assert validity["constrained"]["value"] == 1.0, report["constrained"]["examples"]
    # whatever the base writes free, it is not a label of the set each time; eval.json keeps that figure too
    assert validity["free"]["value"] < 1.0
    assert validity["free"] == report["tasks"]["classification"]["systems"]["base"]["schema_validity"]
    assert {"accuracy", "macro_f1"} <= set(report["constrained"]["tasks"]["classification"]["systems"]["student"])
    assert "## Constrained decoding" in markdown and "### classification (n=4)" in markdown


def test_a_nested_extraction_schema_is_respected(evaluated):
    from jsonschema import Draft202012Validator

    report, _, _ = evaluated
    block = report["constrained"]["tasks"]["extraction"]
    assert block["schema"] == PERSON  # the run's own schema (taxonomy.json), not one guessed from the references
    answers = [row[system] for row in report["constrained"]["examples"] if row["task"] == "extraction"
               for system in ("base", "student")]
    assert len(answers) == 4
    for answer in answers:
        Draft202012Validator(PERSON).validate(json.loads(answer))


def test_a_task_without_typed_output_is_answered_free_with_a_note(evaluated):
    report, markdown, stderr = evaluated
    assert set(report["constrained"]["tasks"]) == {"classification", "extraction"}
    note = [line for line in stderr.splitlines() if "task qa" in line]
    assert len(note) == 1 and "no typed output" in note[0]
    assert report["constrained"]["notes"] == [note[0]]
    assert "qa" in report["tasks"] and all(row["task"] != "qa" for row in report["constrained"]["examples"])


def test_the_exported_model_carries_its_schema_and_how_to_serve_with_it(trained, run, evaluated):
    run_dir, result = trained
    (run / "train.jsonl").write_bytes((run_dir / "train.jsonl").read_bytes())  # export-model: the adapter's run
    out = run.parent / "export"
    done = distill("export-model", str(result.adapter_dir), "--run", str(run), "--gguf", "none", "--no-eval",
                   "--out", str(out), "--threads", "1", cwd=run.parent, env=cli_env(run.parent), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    merged = result.adapter_dir.parent / (result.adapter_dir.name + "-merged")
    assert json.loads((merged / "schema.json").read_text()) == PERSON
    card = (merged / "README.md").read_text()
    assert "`schema.json`" in card and '"type": "json_schema"' in card


# The tickets recipe's output schema as taxonomy.json keeps it: a label of the set and a free-text rationale, open
# to other properties, its length unbounded.
TICKET = {"type": "object", "required": ["label", "rationale"], "properties": {
    "label": {"type": "string", "enum": ["billing_error", "shipping_delay"]},
    "rationale": {"type": "string", "minLength": 1}}}
TICKETS = [("I was charged twice for the same order last week, please look into it.", "billing_error"),
           ("My parcel was due on Monday and tracking has not moved for five days.", "shipping_delay")]


def test_a_constrained_answer_closes_its_json_within_a_tight_token_budget(trained, tmp_path):
    """24 new tokens: room for the label and a word or two of rationale, not for the rationale a model writes free."""
    _, result = trained
    run = tmp_path / "tickets"
    run.mkdir()
    rows = [{"id": f"t{i}", "output": {"label": label, "rationale": "Why."}, "messages": [
        {"role": "system", "content": 'Classify the ticket. Answer {"label": ..., "rationale": "<why, in detail>"}.'},
        {"role": "user", "content": text}, {"role": "assistant", "content": json.dumps({"label": label})}],
        "meta": {"taxonomy_path": "tickets", "task": "classification"}} for i, (text, label) in enumerate(TICKETS)]
    (run / "eval.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    (run / "taxonomy.json").write_text(json.dumps({"name": "tickets", "task": "classification", "output_schema": TICKET,
                                                   "labels": {"billing_error": "", "shipping_delay": ""}}))
    done = distill("eval", str(run), "--student", str(result.adapter_dir), "--out", str(tmp_path / "eval"),
                   "--constrained", "--max-new-tokens", "24", "--threads", "1", cwd=tmp_path, env=cli_env(tmp_path),
                   timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    answers = [row[system] for row in report["constrained"]["examples"] for system in ("base", "student")]
    assert len(answers) == 4
    assert all(_valid_ticket(answer) for answer in answers), answers
    systems = report["constrained"]["tasks"]["classification"]["systems"]
    assert {systems[s]["schema_validity"]["constrained"]["value"] for s in ("base", "student")} == {1.0}


def _valid_ticket(answer: str) -> bool:
    from jsonschema import Draft202012Validator

    try:
        return Draft202012Validator(TICKET).is_valid(json.loads(answer))
    except json.JSONDecodeError:
        return False
