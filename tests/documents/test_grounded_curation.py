"""Curating examples made from the user's documents, and the card that names them: an answer that says what its
passage does not is rejected (`unfaithful`), a closed-book question that leans on the passage is rejected
(`leaning_phrase`) while an open-book one may, and `distill export` lists the documents with their checksums and
the licences declared in the folder's documents.yaml. The loopback API answers the fridge leaf's items with
planted questions and answers; every other request gets its usual random words."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import ROOT, cli_env, distill
from fakeapi import FakeAPI, Faults

TAXONOMY = ROOT / "taxonomies" / "clinic-protocols.yaml"
DOCUMENTS = ROOT / "documents" / "clinic-protocols"
TRUE = ("The vaccine refrigerator log at Harbour Lane is countersigned every Friday by the duty pharmacist, who "
        "initials the lowest and highest reading of the week.")
# question -> answer; the fridge leaf's items take them in the order the items are first asked
PLANTED = {
    "How often is the vaccine refrigerator log at Harbour Lane countersigned?": TRUE,
    "How often must the vaccine refrigerator log at Harbour Lane be countersigned?":
        "The vaccine refrigerator log at Harbour Lane is countersigned every 3 days by the duty pharmacist.",
    "Who countersigns the vaccine refrigerator log at Harbour Lane?":
        "The vaccine refrigerator log at Harbour Lane is countersigned every Friday by Doctor Okafor.",
    "According to the passage, when is the vaccine refrigerator log at Harbour Lane countersigned?": TRUE,
}


class Teacher:
    """Faults.user: the fridge leaf's question step gets the next planted question (one for each item, by its
    sampling seed), and its answer step the planted answer to the question it ends with; verdicts are left to
    Faults.verdict."""

    def __init__(self, questions: list[str]):
        self.questions, self.given, self.lock = questions, {}, threading.Lock()

    def __call__(self, request: dict[str, Any]) -> str | None:
        if request.get("response_format"):  # a judge's verdict: Faults.verdict answers it
            return None
        last = request["messages"][-1]["content"]
        text = last if isinstance(last, str) else " ".join(part.get("text", "") for part in last)
        flat = " ".join(text.split())
        for question in PLANTED:
            if flat.endswith(question):
                return PLANTED[question]
        if "countersigned every Friday" not in flat:
            return None
        with self.lock:
            seed = request.get("seed")
            if seed not in self.given:
                self.given[seed] = self.questions[len(self.given) % len(self.questions)]
            return self.given[seed]


def project(tmp_path: Path, task: str = "qa", declaration: str | None = None) -> tuple[Path, Path]:
    """A copy of the shipped taxonomy (its task as given) and documents, where the taxonomy's pins point."""
    taxonomy = tmp_path / "taxonomies" / TAXONOMY.name
    taxonomy.parent.mkdir()
    taxonomy.write_text(TAXONOMY.read_text().replace("task: qa", f"task: {task}"))
    documents = tmp_path / "documents" / DOCUMENTS.name
    shutil.copytree(DOCUMENTS, documents)
    if declaration is not None:
        (documents / "documents.yaml").write_text(declaration)
    return taxonomy, documents


def generate(tmp_path: Path, taxonomy: Path, documents: Path, questions: list[str], *extra: str):
    with FakeAPI(Faults(user=Teacher(questions))) as api:
        return distill("generate", "--taxonomy", str(taxonomy), "--teacher", "openai:test-model", "--base-url",
                       api.url + "/v1", "--out", str(tmp_path / "run"), "--no-preflight", "--documents",
                       str(documents), *extra, cwd=tmp_path, env=cli_env(tmp_path), timeout=300)


def fridge(rows: list[dict]) -> list[dict]:
    return [row for row in rows if "countersigned" in json.dumps(row)]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow  # a run of 176 items
def test_an_answer_its_passage_does_not_support_is_rejected_and_a_faithful_one_kept(tmp_path):
    taxonomy, documents = project(tmp_path)
    # The fridge leaf's two passages (pages 3 and 10) are taken in turn: 8 items give page 3 four of them.
    done = generate(tmp_path, taxonomy, documents, list(PLANTED), "--per-leaf", "8")
    assert done.returncode == 0, done.stderr
    kept = [e for e in fridge(read_jsonl(tmp_path / "run" / "dataset.jsonl")) if e["meta"]["taxonomy_path"]
            == "medicines/vaccine-storage"]
    assert [(e["messages"][-2]["content"], e["messages"][-1]["content"]) for e in kept] == \
        [("How often is the vaccine refrigerator log at Harbour Lane countersigned?", TRUE)]
    rejects = {r["example"]["messages"][-2]["content"]: (r["reason"], r["detail"])
               for r in fridge(read_jsonl(tmp_path / "run" / "rejected.jsonl")) if r.get("example")}
    # A wrong number, a person the passage never names: each rejected, the detail naming what is unsupported.
    reason, detail = rejects["How often must the vaccine refrigerator log at Harbour Lane be countersigned?"]
    assert reason == "unfaithful" and "the number 3 is not in the passage" in detail
    reason, detail = rejects["Who countersigns the vaccine refrigerator log at Harbour Lane?"]
    assert reason == "unfaithful" and "'Doctor'" in detail and "Okafor" in detail
    # Closed-book (qa): the student never sees "the passage" the question points at.
    reason, detail = rejects["According to the passage, when is the vaccine refrigerator log at Harbour Lane "
                             "countersigned?"]
    assert reason == "leaning_phrase" and "According to the passage" in detail


@pytest.mark.slow  # a run of 22 items
def test_an_open_book_question_may_point_at_its_passage(tmp_path):
    taxonomy, documents = project(tmp_path, task="grounded-qa")
    leaning = "According to the passage, when is the vaccine refrigerator log at Harbour Lane countersigned?"
    done = generate(tmp_path, taxonomy, documents, [leaning])
    assert done.returncode == 0, done.stderr
    kept = [e for e in read_jsonl(tmp_path / "run" / "dataset.jsonl") if e["meta"]["taxonomy_path"]
            == "medicines/vaccine-storage"]
    # The user turn holds the passage and the question: the passage is right there for the student.
    assert kept and all(e["messages"][-2]["content"].endswith(leaning) for e in kept)
    assert all(e["messages"][-1]["content"] == TRUE for e in kept)
    reasons = {r["reason"] for r in fridge(read_jsonl(tmp_path / "run" / "rejected.jsonl"))}
    assert "leaning_phrase" not in reasons and "unfaithful" not in reasons


@pytest.mark.slow  # a run of 22 items, then the export
def test_the_dataset_card_lists_the_documents_with_checksums_and_declared_licences(tmp_path):
    taxonomy, documents = project(tmp_path, declaration="license: CC-BY-4.0\nlicenses:\n  protocols.pdf: "
                                                        "Harbour Lane internal use only\n")
    done = generate(tmp_path, taxonomy, documents, [next(iter(PLANTED))], "--no-curate")
    assert done.returncode == 0, done.stderr
    assert "documents.yaml" not in done.stderr  # the declaration is not read as a document
    shutil.rmtree(documents)  # the card rests on what the run recorded, not on the folder
    out = tmp_path / "export"
    done = distill("export", str(tmp_path / "run"), "--out", str(out), "--license", "other", cwd=tmp_path,
                   env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    card = (out / "README.md").read_text()
    section = card.split("## Source documents", 1)[1].split("\n## ", 1)[0]
    rows = {line.split(" | ")[0].strip("| "): line.strip("|").split(" | ") for line in section.splitlines()
            if line.startswith("| ") and "---" not in line and not line.startswith("| file")}
    pdf = hashlib.sha256((DOCUMENTS / "protocols.pdf").read_bytes()).hexdigest()
    assert rows["protocols.pdf"][1].strip() == f"`{pdf}`"
    assert rows["protocols.pdf"][4].strip() == "Harbour Lane internal use only"
    markdown = hashlib.sha256((DOCUMENTS / "emergency-procedures.md").read_bytes()).hexdigest()
    assert rows["emergency-procedures.md"][1].strip() == f"`{markdown}`"
    assert rows["emergency-procedures.md"][4].strip() == "CC-BY-4.0"  # the folder's licence for every other file
    # As many examples as rest on each file in the exported data
    examples = read_jsonl(tmp_path / "run" / "dataset.jsonl")
    on_pdf = sum(e["meta"].get("source", {}).get("file") == "protocols.pdf" for e in examples)
    assert on_pdf and int(rows["protocols.pdf"][3]) == on_pdf
    assert "visitors.txt" not in rows  # no leaf uses it, so no example rests on it
    assert str(tmp_path) not in card  # the folder by its name: a published card carries no local path


def test_a_licence_for_a_file_that_is_not_there_is_one_line(tmp_path):
    taxonomy, documents = project(tmp_path, declaration="licenses:\n  protocol.pdf: CC-BY-4.0\n")
    done = distill("generate", "--taxonomy", str(taxonomy), "--documents", str(documents), "--dry-run",
                   cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "documents.yaml:2: licenses: protocol.pdf: no document" in done.stderr


@pytest.mark.slow  # a run of 176 items, and a verdict for each example with a passage
def test_a_judge_decides_faithfulness_on_request(tmp_path):
    taxonomy, documents = project(tmp_path)
    asked: list[str] = []

    def verdict(request: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any] | None:
        if "supported" not in schema["properties"]:
            return None
        user = request["messages"][-1]["content"]
        asked.append(user)
        return {"supported": "Okafor" not in user}  # this judge minds names, not numbers

    with FakeAPI(Faults(user=Teacher(list(PLANTED)), verdict=verdict)) as api:
        done = distill("generate", "--taxonomy", str(taxonomy), "--teacher", "openai:test-model", "--base-url",
                       api.url + "/v1", "--out", str(tmp_path / "run"), "--no-preflight", "--documents",
                       str(documents), "--per-leaf", "8", "--judge-faithfulness", cwd=tmp_path,
                       env=cli_env(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr
    # The judge is shown the passage beside the question and the answer.
    assert any("countersigned every Friday by the duty pharmacist" in text and "Okafor" in text for text in asked)
    rejects = {r["example"]["messages"][-2]["content"]: (r["reason"], r["detail"])
               for r in fridge(read_jsonl(tmp_path / "run" / "rejected.jsonl")) if r.get("example")}
    reason, detail = rejects["Who countersigns the vaccine refrigerator log at Harbour Lane?"]
    assert reason == "unfaithful" and "judged the answer not supported by its passage (protocols.pdf, page 3)" in detail
    # The judge, not the lexical rule, decides: the wrong number it let through is not rejected as unfaithful.
    number = "How often must the vaccine refrigerator log at Harbour Lane be countersigned?"
    assert rejects.get(number, ("", ""))[0] != "unfaithful"
