"""Reading and chunking a folder of documents through `distill documents chunks`, as a user runs it: the shipped
example (documents/clinic-protocols: PDF, Word, HTML, Markdown, text) and the files reading must refuse
(tests/fixtures/documents: a scanned page, an encrypted PDF, broken files), all read by the real libraries."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from cli_helpers import ROOT, TESTS, cli_env, distill, error_lines

SHIPPED = ROOT / "documents" / "clinic-protocols"
ODD = TESTS / "fixtures" / "documents"
PLANTED = "The vaccine refrigerator log at Harbour Lane is countersigned every Friday by the duty pharmacist"


def chunks_of(folder: Path, tmp_path: Path, *extra: str) -> list[dict]:
    done = distill("documents", "chunks", str(folder), "--json", *extra, cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def squash(text: str) -> str:
    return " ".join(text.split())


def test_every_format_is_read_with_its_pages_headings_and_tables(tmp_path):
    chunks = chunks_of(SHIPPED, tmp_path)
    by_file: dict[str, list[dict]] = {}
    for chunk in chunks:
        by_file.setdefault(chunk["file"], []).append(chunk)
    assert sorted(by_file) == ["emergency-procedures.md", "patient-information.html", "protocols.pdf",
                               "staff-handbook.docx", "visitors.txt"]
    pdf = by_file["protocols.pdf"]
    # The PDF's pages, and the heading of each from its outline (bookmarks).
    assert sorted({c["page"] for c in pdf}) == list(range(1, 16))
    assert {c["page"]: c["headings"] for c in pdf}[3] == ["Medication storage"]
    planted = [c for c in pdf if PLANTED in squash(c["text"])]
    assert [c["page"] for c in planted] == [3]
    assert any("Vaccines 2 to 8 Quarantine, call the manufacturer" in c["text"] for c in pdf)  # the table
    word = by_file["staff-handbook.docx"]
    rota = [c for c in word if "Monday | Dr Aveling | Nurse Brandt" in c["text"]]
    assert [c["headings"] for c in rota] == [["Staff handbook", "On-call rota", "Weekday cover"]]
    html = by_file["patient-information.html"]
    assert html[0]["headings"] == ["Patient information", "Before your blood test"]
    assert "do not eat for ten hours" in html[0]["text"]
    assert not any("tracking" in c["text"] or "Home" in c["text"] for c in html)  # script and nav left out
    markdown = by_file["emergency-procedures.md"]
    fire = [c for c in markdown if c["headings"] == ["Emergency procedures", "Fire evacuation"]]
    assert len(fire) == 1 and "| Duty nurse | Checks the treatment rooms and toilets |" in fire[0]["text"]
    assert by_file["visitors.txt"][0]["headings"] == []
    for chunk in chunks:
        assert chunk["sha256"] == hashlib.sha256(chunk["text"].encode()).hexdigest()
        assert chunk["end"] - chunk["start"] == len(chunk["text"])
        assert chunk["page"] is None or chunk["file"].endswith(".pdf")
    for own in by_file.values():  # spans in reading order, never overlapping
        assert all(a["end"] <= b["start"] for a, b in zip(own, own[1:], strict=False))


def test_a_file_that_cannot_be_read_is_one_line_and_the_others_go_on(tmp_path):
    done = distill("documents", "chunks", str(ODD), "--json", cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 4, lines
    assert lines[0].startswith("warning: broken.docx: not a readable Word .docx file")
    assert lines[1].startswith("warning: broken.pdf: not a readable PDF")
    assert lines[2].startswith("warning: encrypted.pdf: encrypted: it needs a password")
    assert lines[3].startswith("warning: scanned.pdf: page 2: no text layer")
    pages = sorted({json.loads(line)["page"] for line in done.stdout.splitlines()})
    assert pages == [1, 3]  # the scanned page 2 is skipped, the pages around it are read


@pytest.mark.slow  # several runs of the command
def test_chunks_keep_to_the_size_limit_and_cut_between_sentences(tmp_path):
    chunks = chunks_of(SHIPPED, tmp_path, "--max-chars", "300")
    assert max(len(c["text"]) for c in chunks) <= 300
    assert len(chunks) > len(chunks_of(SHIPPED, tmp_path))
    assert any(PLANTED in squash(c["text"]) for c in chunks)  # the sentence stays whole


@pytest.mark.slow  # several runs of the command
def test_same_files_same_chunks_and_an_edit_changes_only_its_own_file(tmp_path):
    folder = tmp_path / "docs"
    shutil.copytree(SHIPPED, folder)
    before = chunks_of(folder, tmp_path)
    assert chunks_of(folder, tmp_path) == before
    markdown = folder / "emergency-procedures.md"
    markdown.write_text(markdown.read_text() + "\nThe battery thermometer is checked on the first Monday of each "
                        "month.\n")
    after = chunks_of(folder, tmp_path)
    changed = [c for c in after if c not in before]
    assert [c["file"] for c in changed] == ["emergency-procedures.md"]
    assert "battery thermometer is checked" in changed[0]["text"]
    unchanged = [c for c in before if c["file"] != "emergency-procedures.md"]
    assert [c for c in after if c["file"] != "emergency-procedures.md"] == unchanged
    assert len(after) == len(before)  # the edited section's chunk is replaced, the earlier sections kept


def test_reading_a_pdf_without_the_extra_names_it(tmp_path):
    # pypdf made missing for this process only: a package of that name that cannot be imported, first on the path.
    shadow = tmp_path / "shadow" / "pypdf"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'pypdf'\", name='pypdf')\n")
    env = cli_env(tmp_path)
    env["PYTHONPATH"] = f"{shadow.parent}:{env['PYTHONPATH']}"
    done = distill("documents", "chunks", str(SHIPPED), cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert error_lines(done.stderr) == ["error: reading the PDF protocols.pdf needs the package 'pypdf'; install it "
                                        "with: pip install 'distill[documents]'; see docs/getting-started.md#extras"]


def test_a_folder_that_is_not_there_is_one_line(tmp_path):
    done = distill("documents", "chunks", str(tmp_path / "nowhere"), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2
    assert len(error_lines(done.stderr)) == 1 and "not a folder" in done.stderr


def test_html_text_standing_bare_in_a_div_is_read(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "page.html").write_text(
        "<html><head><title>Left out</title></head><body><div class='content'><h2>Parking</h2>Staff park behind "
        "the <b>pharmacy</b>.<p>Patients use the front car park.</p>Bicycles go in the shed.</div></body></html>")
    chunks = chunks_of(folder, tmp_path)
    assert [c["headings"] for c in chunks] == [["Parking"]]
    assert chunks[0]["text"] == ("Staff park behind the pharmacy.\n\nPatients use the front car park.\n\n"
                                 "Bicycles go in the shed.")


def test_a_pdf_locked_only_against_editing_is_read(tmp_path):
    from pypdf import PdfReader, PdfWriter

    # An owner password with an empty user password (AES-256): a viewer opens it without asking, and so do we.
    folder = tmp_path / "locked"
    folder.mkdir()
    writer = PdfWriter(clone_from=PdfReader(SHIPPED / "protocols.pdf"))
    writer.encrypt(user_password="", owner_password="only-the-owner", algorithm="AES-256")
    with (folder / "protocols.pdf").open("wb") as out:
        writer.write(out)
    chunks = chunks_of(folder, tmp_path)
    assert [c["page"] for c in chunks if PLANTED in squash(c["text"])] == [3]
