"""An InstructLab knowledge leaf's documents read like `--documents`: a PDF and a Word file in the leaf's local
repo folder, read by distill/documents' readers (a broken PDF beside them is one warning line), each passage with
its file and page; a sentence on the PDF's second page reaches the teacher, the kept example's `meta.source`
names that page, an answer its passage does not support is rejected `unfaithful`, and the run's documents.json
and the dataset card name the files. The loopback API answers the second page's items with planted questions and
answers; every other request gets its usual random words."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import docx
import pytest
from fpdf import FPDF

from cli_helpers import cli_env, distill, error_lines
from fakeapi import FakeAPI, Faults
from instructlab_helpers import write

PAGE_ONE = ("Vaccines arrive at the Harbour Lane clinic on Tuesdays in insulated boxes. The nurse on duty unpacks "
            "them within one hour and checks the cold chain indicator on every box.")
PLANTED = ("The vaccine refrigerator log at Harbour Lane is countersigned every Friday by the duty pharmacist, who "
           "initials the lowest and highest reading of the week.")
IN_WORD = "A refrigerator door left open for more than five minutes is reported to the practice manager."
# question -> answer; the second page's items take the questions in the order they are first asked
ANSWERS = {
    "How often is the vaccine refrigerator log at Harbour Lane countersigned?": PLANTED,
    "How often must the vaccine refrigerator log at Harbour Lane be countersigned?":
        "The vaccine refrigerator log at Harbour Lane is countersigned every 3 days by the duty pharmacist.",
}
DOCS = "documents/fridge"  # the leaf's repo: a local folder inside the taxonomy's tree


def knowledge() -> dict:
    return {"version": 3, "created_by": "tester", "domain": "Clinic",
            "document_outline": "How the clinic stores its vaccines",
            "seed_examples": [{"context": f"Storage note {n}: vaccines are kept between two and eight degrees.",
                               "questions_and_answers": [
                                   {"question": f"How cold are vaccines kept ({n}.{k})?",
                                    "answer": f"Between two and eight degrees ({n}.{k})."} for k in range(3)]}
                              for n in range(1, 6)],
            "document": {"repo": f"../../../{DOCS}", "commit": "0123456789abcdef", "patterns": ["**/*.pdf", "*.docx"]}}


def tree(tmp_path: Path) -> Path:
    """An InstructLab tree whose one knowledge leaf names a folder holding a two-page PDF, a Word file, a broken
    PDF and a hidden folder."""
    root = tmp_path / "taxonomy"
    write(root, "knowledge/clinic/fridge", knowledge())
    folder = root / DOCS
    folder.mkdir(parents=True)
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in (PAGE_ONE, PLANTED):  # one page each: the planted sentence is on page 2
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    pdf.output(str(folder / "fridge.pdf"))
    word = docx.Document()
    word.add_heading("Refrigerator doors", level=1)
    word.add_paragraph(IN_WORD)
    word.save(str(folder / "doors.docx"))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog")
    (folder / ".git").mkdir()  # a clone's own files: hidden, never read
    (folder / ".git" / "old.pdf").write_bytes(b"%PDF-1.4\n")
    return root


class Teacher:
    """Faults.user: the question step of an item whose passage holds the planted sentence gets the next planted
    question (one for each item, by its sampling seed), and the answer step the planted answer to the question it
    ends with."""

    def __init__(self) -> None:
        self.given: dict[Any, str] = {}
        self.lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> str | None:
        if request.get("response_format"):
            return None
        flat = " ".join(str(request["messages"][-1]["content"]).split())
        for question, answer in ANSWERS.items():
            if flat.endswith(question):
                return answer
        if PLANTED not in flat:
            return None
        with self.lock:
            seed = request.get("seed")
            if seed not in self.given:
                self.given[seed] = list(ANSWERS)[len(self.given) % len(ANSWERS)]
            return self.given[seed]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow  # a run of 6 items, then the export
def test_knowledge_from_a_pdf_and_a_word_file_keeps_its_page_and_is_checked_against_it(tmp_path):
    root = tree(tmp_path)
    run = tmp_path / "run"
    with FakeAPI(Faults(user=Teacher())) as api:
        done = distill("generate", "--taxonomy", str(root), "--teacher", "openai:test-model", "--base-url",
                       api.url + "/v1", "--out", str(run), "--no-preflight", "--per-leaf", "6", cwd=tmp_path,
                       env=cli_env(tmp_path), timeout=300)
        sent = [" ".join(" ".join(str(m["content"]).split()) for m in body["messages"]) for body in api.bodies]
    assert done.returncode == 0, done.stderr
    # The broken PDF is one line, as distill/documents says it; the other files go on.
    warnings = [line for line in error_lines(done.stderr) if line.startswith("warning: ")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {DOCS}/broken.pdf: not a readable PDF"), warnings
    # The PDF's second page and the Word file reach the teacher, each in a prompt of its own item.
    assert any(PLANTED in body and PAGE_ONE not in body for body in sent)
    assert any(IN_WORD in body for body in sent)

    kept = [e for e in read_jsonl(run / "dataset.jsonl") if e["messages"][-1]["content"] in ANSWERS.values()]
    assert [e["messages"][-1]["content"] for e in kept] == [PLANTED]
    source = kept[0]["meta"]["source"]
    assert source["file"] == f"{DOCS}/fridge.pdf" and source["page"] == 2
    record = json.loads((run / "documents.json").read_text())
    passage = record["passages"][source["id"]]
    assert PLANTED in " ".join(passage.split()) and source["sha256"] == hashlib.sha256(passage.encode()).hexdigest()
    files = {each["file"]: each for each in record["files"]}
    assert set(files) == {f"{DOCS}/fridge.pdf", f"{DOCS}/doors.docx"}
    assert files[f"{DOCS}/fridge.pdf"]["sha256"] == hashlib.sha256((root / DOCS / "fridge.pdf").read_bytes()).hexdigest()

    # A wrong number: rejected, the detail naming what the passage does not say.
    rejects = {r["example"]["messages"][-1]["content"]: (r["reason"], r["detail"])
               for r in read_jsonl(run / "rejected.jsonl") if r.get("example")}
    reason, detail = rejects[ANSWERS["How often must the vaccine refrigerator log at Harbour Lane be countersigned?"]]
    assert reason == "unfaithful" and "the number 3 is not in the passage" in detail

    out = tmp_path / "export"
    done = distill("export", str(run), "--out", str(out), "--license", "other", cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    section = (out / "README.md").read_text().split("## Source documents", 1)[1].split("\n## ", 1)[0]
    assert any(line.startswith(f"| {DOCS}/fridge.pdf | `{files[f'{DOCS}/fridge.pdf']['sha256']}`") and "2 of 2" in line
               for line in section.splitlines()), section


@pytest.mark.slow  # an import, 2.3 s
def test_import_writes_the_passages_of_a_pdf_and_a_word_file(tmp_path):
    root = tree(tmp_path)
    out = tmp_path / "taxonomies" / "ilab.yaml"
    done = distill("taxonomy", "import-instructlab", str(root), "--out", str(out), cwd=tmp_path,
                   env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    warnings = error_lines(done.stderr)
    assert len(warnings) == 1 and "knowledge/clinic/fridge/qna.yaml" in warnings[0] and \
        f"{DOCS}/broken.pdf: not a readable PDF" in warnings[0], warnings
    passages = sorted((out.parent / "ilab-seeds" / "knowledge" / "clinic" / "fridge").glob("passage-*.md"))
    texts = [" ".join(path.read_text().split()) for path in passages]
    # The files in name order: the Word file's section under its heading, then one passage a page of the PDF.
    assert len(texts) == 3 and texts[0] == f"# Refrigerator doors {IN_WORD}"
    assert PAGE_ONE in texts[1] and PLANTED in texts[2] and PAGE_ONE not in texts[2]
