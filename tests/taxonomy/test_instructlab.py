"""InstructLab taxonomies: `distill taxonomy import-instructlab` on a tree written here (grounded and plain
skills, knowledge with a local document and with only a remote repo, and every kind of invalid file), the
imported taxonomy planned and generated with the loopback API, and a taxonomy folder given as `--taxonomy`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from cli_helpers import cli_env, distill, error_lines
from distill.records import Example, read_jsonl
from distill.taxonomy import build_plan, load_taxonomy
from fakeapi import FakeAPI
from instructlab_helpers import POEMS, skill, write

EMAILS = [{"context": f"Hi all, the planning meeting moves to March {day}. Please bring the {topic} figures.",
           "question": "When is the planning meeting?", "answer": f"On March {day}."}
          for day, topic in zip(range(3, 8), ("sales", "budget", "hiring", "audit", "travel"))]
TONSIL_DOC = ("# Tonsils\n\nThe palatine tonsils are two oval lymphoid organs at the back of the throat.\n\n"
              "Tonsillitis is an inflammation of the tonsils, most often caused by a virus.\n")


def knowledge(repo: str, domain: str = "Anatomy") -> dict:
    return {"version": 3, "created_by": "tester", "domain": domain,
            "document_outline": "The tonsils: where they are and what inflames them",
            "seed_examples": [{"context": f"Fact {n}: the tonsils sit at the back of the throat, part {n}.",
                               "questions_and_answers": [
                                   {"question": f"Where are the tonsils ({n}.{k})?", "answer": f"At the back of the "
                                    f"throat ({n}.{k})."} for k in range(3)]} for n in range(1, 6)],
            "document": {"repo": repo, "commit": "0123456789abcdef", "patterns": ["*.md"]}}


def valid_tree(root: Path, tonsils_repo: str) -> None:
    write(root, "compositional_skills/writing/poems", skill("Write short poems on a theme", POEMS))
    brief = [{**poem, "question": poem["question"] + " Be brief."} for poem in POEMS]
    write(root, "compositional_skills/writing", skill("Write short texts", brief))
    write(root, "compositional_skills/grounded/Email Dates", skill("Find the meeting date in an email", EMAILS))
    write(root, "knowledge/anatomy/tonsils", knowledge(tonsils_repo))


def invalid_tree(root: Path) -> list[tuple[str, int | None, str]]:
    """One file of each kind of mistake (one with two); returns (folder, line, what the message must say)."""
    write(root, "compositional_skills/old_version", {**skill("Old", POEMS), "version": 4})
    write(root, "compositional_skills/few_seeds", {**skill("Few", POEMS[:4]), "tags": ["poetry"]})
    unknown = skill("Unknown", POEMS)
    unknown["seed_examples"] = [{**POEMS[0], "rating": 5}, *POEMS[1:]]
    write(root, "compositional_skills/unknown_field", unknown)
    (root / "compositional_skills/wrong_name").mkdir(parents=True)
    (root / "compositional_skills/wrong_name/qna.yml").write_text(yaml.safe_dump(skill("Misnamed", POEMS)))
    write(root, "compositional_skills/bad_yaml", "version: 3\ncreated_by: tester\ntask_description: [unclosed\n"
                                                "seed_examples: []\n")
    write(root, "compositional_skills/blank_answer", skill("Blank", [*POEMS[:4], {**POEMS[4], "answer": "  "}]))
    no_task = skill("Missing", POEMS)
    del no_task["task_description"]
    write(root, "compositional_skills/missing_field", no_task)
    write(root, "compositional_skills/empty", "# nothing yet\n")
    few_pairs = knowledge("https://example.org/docs.git")
    few_pairs["seed_examples"][2]["questions_and_answers"].pop()
    write(root, "knowledge/few_pairs", few_pairs)
    return [
        ("compositional_skills/old_version", 1, "version: 4; distill imports InstructLab schema versions 1, 2 and 3"),
        ("compositional_skills/few_seeds", 4, "seed_examples: 4 seed examples; InstructLab needs at least 5"),
        ("compositional_skills/few_seeds", 21, "tags: unknown field 'tags'"),
        ("compositional_skills/unknown_field", 9, "seed_examples.0.rating: unknown field 'rating'"),
        ("compositional_skills/bad_yaml", 4, "malformed YAML"),
        ("compositional_skills/missing_field", 1, "(top level): missing required field 'task_description'"),
        ("compositional_skills/empty", None, "empty file"),
        ("compositional_skills/blank_answer", 22, "seed_examples.4.answer: only blanks; write the text"),
        ("compositional_skills/wrong_name", None, "InstructLab reads only files named qna.yaml; rename it"),
        ("knowledge/few_pairs", 23, "seed_examples.2.questions_and_answers: 2 question-and-answer pairs; "
                                      "InstructLab needs at least 3"),
    ]


def generate_with_fake_api(taxonomy: Path, out: Path, tmp_path: Path):
    """`distill generate` with the loopback API. Curation is off: the fake's answers are random words, and
    what is tested here is that every item is generated from its leaf's passage, not what curation keeps."""
    with FakeAPI() as api:
        done = distill("generate", "--taxonomy", str(taxonomy), "--teacher", "openai:test-model", "--base-url",
                       api.url + "/v1", "--out", str(out), "--no-preflight", "--no-curate", cwd=tmp_path,
                       env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    return done, [Example.model_validate(row) for row in read_jsonl(out / "dataset.jsonl")]


@pytest.mark.slow
def test_import_converts_every_valid_leaf_and_lists_every_invalid_file(tmp_path):
    root = tmp_path / "taxonomy"
    valid_tree(root, "https://github.com/example/tonsil-docs.git")
    expected = invalid_tree(root)
    (tmp_path / "docs" / "tonsil-docs").mkdir(parents=True)
    (tmp_path / "docs" / "tonsil-docs" / "tonsils.md").write_text(TONSIL_DOC)
    write(root, "knowledge/remote_only", knowledge("https://github.com/example/elsewhere.git", "History"))
    # Another folder whose name makes the same node name as "Email Dates".
    twin = write(root, "compositional_skills/grounded/email-dates", skill("Find the sender", EMAILS))

    out = tmp_path / "taxonomies" / "ilab.yaml"
    done = distill("taxonomy", "import-instructlab", str(root), "--out", str(out), "--documents",
                   str(tmp_path / "docs"), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert f"imported {out}: 13 leaves, 45 seeds, 6 seed and passage files; 10 invalid qna.yaml files skipped" \
        in " ".join(done.stdout.split())
    lines = error_lines(done.stderr)
    # Every invalid file, each on its own line with its file, line and reason; nothing else is skipped.
    skipped = [line for line in lines if line.startswith("invalid, not imported: ")]
    assert len(skipped) == len(expected) + 1, lines
    assert f"invalid, not imported: {twin}: its folder names the same node as {root}/compositional_skills/grounded/" \
           "Email Dates/qna.yaml (compositional_skills/grounded/email-dates); rename one of the folders" in skipped
    for folder, line, reason in expected:
        file = root / folder / ("qna.yml" if folder.endswith("wrong_name") else "qna.yaml")
        where = f"{file}:{line}: " if line else f"{file}: "
        assert any(where in entry and reason in entry for entry in skipped), (folder, skipped)
    # Only a remote repo, and no clone of it in --documents: a warning, and its seed contexts stand in.
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(warnings) == 1 and "knowledge/remote_only/qna.yaml" in warnings[0] and "no file in" in warnings[0]

    loaded = load_taxonomy(out)
    leaves = {leaf.path: leaf for leaf in loaded.leaves}
    assert set(leaves) == {
        "compositional_skills/writing/poems",
        "compositional_skills/writing/writing",  # writing/qna.yaml, beside writing/poems/qna.yaml
        *(f"compositional_skills/grounded/email-dates/context-{n}" for n in range(1, 6)),
        "knowledge/anatomy/tonsils/passage-1",
        *(f"knowledge/remote_only/context-{n}" for n in range(1, 6)),
    }
    assert leaves["compositional_skills/writing/poems"].context is None
    assert "March 3" in leaves["compositional_skills/grounded/email-dates/context-1"].context
    assert leaves["knowledge/anatomy/tonsils/passage-1"].context.strip() == TONSIL_DOC.strip()
    # Seeds keep their contexts and answers; a knowledge leaf gives one seed a question-and-answer pair.
    poems = leaves["compositional_skills/writing/poems"].seeds
    assert [s.answer for s in poems] == [p["answer"] for p in POEMS] and all(s.context is None for s in poems)
    assert all(s.question.endswith("Be brief.") for s in leaves["compositional_skills/writing/writing"].seeds)
    tonsil_seeds = leaves["knowledge/anatomy/tonsils/passage-1"].seeds
    assert len(tonsil_seeds) == 15 and all(s.context.startswith("Fact ") for s in tonsil_seeds)
    assert loaded.task.name == "grounded-qa"
    assert (out.parent / "ilab-seeds" / "knowledge" / "anatomy" / "tonsils" / "passage-1.md").is_file()

    # The imported taxonomy plans and generates: grounded leaves ask and answer with their passage.
    assert len(build_plan(loaded)) == 3 * len(leaves)
    again = distill("taxonomy", "import-instructlab", str(root), "--out", str(out), cwd=tmp_path,
                    env=cli_env(tmp_path))
    assert again.returncode == 2 and "already exists; pass --force" in again.stderr
    _, examples = generate_with_fake_api(out, tmp_path / "run", tmp_path)
    assert len(examples) == 3 * len(leaves)
    for example in examples:
        context = leaves[example.meta.taxonomy_path].context
        user = example.messages[1].content
        if context:
            assert user.startswith(context.strip()) and user != context.strip()
        else:
            assert "Passage" not in user and "March" not in user and user.endswith("?")
    assert any(e.meta.taxonomy_path.startswith("knowledge/anatomy") and "lymphoid organs" in e.messages[1].content
               for e in examples)


@pytest.mark.slow
def test_nothing_valid_is_an_error_listing_every_file(tmp_path):
    root = tmp_path / "taxonomy"
    expected = invalid_tree(root)
    out = tmp_path / "ilab.yaml"
    done = distill("taxonomy", "import-instructlab", str(root), "--out", str(out), cwd=tmp_path,
                   env=cli_env(tmp_path))
    assert done.returncode == 2
    lines = error_lines(done.stderr)
    assert len([line for line in lines if line.startswith("invalid, not imported: ")]) == len(expected)
    assert lines[-1].startswith(f"error: {root}: no valid InstructLab qna.yaml to import (9 invalid files")
    assert "Traceback" not in done.stderr and not out.exists()
    (tmp_path / "empty").mkdir()
    empty = distill("generate", "--taxonomy", str(tmp_path / "empty"), cwd=tmp_path, env=cli_env(tmp_path))
    assert empty.returncode == 2 and error_lines(empty.stderr) == [
        f"error: {tmp_path / 'empty'}: no qna.yaml file below this folder; give the root folder of an InstructLab "
        "taxonomy (or the path of a taxonomy YAML file)"]


@pytest.mark.slow
def test_a_taxonomy_folder_is_a_taxonomy_path(tmp_path):
    root = tmp_path / "my_taxonomy"
    docs = root / "docs" / "tonsil-docs"  # documents are read only inside the taxonomy's tree (or --documents)
    docs.mkdir(parents=True)
    (docs / "tonsils.md").write_text(TONSIL_DOC)
    valid_tree(root, "../../../docs/tonsil-docs")  # a local repo: relative to the qna.yaml's folder
    write(root, "compositional_skills/few_seeds", skill("Few", POEMS[:2]))
    remote = write(root, "knowledge/history/remote", knowledge("https://github.com/example/history.git", "History"))

    shown = distill("taxonomy", "validate", str(root), cwd=tmp_path, env=cli_env(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert "ok" in shown.stdout and "13 leaves" in shown.stdout
    lines = error_lines(shown.stderr)
    assert len(lines) == 2, lines
    assert lines[0].startswith("invalid, not imported: ") and \
        "few_seeds/qna.yaml:4: seed_examples: 2 seed examples" in lines[0]
    # Only a remote repo: said once, with what to do; its seed contexts are the leaf's passages meanwhile.
    assert lines[1].startswith(f"warning: {remote}:47: document.repo https://github.com/example/history.git is not a "
                               "local folder")
    assert "clone it at commit 0123456789ab and put it inside the taxonomy's folder" in lines[1]

    done, examples = generate_with_fake_api(root, tmp_path / "run", tmp_path)
    assert done.stderr.count("invalid, not imported: ") == 1 and done.stderr.count("warning: ") == 1
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["counts"]["planned"] == 39 and stats["counts"]["failed"] == 0
    assert {e.meta.taxonomy for e in examples} == {"my_taxonomy"}
    by_leaf = {e.meta.taxonomy_path: e for e in examples}
    assert any("lymphoid organs" in e.messages[1].content for path, e in by_leaf.items() if "tonsils" in path)
    assert all("March" in e.messages[1].content for path, e in by_leaf.items() if "email-dates" in path)
    assert all("the tonsils sit at the back" in e.messages[1].content for path, e in by_leaf.items()
               if "history/remote" in path)
    # The folder loads again as the same taxonomy (review regenerate --taxonomy takes it).
    assert load_taxonomy(root).name == "my_taxonomy"


@pytest.mark.model
def test_a_grounded_skill_with_the_embedded_model(tmp_path):
    import torch

    from distill.generate.runner import GenerateOptions, generate
    from distill.teachers.registry import TeacherOptions, make_teacher

    torch.set_num_threads(1)
    root = tmp_path / "taxonomy"
    write(root, "compositional_skills/grounded/email_dates", skill("Find the meeting date in an email", EMAILS))
    teacher = make_teacher("local", TeacherOptions(batch_size=2))
    report = generate(GenerateOptions(taxonomy=root, out=tmp_path / "run", limit=2, progress=False),
                      teacher_factory=lambda: teacher)
    counts = report.stats["counts"]
    assert counts["planned"] == 2 and counts["generated"] == 2 and counts["failed"] == 0
    with sqlite3.connect(tmp_path / "run" / "run.db") as db:
        asked = [(step, json.loads(request)["messages"][-1]["content"])
                 for step, request in db.execute("SELECT step, request FROM teacher_calls")]
    # Both steps of both items were asked with the item's own email in the prompt.
    assert sorted(step for step, _ in asked) == ["answer", "answer", "question", "question"]
    assert all(prompt.startswith("Passage:\nHi all, the planning meeting moves to March") if step == "question"
               else prompt.startswith("Hi all, the planning meeting moves to March") for step, prompt in asked)
    for example in (Example.model_validate(row) for row in read_jsonl(tmp_path / "run" / "dataset.jsonl")):
        assert example.messages[1].content.startswith("Hi all, the planning meeting moves to March")


def test_contexts_come_through_the_written_taxonomy_unchanged(tmp_path):
    contexts = ["Line one  \nline two\twith a tab\n\nand a paragraph", "Windows\r\nline ends",
                "A line\u2028separator", "first\n  indented second line", "Plain context."]
    seeds = [{"context": text, "question": f"What does context {n} say?", "answer": f"Answer {n}."}
             for n, text in enumerate(contexts)]
    # JSON is YAML: its escapes keep every character of the contexts.
    write(tmp_path / "taxonomy", "compositional_skills/odd_text", json.dumps(skill("Read odd text", seeds)))
    # A block scalar's closing line break (`answer: |`) is not part of the text.
    write(tmp_path / "taxonomy", "compositional_skills/block", "version: 3\ncreated_by: t\ntask_description: Block\n"
          "seed_examples:\n" + "".join(f"  - question: |\n      Question {n}?\n    answer: |\n      Answer {n}.\n"
                                        for n in range(5)))
    out = tmp_path / "odd.yaml"
    done = distill("taxonomy", "import-instructlab", str(tmp_path / "taxonomy"), "--out", str(out), cwd=tmp_path,
                   env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    loaded = load_taxonomy(out)
    block, *odd = loaded.leaves
    assert [(s.question, s.answer) for s in block.seeds] == [(f"Question {n}?", f"Answer {n}.") for n in range(5)]
    assert [leaf.context for leaf in odd] == contexts
    assert [seed.context for seed in odd[0].seeds] == contexts
