"""`distill generate --documents DIR` with the loopback API: a leaf's questions are asked about its passages,
closed-book, and each example records where its passage came from (in dataset.jsonl and in run.db)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3

import pytest

from cli_helpers import ROOT, cli_env, distill
from fakeapi import FakeAPI

TAXONOMY = ROOT / "taxonomies" / "clinic-protocols.yaml"
DOCUMENTS = ROOT / "documents" / "clinic-protocols"
PLANTED = "The vaccine refrigerator log at Harbour Lane is countersigned every Friday by the duty pharmacist"


@pytest.mark.slow  # a whole run: 44 items, 88 calls to the loopback API
def test_a_planted_sentence_reaches_its_leafs_prompts_and_the_example_points_at_its_page(tmp_path):
    out = tmp_path / "run"
    with FakeAPI() as api:  # curation off: the fake's answers are random words; the prompts are what is tested
        done = distill("generate", "--taxonomy", str(TAXONOMY), "--teacher", "openai:test-model", "--base-url",
                       api.url + "/v1", "--out", str(out), "--no-preflight", "--no-curate", "--documents",
                       str(DOCUMENTS), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "asked without one: medicines/travel-vaccination" in done.stderr
    with sqlite3.connect(out / "run.db") as db:
        calls = db.execute("SELECT p.node_path, c.step, c.request FROM teacher_calls c JOIN plan_items p "
                           "ON p.id = c.plan_item_id").fetchall()
        stored = {row[0]: json.loads(row[1]) for row in db.execute("SELECT id, body FROM examples")}
    planted = {(path, step) for path, step, request in calls
               if PLANTED in " ".join(json.loads(request)["messages"][-1]["content"].split())}
    # Both steps of both of the leaf's items: the question is asked about the passage, the answer drawn from it.
    assert planted == {("medicines/vaccine-storage", "instruction"), ("medicines/vaccine-storage", "response")}
    examples = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    fridge = [e for e in examples if e["meta"]["taxonomy_path"] == "medicines/vaccine-storage"]
    # Its two passages in turn: the planted page 3 and the vaccine deliveries of page 10.
    assert sorted(e["meta"]["source"]["page"] for e in fridge) == [3, 10]
    for example in [e for e in fridge if e["meta"]["source"]["page"] == 3]:
        source = example["meta"]["source"]
        assert (source["file"], source["page"], source["headings"]) == ("protocols.pdf", 3, ["Medication storage"])
        chunk = next(c for c in map(json.loads, distill("documents", "chunks", str(DOCUMENTS), "--json", cwd=tmp_path,
                                                        env=cli_env(tmp_path)).stdout.splitlines())
                     if c["id"] == source["id"])
        assert PLANTED in " ".join(chunk["text"].split())
        assert (source["start"], source["end"]) == (chunk["start"], chunk["end"])
        assert source["sha256"] == hashlib.sha256(chunk["text"].encode()).hexdigest()
        assert stored[example["id"]]["meta"]["source"] == source  # run.db holds it too
        # Closed-book: the student's turn is the question alone, never the passage.
        user = next(m["content"] for m in example["messages"] if m["role"] == "user")
        assert "countersigned" not in user
    travel = [e for e in examples if e["meta"]["taxonomy_path"] == "medicines/travel-vaccination"]
    assert travel and all("source" not in e["meta"] for e in travel)


@pytest.mark.slow  # a run of 44 items, then the review queue
def test_a_run_configs_documents_folder_is_relative_to_the_config(tmp_path):
    config = tmp_path / "configs" / "clinic.yaml"
    config.parent.mkdir()
    (config.parent / "docs").symlink_to(DOCUMENTS)  # the shipped folder, where the taxonomy's pins point
    with FakeAPI() as api:
        config.write_text(f"taxonomy: {TAXONOMY}\nout: run\nreview: {{size: 4}}\n"
                          f"generate: {{teacher: 'openai:test-model', documents: docs, curate: false, preflight: false,"
                          f" teacher_options: {{base_url: '{api.url}/v1'}}}}\n")
        done = distill("run", str(config), cwd=tmp_path, env=cli_env(tmp_path))  # not from the config's folder
    assert done.returncode == 4, done.stderr  # the review gate stops it after generation, as it should
    examples = [json.loads(line) for line in (config.parent / "run" / "dataset.jsonl").read_text().splitlines()]
    assert {e["meta"].get("source", {}).get("page") for e in examples
            if e["meta"]["taxonomy_path"] == "medicines/vaccine-storage"} == {3, 10}


@pytest.mark.slow  # two runs of 44 items
def test_editing_one_document_asks_again_only_for_the_passages_it_changed(tmp_path):
    project = tmp_path / "project"
    (project / "taxonomies").mkdir(parents=True)
    shutil.copy(TAXONOMY, project / "taxonomies" / TAXONOMY.name)
    shutil.copytree(DOCUMENTS, project / "documents")
    (project / "taxonomies" / TAXONOMY.name).write_text(
        TAXONOMY.read_text().replace("../documents/clinic-protocols/", "../documents/"))

    def run(out: str, api: FakeAPI) -> list[tuple[str, int]]:
        done = distill("generate", "--taxonomy", str(project / "taxonomies" / TAXONOMY.name), "--teacher",
                       "openai:test-model", "--base-url", api.url + "/v1", "--out", str(tmp_path / out),
                       "--no-preflight", "--no-curate", "--documents", str(project / "documents"),
                       cwd=tmp_path, env=cli_env(tmp_path))  # one response cache for both runs
        assert done.returncode == 0, done.stderr
        with sqlite3.connect(tmp_path / out / "run.db") as db:
            return db.execute("SELECT p.node_path, c.cached FROM teacher_calls c JOIN plan_items p "
                              "ON p.id = c.plan_item_id").fetchall()

    with FakeAPI() as api:  # one server: the cache is keyed by the endpoint too
        assert {cached for _, cached in run("first", api)} == {0}
        markdown = project / "documents" / "emergency-procedures.md"
        markdown.write_text(markdown.read_text().replace("read every hour", "read every half hour"))
        again = run("second", api)
    asked = [path for path, cached in again if not cached]
    # The power cut's passage changed: its item's two calls are asked again, and every other answer is reused.
    assert asked == ["emergencies/fire-and-power"] * 2
    assert len(again) == 88  # 44 items, two calls each


@pytest.mark.slow  # a whole run
def test_a_task_that_reads_context_keeps_the_passage_in_the_students_prompt(tmp_path):
    # grounded-qa is open-book: its example's user turn is the passage and the request.
    taxonomy = tmp_path / "taxonomies" / TAXONOMY.name
    taxonomy.parent.mkdir()
    taxonomy.write_text(TAXONOMY.read_text().replace("task: qa", "task: grounded-qa"))
    shutil.copytree(DOCUMENTS, tmp_path / "documents" / DOCUMENTS.name)  # where the taxonomy's pins point
    out = tmp_path / "run"
    with FakeAPI() as api:
        done = distill("generate", "--taxonomy", str(taxonomy), "--teacher", "openai:test-model", "--base-url",
                       api.url + "/v1", "--out", str(out), "--no-preflight", "--no-curate", "--documents",
                       str(tmp_path / "documents" / DOCUMENTS.name), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    examples = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    fridge = [e for e in examples if e["meta"]["taxonomy_path"] == "medicines/vaccine-storage"]
    assert sorted(e["meta"]["source"]["page"] for e in fridge) == [3, 10]  # the leaf's two passages in turn
    for example in [e for e in fridge if e["meta"]["source"]["page"] == 3]:
        user = next(m["content"] for m in example["messages"] if m["role"] == "user")
        assert PLANTED in " ".join(user.split())
