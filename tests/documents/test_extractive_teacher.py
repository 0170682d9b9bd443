"""The loopback extractive teacher of the measured document recipe (tests/fakeapi/documents.py) and its answer
key (tests/fakeapi/clinic_facts.json, written by scripts/make_documents.py): the key must hold to the shipped
documents, and a `distill generate --documents` run against the teacher must give examples that do too."""

from __future__ import annotations

import json

import pytest

from cli_helpers import ROOT, cli_env, distill
from distill.curate.faithfulness import unsupported
from fakeapi import FakeAPI, Faults
from fakeapi.documents import ExtractiveTeacher, load_facts, squash

TAXONOMY = ROOT / "taxonomies" / "clinic-protocols.yaml"
DOCUMENTS = ROOT / "documents" / "clinic-protocols"


def test_every_fact_of_the_answer_key_is_written_in_one_chunk_and_every_chunk_holds_one(tmp_path):
    done = distill("documents", "chunks", str(DOCUMENTS), "--json", cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    chunks = [json.loads(line) for line in done.stdout.splitlines()]
    facts = [fact for fact in load_facts() if fact.sentence is not None]
    for fact in facts:
        holding = [c for c in chunks if squash(fact.sentence) in squash(c["text"])]
        assert len(holding) == 1, fact.sentence  # the teacher finds it in the one passage it is about
        assert unsupported(fact.answer, holding[0]["text"], fact.questions[0]) is None, fact.answer
        assert len(fact.questions) >= 2  # a phrasing to train on and another to hold out
    bare = [c for c in chunks if c["file"] != "visitors.txt"
            and not any(squash(f.sentence) in squash(c["text"]) for f in facts)]
    assert not bare, [(c["file"], c["headings"]) for c in bare]  # no passage the teacher cannot ask about


def test_the_same_request_again_gets_another_phrasing_and_the_answer_is_its_facts():
    teacher = ExtractiveTeacher()
    fact = next(f for f in teacher.facts if f.sentence and "spill kit" in f.sentence)
    ask = {"messages": [{"role": "user", "content": f"Passage from protocols.pdf, page 1:\n{fact.sentence}\n\n"
                                                     "Write one new question about Hand Hygiene that this passage "
                                                     "answers.\nReply with the question only."}]}
    asked = [teacher(ask) for _ in fact.questions]
    assert sorted(asked) == sorted(fact.questions)  # a sampling teacher's different answers to one prompt
    answer = teacher({"messages": [{"role": "user", "content": f"Answer from this passage of protocols.pdf:\n"
                                                                f"{fact.sentence}\n\nQuestion: {asked[0]}"}]})
    assert answer == fact.answer


@pytest.mark.slow  # a whole run: 44 items, 88 calls to the loopback teacher, curation on
def test_a_run_against_the_teacher_keeps_answers_drawn_from_their_own_passages(tmp_path):
    out = tmp_path / "run"
    with FakeAPI(Faults(teacher=ExtractiveTeacher())) as api:
        done = distill("generate", "--taxonomy", str(TAXONOMY), "--teacher", "openai:loopback-extractive-teacher",
                       "--base-url", api.url + "/v1", "--out", str(out), "--no-preflight", "--documents",
                       str(DOCUMENTS), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    answers = {q: f for f in load_facts() for q in f.questions}
    passages = json.loads((out / "documents.json").read_text())["passages"]
    examples = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    grounded = [e for e in examples if "source" in e["meta"]]
    assert len(grounded) >= 30
    for example in grounded:
        question, answer = (m["content"] for m in example["messages"] if m["role"] in ("user", "assistant"))
        fact = answers[question]
        assert answer == fact.answer
        assert squash(fact.sentence) in squash(passages[example["meta"]["source"]["id"]])
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert not [r for r in rejected if r["reason"] in ("unfaithful", "leaning_phrase")]  # it keeps to the checks
