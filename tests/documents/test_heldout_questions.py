"""A documents folder's own question sets, held out in its documents.yaml (`held_out:`): never read as documents
(no chunk of them, nothing of them in a teacher's prompt), and decontaminated against like a taxonomy's `heldout:`
sets, a contaminated example's detail naming the set's file; the run records them in documents.json and the card
names them. A path that leaves the folder, a missing file or a format distill cannot read is one line, exit 2.
The loopback API answers the question steps with planted questions; one of them copies the FAQ."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import cli_env, distill
from fakeapi import FakeAPI, Faults

PASSAGE = ("The vaccine refrigerator at Harbour Lane is kept between two and eight degrees Celsius. The duty nurse "
           "reads the refrigerator thermometer every morning and every evening and writes both readings in the "
           "temperature log. A reading outside the range means the vaccines are quarantined until the pharmacist "
           "decides whether they can still be used.")
ANSWER = "The duty nurse reads the refrigerator thermometer every morning and every evening."
COPIED = ("How often does the duty nurse read the vaccine refrigerator thermometer and write the readings in the "
          "temperature log at Harbour Lane?")  # the FAQ's first question, which the teacher copies
CLEAN = "When are the vaccines in the refrigerator quarantined?"
NEVER_ASKED = "Who decides whether quarantined vaccines at the Harbour Lane clinic can still be given to patients?"
EXAM_CARD = "Sample exam question: which thermometer readings must the night porter countersign on weekends?"

TAXONOMY = """name: fridge
system_prompt: You answer questions about the protocols of Harbour Lane clinic.
generation: {per_leaf: 2, temperature: 0.7, max_tokens: 200}
tree:
  vaccine-storage:
    description: Storing vaccines in the refrigerator, its thermometer readings and the temperature log
    seeds:
      - {id: fridge-1, question: "What temperature must the vaccine refrigerator stay at?",
         answer: "Between two and eight degrees Celsius."}
"""


def project(tmp_path: Path, declaration: str) -> tuple[Path, Path]:
    """A taxonomy of one leaf, and a documents folder with one Markdown document, an FAQ (JSONL) and an exam laid
    out as on the Hub (its card, a README.md, would be read as a document if the folder were not held out)."""
    taxonomy = tmp_path / "fridge.yaml"
    taxonomy.write_text(TAXONOMY)
    documents = tmp_path / "docs"
    (documents / "exam" / "data").mkdir(parents=True)
    (documents / "storage.md").write_text(f"# Vaccine refrigerator\n\n{PASSAGE}\n")
    (documents / "faq.jsonl").write_text("".join(json.dumps({"id": n, "question": q, "answer": "ask the nurse"}) + "\n"
                                                 for n, q in enumerate([COPIED, NEVER_ASKED], 1)))
    (documents / "exam" / "README.md").write_text(f"# Vaccine refrigerator exam\n\n{EXAM_CARD} Storing vaccines "
                                                  "in the refrigerator, its thermometer readings and the temperature "
                                                  "log: the vaccine refrigerator thermometer and its temperature log.\n")
    (documents / "exam" / "data" / "test.jsonl").write_text(json.dumps({"question": EXAM_CARD}) + "\n")
    (documents / "documents.yaml").write_text(declaration)
    return taxonomy, documents


class Teacher:
    """The question step of each item (told apart by its sampling seed) gets the next planted question; an answer
    step, one that ends with a planted question, gets a sentence of the passage."""

    def __init__(self, questions: list[str]):
        self.questions, self.given, self.lock = questions, {}, threading.Lock()

    def __call__(self, request: dict[str, Any]) -> str | None:
        if request.get("response_format"):
            return None
        flat = " ".join(str(request["messages"][-1]["content"]).split())
        if any(flat.endswith(question) for question in self.questions):
            return ANSWER
        with self.lock:
            return self.given.setdefault(request.get("seed"), self.questions[len(self.given) % len(self.questions)])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow  # a run of 2 items, then the export
def test_an_example_that_copies_a_held_out_faq_question_is_rejected_and_the_sets_never_reach_the_teacher(tmp_path):
    taxonomy, documents = project(tmp_path, "license: CC-BY-4.0\nheld_out: [faq.jsonl, exam]\n")
    with FakeAPI(Faults(user=Teacher([COPIED, CLEAN]))) as api:
        done = distill("generate", "--taxonomy", str(taxonomy), "--teacher", "openai:test-model", "--base-url",
                       api.url + "/v1", "--out", str(tmp_path / "run"), "--no-preflight", "--documents",
                       str(documents), cwd=tmp_path, env=cli_env(tmp_path), timeout=300)
        sent = json.dumps(api.bodies)
    assert done.returncode == 0, done.stderr
    # Neither set was read as a document: no warning about the FAQ's format, nothing of the exam's card sent.
    assert "faq.jsonl" not in done.stderr and "exam/" not in done.stderr
    assert "two and eight degrees" in sent  # the document's passage was shown to the teacher ...
    assert "night porter" not in sent and "Who decides whether quarantined" not in sent  # ... the held-out sets never
    kept = read_jsonl(tmp_path / "run" / "dataset.jsonl")
    assert [e["messages"][-2]["content"] for e in kept] == [CLEAN]
    rejects = [r for r in read_jsonl(tmp_path / "run" / "rejected.jsonl") if r.get("example")]
    [copied] = [r for r in rejects if r["example"]["messages"][-2]["content"] == COPIED]
    assert copied["reason"] == "contaminated" and "held-out faq.jsonl:1" in copied["detail"]
    # The run records the sets it was decontaminated against, and the card names them.
    record = json.loads((tmp_path / "run" / "documents.json").read_text())
    faq = next(each for each in record["held_out"] if each["file"] == "faq.jsonl")
    assert faq["questions"] == 2
    assert faq["sha256"] == hashlib.sha256((documents / "faq.jsonl").read_bytes()).hexdigest()
    assert [each["file"] for each in record["held_out"]] == ["faq.jsonl", "exam"]
    assert [each["file"] for each in record["files"]] == ["storage.md"]
    done = distill("export", str(tmp_path / "run"), "--out", str(tmp_path / "export"), "--license", "other",
                   cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    section = (tmp_path / "export" / "README.md").read_text().split("## Source documents", 1)[1].split("\n## ")[0]
    assert "held out (not used for generation)" in section
    assert f"faq.jsonl (sha256 `{faq['sha256']}`, 2 questions)" in section


def test_held_out_sets_are_not_chunks(tmp_path):
    _, documents = project(tmp_path, "held_out:\n  - faq.jsonl\n  - {path: exam, fields: [question]}\n")
    done = distill("documents", "chunks", str(documents), "--json", cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert {json.loads(line)["file"] for line in done.stdout.splitlines()} == {"storage.md"}
    assert done.stderr == ""  # not even a line saying the FAQ's format is not a document's


@pytest.mark.parametrize(("entry", "problem"), [
    ("../secret.jsonl", "held_out.0: ../secret.jsonl: '..' leads out of the documents folder"),
    ("{absolute}", "held_out.0: {absolute}: an absolute path"),
    ("outside.jsonl", "held_out.0: outside.jsonl: a link that leads out of the documents folder"),
    ("quiz.jsonl", "held_out.0: quiz.jsonl: not found in"),
    ("storage.md", "held_out.0: storage.md: .md is not a question-set format distill reads"),
    ("{path: faq.jsonl, feilds: [question]}", "held_out.0.feilds: unknown field 'feilds'"),
])
def test_a_held_out_set_that_cannot_be_read_is_one_line_before_anything_is_written(tmp_path, entry, problem):
    secret = tmp_path / "secret.jsonl"
    secret.write_text(json.dumps({"question": "a question outside the documents folder, never to be read"}) + "\n")
    entry, problem = (text.replace("{absolute}", str(secret)) for text in (entry, problem))
    taxonomy, documents = project(tmp_path, f"license: CC-BY-4.0\nheld_out:\n  - {entry}\n")
    (documents / "outside.jsonl").symlink_to(secret)
    done = distill("generate", "--taxonomy", str(taxonomy), "--documents", str(documents), "--out",
                   str(tmp_path / "run"), "--dry-run", cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"documents.yaml:3: {problem}" in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # a run of 2 items, to the review gate
def test_a_run_configs_documents_folder_brings_its_held_out_sets(tmp_path):
    taxonomy, documents = project(tmp_path, "held_out: [faq.jsonl, exam]\n")
    config = tmp_path / "run.yaml"
    with FakeAPI(Faults(user=Teacher([COPIED, CLEAN]))) as api:
        config.write_text(f"taxonomy: {taxonomy.name}\nout: run\nreview: {{size: 1}}\n"
                          f"generate: {{teacher: 'openai:test-model', documents: {documents.name}, preflight: false,"
                          f" teacher_options: {{base_url: '{api.url}/v1'}}}}\n")
        done = distill("run", str(config), cwd=tmp_path, env=cli_env(tmp_path), timeout=300)
    assert done.returncode == 4, done.stderr  # the review gate stops it after generation and curation
    rejects = [r for r in read_jsonl(tmp_path / "run" / "rejected.jsonl") if r.get("example")]
    assert [(r["reason"], r["example"]["messages"][-2]["content"]) for r in rejects
            if "faq.jsonl" in r["detail"]] == [("contaminated", COPIED)]


@pytest.mark.slow  # a run of 2 items, then the same run again
def test_a_run_resumed_without_documents_is_decontaminated_against_the_sets_it_recorded(tmp_path):
    taxonomy, documents = project(tmp_path, "held_out: [faq.jsonl, exam]\n")
    with FakeAPI(Faults(user=Teacher([COPIED, CLEAN]))) as api:
        args = ("generate", "--taxonomy", str(taxonomy), "--teacher", "openai:test-model", "--base-url",
                api.url + "/v1", "--out", str(tmp_path / "run"), "--no-preflight")
        done = distill(*args, "--documents", str(documents), "--no-curate", cwd=tmp_path, env=cli_env(tmp_path))
        assert done.returncode == 0, done.stderr
        assert len(read_jsonl(tmp_path / "run" / "dataset.jsonl")) == 2  # not curated: the copy is still there
        done = distill(*args, cwd=tmp_path, env=cli_env(tmp_path))  # every item answered: curated again
    assert done.returncode == 0, done.stderr
    assert [e["messages"][-2]["content"] for e in read_jsonl(tmp_path / "run" / "dataset.jsonl")] == [CLEAN]
    rejects = read_jsonl(tmp_path / "run" / "rejected.jsonl")
    assert any(r["reason"] == "contaminated" and "held-out faq.jsonl:1" in r["detail"] for r in rejects)
