"""`distill taxonomy from-documents DIR --out FILE`: a first taxonomy from the documents' headings, which loads,
attaches the folder's own chunks to its leaves, and never replaces a file distill did not write."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cli_helpers import ROOT, cli_env, distill

DOCUMENTS = ROOT / "documents" / "clinic-protocols"


@pytest.mark.slow  # three commands over the shipped folder
def test_the_proposal_for_the_shipped_documents_loads_and_every_leaf_gets_a_chunk(tmp_path):
    out = tmp_path / "taxonomies" / "clinic.yaml"
    out.parent.mkdir()
    done = distill("taxonomy", "from-documents", str(DOCUMENTS), "--out", str(out), cwd=tmp_path,
                   env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.startswith("# Proposed by `distill taxonomy from-documents`") and "edit" in text.split("\n\n")[0]
    valid = distill("taxonomy", "validate", str(out), cwd=tmp_path, env=cli_env(tmp_path))
    assert valid.returncode == 0 and valid.stdout.startswith("ok"), valid.stderr
    shown = distill("taxonomy", "show", str(out), "--documents", str(DOCUMENTS), cwd=tmp_path, env=cli_env(tmp_path))
    assert shown.returncode == 0, shown.stderr
    attached, covered, leaves = map(int, re.search(r"(\d+) chunks attached to (\d+) of (\d+) leaves",
                                                   shown.stdout).groups())
    assert covered == leaves > 1 and attached >= leaves
    # The PDF's outline and the Word file's nested headings made nodes, and leaves carry a task of `qa`.
    data = yaml.safe_load(text)
    assert data["task"] == "qa"
    assert "weekend-cover" in data["tree"]["staff-handbook"]["children"]["on-call-rota"]["children"]


def test_headings_make_the_tree_and_a_file_without_headings_is_a_leaf(tmp_path):
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "a.md").write_text("# Staff handbook\n\n## Opening hours\n\nThe clinic opens at eight. It closes at "
                                 "six.\n\n## Parking\n\nStaff park behind the pharmacy.\n")
    (folder / "b.md").write_text("# Staff Handbook\n\n## Uniform\n\nStaff wear the blue tunic.\n")
    (folder / "Visitor notes.txt").write_text("Visitors sign in at reception. They wear a badge.\n")
    out = tmp_path / "handbook.yaml"
    done = distill("taxonomy", "from-documents", str(folder), "--out", str(out), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    tree = yaml.safe_load(out.read_text())["tree"]
    assert set(tree) == {"staff-handbook", "visitor-notes"}  # "Staff handbook" twice: one node
    assert set(tree["staff-handbook"]["children"]) == {"opening-hours", "parking", "uniform"}
    hours = tree["staff-handbook"]["children"]["opening-hours"]
    assert hours["description"] == "Opening hours: The clinic opens at eight."
    assert tree["visitor-notes"]["description"] == "Visitor notes: Visitors sign in at reception."


@pytest.mark.slow  # five commands
def test_an_existing_file_is_never_replaced_unless_distill_wrote_it_and_force_is_given(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.md").write_text("# Opening hours\n\nThe clinic opens at eight.\n")
    env = cli_env(tmp_path)

    def propose(out: Path, *extra: str):
        return distill("taxonomy", "from-documents", str(folder), "--out", str(out), *extra, cwd=tmp_path, env=env)

    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\n")
    for extra in ((), ("--force",)):
        done = propose(mine, *extra)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "exists and distill did not write it" in done.stderr
        assert mine.read_text() == "name: mine\n"
    ours = tmp_path / "ours.yaml"
    assert propose(ours).returncode == 0
    ours.write_text(ours.read_text().replace("Opening hours:", "Edited by hand:"))
    done = propose(ours)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "pass --force" in done.stderr
    assert "Edited by hand:" in ours.read_text()
    assert propose(ours, "--force").returncode == 0
    assert "Edited by hand:" not in ours.read_text()
