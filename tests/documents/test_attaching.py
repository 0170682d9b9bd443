"""Attaching chunks to the taxonomy's leaves, through `distill documents attach` and `distill taxonomy show
--documents`, on the shipped clinic taxonomy and documents (or a copy of them laid out as a project)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli_helpers import ROOT, cli_env, distill, error_lines

TAXONOMY = ROOT / "taxonomies" / "clinic-protocols.yaml"
DOCUMENTS = ROOT / "documents" / "clinic-protocols"
PLANTED = "The vaccine refrigerator log at Harbour Lane is countersigned every Friday by the duty pharmacist"


def attachments(tmp_path: Path, taxonomy: Path = TAXONOMY, documents: Path = DOCUMENTS) -> list[dict]:
    done = distill("documents", "attach", str(documents), "-t", str(taxonomy), "--json", cwd=tmp_path,
                   env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def project(tmp_path: Path) -> Path:
    """A copy of the taxonomy and its documents, laid out as in the repository (taxonomies/ beside documents/)."""
    root = tmp_path / "project"
    (root / "taxonomies").mkdir(parents=True)
    shutil.copy(TAXONOMY, root / "taxonomies" / TAXONOMY.name)
    shutil.copytree(DOCUMENTS, root / "documents" / DOCUMENTS.name)
    return root


def test_a_sentence_planted_on_a_pdf_page_lands_in_its_leaf_with_its_page(tmp_path):
    found = [each for each in attachments(tmp_path) if PLANTED in " ".join(each["chunk"]["text"].split())]
    assert len(found) == 1
    assert found[0]["leaf"] == "medicines/vaccine-storage"
    chunk = found[0]["chunk"]
    assert (chunk["file"], chunk["page"], chunk["headings"]) == ("protocols.pdf", 3, ["Medication storage"])
    assert not found[0]["pinned"]  # by relevance alone: no pin names the PDF


def test_every_leaf_gets_the_chunks_about_it(tmp_path):
    leaf_of = {(each["chunk"]["file"], tuple(each["chunk"]["headings"])): each["leaf"] for each in attachments(tmp_path)}
    assert leaf_of[("protocols.pdf", ("Needlestick injury",))] == "infection-control/needlestick-injury"
    assert leaf_of[("protocols.pdf", ("Telephone triage",))] == "patients/telephone-triage"
    assert leaf_of[("patient-information.html", ("Patient information", "Before your blood test"))] == \
        "patients/appointments"
    assert leaf_of[("staff-handbook.docx", ("Staff handbook", "Lone working"))] == "staff/chaperones-and-lone-working"
    assert ("visitors.txt", ()) not in leaf_of  # about no leaf: left unattached


@pytest.mark.slow  # taxonomy show loads the plan's summary too: about 4 s
def test_the_coverage_report_names_leaves_without_documents_and_documents_without_leaves(tmp_path):
    done = distill("taxonomy", "show", str(TAXONOMY), "--documents", str(DOCUMENTS), cwd=tmp_path,
                   env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "59 chunks attached to 21 of 22 leaves" in done.stdout
    assert "leaf without documents: medicines/travel-vaccination" in done.stdout
    assert "document used by no leaf: visitors.txt" in done.stdout
    row = next(line for line in done.stdout.splitlines() if "medicines/vaccine-storage" in line)
    assert "protocols.pdf p3" in row


@pytest.mark.slow  # several runs of the command
def test_a_pin_puts_a_files_chunks_under_its_node(tmp_path):
    power_cut = ("emergency-procedures.md", ["Emergency procedures", "Power cut"])
    pinned = [each for each in attachments(tmp_path) if (each["chunk"]["file"], each["chunk"]["headings"]) == power_cut]
    assert [(each["leaf"], each["pinned"]) for each in pinned] == [("emergencies/fire-and-power", True)]
    root = project(tmp_path)
    taxonomy = root / "taxonomies" / TAXONOMY.name
    taxonomy.write_text(taxonomy.read_text().replace(
        "    documents: ../documents/clinic-protocols/emergency-procedures.md\n", ""))
    unpinned = [each for each in attachments(tmp_path, taxonomy, root / "documents" / DOCUMENTS.name)
                if (each["chunk"]["file"], each["chunk"]["headings"]) == power_cut]
    # Without the pin, relevance alone files the power cut under the refrigerators it is about.
    assert [(each["leaf"], each["pinned"]) for each in unpinned] == [("medicines/vaccine-storage", False)]


@pytest.mark.slow  # several runs of the command
def test_a_pin_outside_the_project_or_missing_is_one_line(tmp_path):
    root = project(tmp_path)
    taxonomy = root / "taxonomies" / TAXONOMY.name
    text = taxonomy.read_text()
    pin = "documents: ../documents/clinic-protocols/staff-handbook.docx"
    line = text.splitlines().index(f"    {pin}") + 1
    for value, says in (("../../outside", "leads outside the taxonomy's project folder"),
                        ("/etc/passwd", "is an absolute path"),
                        ("../documents/.hidden", "goes through the hidden '.hidden'"),
                        ("../documents/clinic-protocols/gone.pdf", "not found")):
        taxonomy.write_text(text.replace(pin, f"documents: {value}"))
        done = distill("taxonomy", "show", str(taxonomy), "--documents", str(root / "documents"), cwd=tmp_path,
                       env=cli_env(tmp_path))
        assert done.returncode == 2, done.stdout
        lines = error_lines(done.stderr)
        assert len(lines) == 1 and lines[0].startswith(f"error: {taxonomy}:{line}: tree.staff.documents"), lines
        assert says in lines[0]
