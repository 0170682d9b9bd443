"""The judged checks: the label round trip and the topic judge, through the real SDKs against the loopback
server (scripted agreeing and disagreeing verdicts) and with the embedded model; every call recorded,
nothing paid twice."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import TINY, cli_env, distill
from distill.curate.judge import LABEL_STEP, TOPIC_STEP, Judge, LabelTask, label_request, read_label
from distill.curate.pipeline import CurateConfig
from distill.curate.steps.judged import JudgedChecks
from distill.executors.local import curate
from distill.generate.runner import GenerateOptions, generate
from distill.records import Example, ExampleMeta, Message
from distill.store import RunStore
from distill.teachers.local.choices import finite_outputs
from distill.teachers.registry import make_teacher, teacher_options
from fakeapi import FakeAPI, Faults

KEY = "sk-test-judge-0000"
LABELS = {"refund_request": "The customer wants their money back", "login_problem": "The customer cannot sign in"}


@pytest.fixture(autouse=True)
def env(request, tmp_path, monkeypatch):
    if request.node.get_closest_marker("model"):
        return  # DISTILL_CACHE_DIR also holds the converted embedded model: keep the real one
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def user_text(request: dict) -> str:
    return [m for m in request["messages"] if m["role"] == "user"][-1]["content"]


def always(label: str):
    return lambda request, schema: {"label": label} if "label" in schema["properties"] else None


def run(api: FakeAPI, out: Path, taxonomy: str = "tickets", **overrides):
    # The fake server writes word salad: the lexical checks would (rightly) reject it, so they stay out of
    # these tests of the judged ones (the very switch an ablation uses).
    overrides.setdefault("skip_checks", ["off_topic", "self_contained"])
    options = GenerateOptions(
        taxonomy=TINY / f"{taxonomy}.yaml", teacher="openai:gpt-4o-mini", out=out, progress=False,
        teacher_options=teacher_options(base_url=api.url + "/v1", timeout_s=2, max_retries=2, retry_base_s=0.01,
                                        concurrency=4),
        **overrides)
    return generate(options)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def calls(db: Path, step: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM teacher_calls WHERE step = ?", (step,)).fetchone()[0]


def test_label_round_trip_inside_generate_rejects_disagreements_and_never_pays_twice(tmp_path):
    seen: list[dict] = []

    def verdict(request, schema):
        seen.append(request)
        return {"label": "refund_request"}  # this judge calls every ticket a refund request

    with FakeAPI(Faults(verdict=verdict)) as api:
        report = run(api, tmp_path / "run", label_check=True)
        paid = api.total_paid()
        stats = report.stats["curation"]["curate"]
        # tiny-tickets plans 2 refund_request and 2 login_problem items: the judge agrees with half.
        assert stats["judge"][LABEL_STEP] == {"teacher": "openai:gpt-4o-mini", "checked": 4, "agreed": 2,
                                              "disagreed": 2, "removed": 2, "unclear": 0, "failed": 0}
        assert stats["reasons"] == {"label_mismatch": 2} and report.stats["counts"]["kept"] == 2
        rejected = [r for r in rows(tmp_path / "run" / "rejected.jsonl") if r["reason"] == "label_mismatch"]
        assert len(rejected) == 2 and all(r["stage"] == "judge" for r in rejected)
        assert all("planned 'login_problem'" in r["detail"] and "'refund_request'" in r["detail"] for r in rejected)
        kept = rows(tmp_path / "run" / "dataset.jsonl")
        assert {r["output"]["label"] for r in kept} == {"refund_request"}
        # Blind: the request shows the label set and the input, never the planned label.
        assert len(seen) == 4 and len({json.dumps(r["messages"][:-1]) for r in seen}) == 1
        assert {user_text(r) for r in seen} == {r["messages"][1]["content"] for r in rows(tmp_path / "run" / "dataset.jsonl")} | {r["example"]["messages"][1]["content"] for r in rejected}
        assert seen[0]["response_format"]["type"] == "json_schema"  # the API's own structured output
        assert calls(tmp_path / "run" / "run.db", LABEL_STEP) == 4

        again = run(api, tmp_path / "run", label_check=True)  # the verdicts come from run.db
        assert api.total_paid() == paid and calls(tmp_path / "run" / "run.db", LABEL_STEP) == 4
        assert again.stats["curation"]["curate"]["judge"]["calls_from_log"] == 4

        run(api, tmp_path / "other", label_check=True)  # a new run: everything from the response cache
        assert api.total_paid() == paid


def test_label_check_options_fail_before_any_call(tmp_path):
    from distill.errors import DistillError

    with pytest.raises(DistillError, match="--label-check is for classification taxonomies"):
        generate(GenerateOptions(taxonomy=TINY / "qa.yaml", out=tmp_path / "qa", label_check=True, progress=False))
    with pytest.raises(DistillError, match="unknown check 'off_topics'; known checks: .*off_topic"):
        generate(GenerateOptions(taxonomy=TINY / "qa.yaml", out=tmp_path / "qa", skip_checks=["off_topics"],
                                 progress=False))
    assert not (tmp_path / "qa" / "run.db").exists()


def test_topic_judge_decides_off_topic_for_qa(tmp_path):
    said_no: list[str] = []

    def verdict(request, schema):
        if "on_topic" not in schema["properties"]:
            return None
        question = user_text(request)
        on_topic = len(said_no) >= 1 or "Question:" not in question  # the first one asked is off topic
        if not on_topic:
            said_no.append(question)
        return {"on_topic": on_topic}

    with FakeAPI(Faults(verdict=verdict)) as api:
        report = run(api, tmp_path / "run", taxonomy="qa", judge="openai:gpt-4o-mini", skip_checks=["self_contained"])
    stats = report.stats["curation"]["curate"]
    assert TOPIC_STEP in stats["judge"] and LABEL_STEP not in stats["judge"]
    checked = stats["judge"][TOPIC_STEP]["checked"]
    assert checked >= 1 and stats["judge"][TOPIC_STEP]["removed"] == len(said_no) == 1
    off = [r for r in rows(tmp_path / "run" / "rejected.jsonl") if r["reason"] == "off_topic"]
    assert len(off) == 1 and off[0]["stage"] == "judge" and "judged it not about respiratory/" in off[0]["detail"]
    assert off[0]["example"]["messages"][1]["content"] in said_no[0]
    # The lexical off_topic check stood aside: the judge is the only one to reject for it.
    assert all(r["stage"] == "judge" for r in rows(tmp_path / "run" / "rejected.jsonl") if r["reason"] == "off_topic")


def ticket(i: int, text: str, label: str) -> Example:
    answer = json.dumps({"label": label, "rationale": "Because the ticket says so."})
    return Example(id=f"t{i}", messages=[Message(role="system", content="Classify the ticket."),
                                         Message(role="user", content=text), Message(role="assistant", content=answer)],
                   output={"label": label, "rationale": "Because the ticket says so."},
                   meta=ExampleMeta(taxonomy_path="billing", task="classification"))


TICKETS = [
    ("I returned the kettle a month ago and still have no refund. Please send my money back.", "refund_request"),
    ("I cancelled within the trial and want the charge refunded to my card, please.", "refund_request"),
    ("Every time I enter my password the site says it is wrong, even after a reset.", "login_problem"),
    ("The sign-in page keeps looping back to the start and never lets me into my account.", "login_problem"),
    ("Please refund the blender I sent back last week, the money has not arrived.", "login_problem"),  # mislabelled
    ("I cannot log in to my account since the app update; it rejects my password.", "refund_request"),  # mislabelled
]


@pytest.mark.slow
def test_curate_label_check_on_a_plain_dataset_records_its_calls(tmp_path):
    source = tmp_path / "tickets.jsonl"
    source.write_text("".join(ticket(i, text, label).model_dump_json() + "\n" for i, (text, label) in enumerate(TICKETS)))

    def by_keyword(request, schema):
        text = user_text(request).lower()
        return {"label": "refund_request" if "refund" in text or "money" in text else "login_problem"}

    out = tmp_path / "curated"
    command = [sys.executable, "-m", "distill.cli", "curate", str(source), "--out", str(out), "--labels",
               "refund_request,login_problem", "--label-check", "openai:gpt-4o-mini", "--workers", "1"]
    with FakeAPI(Faults(verdict=by_keyword)) as api:
        env = {**os.environ, "OPENAI_BASE_URL": api.url + "/v1"}
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert api.total_paid() == 6
        text = " ".join(done.stdout.split())
        assert "label_check (openai:gpt-4o-mini): checked 6, agreed 4, removed 2" in text
        assert "off_topic skipped: no taxonomy" in text
        stats = json.loads((out / "stats.json").read_text())["curate"]
        assert stats["judge"][LABEL_STEP]["removed"] == 2 and stats["kept"] == 4
        assert {r["id"] for r in rows(out / "rejected.jsonl") if r["reason"] == "label_mismatch"} == {"t4", "t5"}
        assert calls(out / "judge.db", LABEL_STEP) == 6
        # Again, with the response cache bypassed: judge.db alone answers, the server is asked nothing.
        done = subprocess.run([*command, "--no-cache"], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert api.total_paid() == 6 and calls(out / "judge.db", LABEL_STEP) == 6


@pytest.mark.slow
def test_bad_judge_options_are_one_line_errors(tmp_path):
    source = tmp_path / "tickets.jsonl"
    source.write_text(ticket(0, *TICKETS[0]).model_dump_json() + "\n")
    for extra, message in ((["--label-check", "openai:gpt-4o-mini"], "--label-check needs the label set"),
                           (["--judge", "openai:gpt-4o-mini"], "pass --taxonomy FILE too"),
                           (["--label-check", "gpt4", "--labels", "a,b"], "unknown teacher spec 'gpt4'"),
                           (["--skip-check", "nope"], "unknown check 'nope'")):
        done = subprocess.run([sys.executable, "-m", "distill.cli", "curate", str(source), "--out",
                               str(tmp_path / "out"), *extra], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and message in " ".join(done.stderr.split()), (extra, done.stderr)
        assert "Traceback" not in done.stderr


def test_judged_checks_are_refused_on_ray_in_their_own_words_before_anything_runs(tmp_path):
    """The judged checks declare that they run only in this process (one call log); the Ray executor refuses a
    list holding them with that line, before a cluster starts or --out is made."""
    source = tmp_path / "tickets.jsonl"
    source.write_text(ticket(0, *TICKETS[0]).model_dump_json() + "\n")
    for extra in (["--label-check", "openai:gpt-4o-mini", "--labels", "refund_request,login_problem"],
                  ["--judge", "openai:gpt-4o-mini", "--taxonomy", str(TINY / "tickets.yaml")]):
        done = distill("curate", str(source), "--out", str(tmp_path / "out"), "--executor", "ray", *extra,
                       cwd=tmp_path, env=cli_env(tmp_path), timeout=60)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [f"error: {JudgedChecks.local_only}"]
        assert not (tmp_path / "out").exists()


def test_verdict_schemas_are_finite_and_free_text_is_not():
    from distill.curate.judge import label_schema, topic_schema
    from distill.tasks.builtin.models import TicketDraft

    assert finite_outputs(label_schema(["a", "b"])) == ['{"label": "a"}', '{"label": "b"}']
    assert finite_outputs(topic_schema()) == ['{"on_topic": true}', '{"on_topic": false}']
    assert finite_outputs(TicketDraft.model_json_schema()) is None and finite_outputs(None) is None
    assert read_label('```json\n{"label": "b"}\n```', ["a", "b"]) == "b"
    assert read_label("It is about a.", ["a_x", "b_y"]) is None


@pytest.mark.model
def test_label_round_trip_with_the_embedded_model(tmp_path):
    import torch

    torch.set_num_threads(2)
    examples = [ticket(i, text, label) for i, (text, label) in enumerate(TICKETS)]
    shots = [(json.loads(line)["text"], json.loads(line)["label"]) for line in (TINY / "seeds" / "tickets.jsonl").open()]
    config = CurateConfig(labels=list(LABELS), label_descriptions=LABELS, label_shots=shots, label_check=True,
                          label_instructions="Classify the customer's support ticket.", workers=1)
    store = RunStore(tmp_path / "run.db")
    made = []

    def local():
        made.append(make_teacher("local"))
        return made[-1]

    try:
        judge = Judge("local", local, store)
        result = curate(examples, config, judge=judge)
        stats = result.judge_info[LABEL_STEP]
        # Constrained decoding: every verdict is one of the labels, however weak the model.
        assert stats["checked"] == 6 and stats["unclear"] == 0 and stats["failed"] == 0
        assert stats["agreed"] + stats["disagreed"] == 6
        assert judge.asked == 6
        removed = {r.id for r in result.rejects if r.reason == "label_mismatch"}
        # The two mislabelled tickets are caught; the 135M model also misreads one of the four correct ones
        # (t2, a password ticket, as refund_request): measured, greedy, the same every run.
        assert {"t4", "t5"} <= removed and len(removed) <= 3
        store.window.commit()
        assert calls(tmp_path / "run.db", LABEL_STEP) == 6
        again = Judge("local", local, store)
        curate(examples, config, judge=again)
        assert again.asked == 0 and again.found == 6  # a re-run answers from run.db
    finally:
        store.close()


def test_label_request_is_blind():
    a = label_request(ticket(0, "Refund me please, I sent it back.", "refund_request"), LabelTask(LABELS))
    b = label_request(ticket(0, "Refund me please, I sent it back.", "login_problem"), LabelTask(LABELS))
    assert a.messages == b.messages and a.json_schema == b.json_schema
