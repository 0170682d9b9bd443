"""InstructLab qna.yaml files of every schema version the `instructlab-schema` package knows (1, 2, 3), from the
fixture tree tests/fixtures/instructlab (our own small files): imported, noted where an older version lacks a field,
and the result validates; a version InstructLab has not defined is refused with file:line."""

from __future__ import annotations

import shutil

import pytest

from cli_helpers import TESTS, cli_env, distill, error_lines
from distill.taxonomy import load_taxonomy
from instructlab_helpers import POEMS, skill, write

FIXTURE = TESTS / "fixtures" / "instructlab"


@pytest.mark.slow
def test_v1_v2_and_v3_files_import_and_the_result_validates(tmp_path):
    root = tmp_path / "taxonomy"
    shutil.copytree(FIXTURE, root)
    out = tmp_path / "ilab.yaml"
    done = distill("taxonomy", "import-instructlab", str(root), "--out", str(out), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert f"imported {out}: 8 leaves, 27 seeds" in " ".join(done.stdout.split())
    lines = error_lines(done.stderr)
    assert not [line for line in lines if line.startswith("invalid")], lines
    limericks = root / "compositional_skills/writing/limericks/qna.yaml"
    kettles = root / "knowledge/tools/kettles/qna.yaml"
    notes = [line for line in lines if line.startswith("note: ")]
    assert notes == [
        f"note: {limericks}: no `version:`, read as InstructLab schema version 1",
        f"note: {limericks}:2: task_description is empty (schema v1 allows it); the node's description is its "
        "folder's name, 'Limericks'",
        f"note: {kettles}:3: knowledge schema v2 has no document_outline and its seeds no context: the description "
        "is domain and task_description, and only the documents give passages (InstructLab itself reads knowledge "
        "from v3 on)"], lines

    # Its documents are remote and its seeds carry no passage: the warning says the items go without one.
    assert [line for line in lines if line.startswith("warning: ")] == [
        f"warning: {kettles}:17: document.repo https://example.org/kettle-notes.git is not a local folder and distill "
        "reads no network: clone it at commit 0a1b2c3d4e5f and pass --documents with the clone's folder; the leaf's "
        "seeds have no context either (schema before v3), so its items are asked without a passage until then"]

    valid = distill("taxonomy", "validate", str(out), cwd=tmp_path, env=cli_env(tmp_path))
    assert valid.returncode == 0, valid.stderr
    leaves = {leaf.path: leaf for leaf in load_taxonomy(out).leaves}
    assert set(leaves) == {"compositional_skills/writing/limericks", "knowledge/tools/kettles",
                           *(f"compositional_skills/grounded/receipts/context-{n}" for n in range(1, 6)),
                           "knowledge/geography/rivers/passage-1"}
    limerick = leaves["compositional_skills/writing/limericks"]
    assert limerick.node.description == "Limericks" and len(limerick.seeds) == 2
    assert limerick.seeds[0].answer.startswith("A cat who would nap in the sink")
    kettle = leaves["knowledge/tools/kettles"]
    assert kettle.node.description == "Household appliances: Teach a model how an electric kettle works."
    assert len(kettle.seeds) == 5 and all(seed.context is None for seed in kettle.seeds)
    assert "Paid in cash" in leaves["compositional_skills/grounded/receipts/context-2"].context
    assert "build a delta" in leaves["knowledge/geography/rivers/passage-1"].context


@pytest.mark.slow
def test_a_version_instructlab_has_not_defined_is_refused_with_its_line(tmp_path):
    root = tmp_path / "taxonomy"
    write(root, "compositional_skills/poems", skill("Write short poems", POEMS))
    future = write(root, "compositional_skills/future", {"created_by": "tester", "version": 4,
                                                          "task_description": "Later", "seed_examples": POEMS})
    v2 = write(root, "compositional_skills/v2_unknown", {**skill("Unknown field", POEMS), "version": 2, "tags": ["x"]})
    tags_line = v2.read_text().splitlines().index("tags:") + 1
    done = distill("taxonomy", "import-instructlab", str(root), "--out", str(tmp_path / "ilab.yaml"), cwd=tmp_path,
                   env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    skipped = [line for line in error_lines(done.stderr) if line.startswith("invalid, not imported: ")]
    assert skipped == [
        f"invalid, not imported: {future}:2: version: 4; distill imports InstructLab schema versions 1, 2 and 3 "
        "(a file without `version:` is version 1)",
        f"invalid, not imported: {v2}:{tags_line}: tags: unknown field 'tags'; InstructLab's schema v2 allows created_by, "
        "seed_examples, task_description, version"], skipped


def test_a_tree_read_in_place_says_where_a_clone_goes_for_it(tmp_path):
    """`distill taxonomy show DIR` (as `generate -t DIR`) reads documents only inside the tree: its warning does
    not send the user to an option that, there, means a folder of their own documents."""
    root = tmp_path / "taxonomy"
    shutil.copytree(FIXTURE, root)
    done = distill("taxonomy", "show", str(root), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    kettles = root / "knowledge/tools/kettles/qna.yaml"
    warnings = [line for line in error_lines(done.stderr) if line.startswith("warning: ")]
    assert warnings == [
        f"warning: {kettles}:17: document.repo https://example.org/kettle-notes.git is not a local folder and distill "
        "reads no network: clone it at commit 0a1b2c3d4e5f and put it inside the taxonomy's folder and point "
        "document.repo at it (a relative path), or import the tree with `distill taxonomy import-instructlab TREE "
        "--documents FOLDER`; the leaf's seeds have no context either (schema before v3), so its items are asked "
        "without a passage until then"], done.stderr
