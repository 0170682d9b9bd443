"""--batch: OpenAI Batch API and Anthropic Message Batches through the real SDKs against the loopback server.

Every plan item accounted for at batch prices, failed and expired requests resubmitted, a request that
never succeeds failed with its error, a job open at kill -9 collected (not resubmitted) by the re-run,
and no key in any file. A job is created once: not again when the create's reply is lost, nor when the
run is killed while the create is in flight; an Anthropic lookup that cannot tell our job from another
fails clearly; a server refusing json_schema in batch lines gets json_object.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from cli_helpers import ROOT
from distill.errors import RunFailed
from distill.generate.runner import GenerateOptions, generate
from distill.records import GenerationRequest, Message, ToolCall, ToolFunction
from distill.store import MIGRATIONS, RunStore
from distill.teachers.http.cost import PriceTable
from distill.teachers.registry import teacher_options
from distill.teachers.stack import build_teacher
from fakeapi import AgentReply, FakeAPI, Faults
from fakeapi.outcomes import expected_outcomes, recorded_outcomes

TINY = ROOT / "tests" / "fixtures" / "tiny"
KEYS = {"openai": "sk-test-BATCH-NEVER-WRITE-9d1e", "anthropic": "sk-ant-test-BATCH-NEVER-WRITE-3b7f"}
SPECS = {"openai": "openai:gpt-4o-mini", "anthropic": "anthropic:claude-haiku-4-5"}
FAST = {"batch_poll_s": 0.05, "batch_collect_s": 0.1}  # the defaults (30 s, 2 s) suit real providers

providers = pytest.mark.parametrize("provider", ["openai", "anthropic"])


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEYS["anthropic"])
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


def base_url(api: FakeAPI, provider: str) -> str:
    return api.url + "/v1" if provider == "openai" else api.url


def run(api: FakeAPI, out: Path, provider: str, taxonomy: str = "qa", preflight: bool = True,
        retry_failed: bool = False, **teacher):
    extra = dict(base_url=base_url(api, provider), timeout_s=2.0, max_retries=2, retry_base_s=0.01, concurrency=4,
                 batch=True, **FAST)
    extra.update(teacher)
    options = GenerateOptions(taxonomy=TINY / f"{taxonomy}.yaml", teacher=SPECS[provider], out=out, curate=False,
                              progress=False, preflight=preflight, retry_failed=retry_failed,
                              teacher_options=teacher_options(**extra))
    return generate(options)


def jobs(api: FakeAPI, provider: str) -> dict:
    return api.batches if provider == "openai" else api.anthropic_batches


def ours(api: FakeAPI, provider: str) -> list[str]:
    """The ids of the jobs this client made, oldest first (not the other clients' that Faults adds)."""
    return [job_id for job_id, job in jobs(api, provider).items() if not job.get("foreign")]


def cli_args(api: FakeAPI, provider: str, tmp_path: Path) -> list[str]:
    config = tmp_path / "api.yaml"
    config.write_text(f"{provider}: {json.dumps(FAST)}\n")
    return [sys.executable, "-m", "distill.cli", "generate", "--taxonomy", str(TINY / "qa.yaml"),
            "--teacher", SPECS[provider], "--out", str(tmp_path / "run"), "--base-url", base_url(api, provider),
            "--batch", "--api-config", str(config), "--no-curate"]


def kill_when(proc: subprocess.Popen, ready) -> None:
    deadline = time.monotonic() + 60
    while not ready() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert ready(), "the run ended or stalled before the moment to kill it"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def sent_bodies(api: FakeAPI, provider: str) -> list[dict]:
    if provider == "openai":
        return [line["body"] for batch in api.batches.values() for line in batch["lines"]]
    return [entry["params"] for batch in api.anthropic_batches.values() for entry in batch["requests"]]


def stored(out: Path, query: str) -> list[tuple]:
    store = RunStore(out / "run.db")
    try:
        return store.db.execute(query).fetchall()
    finally:
        store.close()


def statuses(out: Path) -> dict[str, int]:
    return dict(Counter(status for (status,) in stored(out, "SELECT status FROM plan_items")))


def rejected(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]


def files_with(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


@providers
def test_batch_run_accounts_for_every_item_at_batch_price(tmp_path, provider):
    faults = Faults(expect_key=KEYS[provider], content={"refusal": 0.25, "length": 0.25})
    with FakeAPI(faults) as api:
        report = run(api, tmp_path / "run", provider)
        assert api.log and all(path.startswith(("/v1/files", "/v1/batches", "/v1/messages/batches"))
                               for path in (e["path"] for e in api.log))  # nothing went to the online endpoints
    counts = statuses(tmp_path / "run")
    assert sum(counts.values()) == 4 and "pending" not in counts and "failed" not in counts
    assert len(rejected(tmp_path / "run")) == counts.get("rejected", 0)
    expected = expected_outcomes(api, tmp_path / "run", "qa", provider)
    assert recorded_outcomes(tmp_path / "run") == expected  # each item's reason is the one its fault calls for
    assert "kept" in expected.values() and set(expected.values()) - {"kept"}  # the faults landed on some items
    assert {r["id"]: r["reason"] for r in rejected(tmp_path / "run")} == {
        item: reason for item, reason in expected.items() if reason != "kept"}
    # One job per round of requests: questions, then answers.
    assert len(jobs(api, provider)) == 2 and set(api.requests.values()) == {1}
    model = SPECS[provider].partition(":")[2]
    calls = stored(tmp_path / "run", "SELECT usage FROM teacher_calls WHERE error IS NULL")
    assert calls
    for (usage,) in calls:
        usage = json.loads(usage)
        online = PriceTable().cost(model, usage["prompt_tokens"], usage["completion_tokens"])
        assert usage["cost_usd"] == pytest.approx(online / 2) and usage["cost_usd"] > 0
    total = sum(json.loads(u)["cost_usd"] for (u,) in calls)
    assert report.stats["usage"]["cost_usd"] == pytest.approx(total)
    rows = stored(tmp_path / "run", "SELECT job_id, status, finished_at FROM batch_jobs ORDER BY id")
    assert [r[0] for r in rows] == list(jobs(api, provider)) and all(r[2] for r in rows)
    assert files_with(tmp_path, KEYS[provider]) == [] and files_with(tmp_path, KEYS[provider][-8:]) == []


@providers
def test_structured_output_is_in_the_batch_body(tmp_path, provider):
    with FakeAPI() as api:
        report = run(api, tmp_path / "run", provider, taxonomy="tickets")
    assert report.stats["counts"]["kept"] == 4 and len(jobs(api, provider)) == 1
    for body in sent_bodies(api, provider):
        if provider == "openai":
            assert body["response_format"]["type"] == "json_schema"
            assert "label" in json.dumps(body["response_format"]["json_schema"]["schema"])
        else:
            assert body["tool_choice"] == {"type": "tool", "name": "output"} and body["tools"][0]["input_schema"]


@providers
def test_failed_and_expired_requests_are_resubmitted_and_kept(tmp_path, provider):
    with FakeAPI(Faults(batch_fail_first=1, batch_expire_first=1)) as api:
        report = run(api, tmp_path / "run", provider)
    assert statuses(tmp_path / "run") == {"generated": 4} and report.stats["counts"]["kept"] == 4
    assert set(api.requests.values()) == {3}  # expired, then failed, then answered
    assert set(api.paid.values()) == {1} and len(api.paid) == 8
    assert len(jobs(api, provider)) == 6  # three submissions in each of the two rounds
    store_rows = stored(tmp_path / "run", "SELECT COUNT(*) FROM batch_requests")
    assert store_rows == [(24,)]  # every submission of every request is on record


@providers
def test_request_failing_every_attempt_ends_failed_with_its_error(tmp_path, provider):
    with FakeAPI(Faults(batch_fail_first=99)) as api:
        with pytest.raises(RunFailed, match="nothing was kept: 4 of 4 items failed"):
            run(api, tmp_path / "run", provider, batch_attempts=2)
    counts = json.loads((tmp_path / "run" / "stats.json").read_text())["counts"]
    assert statuses(tmp_path / "run") == {"failed": 4} and counts["failed"] == 4
    assert set(api.requests.values()) == {2} and not api.paid  # two attempts each, nothing billed
    details = [r["detail"] for r in rejected(tmp_path / "run")]
    assert len(details) == 4 and all(r["reason"] == "teacher_failed" for r in rejected(tmp_path / "run"))
    assert all("injected" in d for d in details), details


def test_budget_reserves_at_batch_price():
    online = build_teacher("openai:gpt-4o-mini", teacher_options(base_url="http://127.0.0.1:9/v1"))
    batch = build_teacher("openai:gpt-4o-mini", teacher_options(base_url="http://127.0.0.1:9/v1", batch=True))
    from distill.records import Message
    from distill.teachers.base import GenerationRequest

    request = GenerationRequest(key="k", messages=[Message(role="user", content="How do inhalers work?" * 20)])
    assert batch.price_request(request) == pytest.approx(online.price_request(request) / 2)
    assert batch.batch_size > 1000 and batch.collect_s > 0


@pytest.mark.slow
@providers
def test_kill_9_while_polling_then_rerun_collects_the_job(tmp_path, provider):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    poll = "/v1/batches/batch_1" if provider == "openai" else "/v1/messages/batches/msgbatch_1"
    with FakeAPI(Faults(batch_delay_s=600)) as api:  # the first job stays open until the kill
        args = cli_args(api, provider, tmp_path)
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Polling starts only after the job id is committed to run.db: two polls seen, then kill.
        kill_when(proc, lambda: sum(e["path"] == poll for e in api.log) >= 2)
        assert len(jobs(api, provider)) == 1 and not api.paid
        open_jobs = stored(tmp_path / "run", "SELECT job_id, finished_at FROM batch_jobs")
        assert open_jobs == [(poll.rsplit("/", 1)[1], None)]
        api.faults.batch_delay_s = 0.05  # the provider finishes the job while nobody watches
        done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert statuses(tmp_path / "run") == {"generated": 4}
    assert len(jobs(api, provider)) == 2  # the open job collected, then the answers' job: no resubmission
    assert set(api.requests.values()) == {1} and set(api.paid.values()) == {1} and len(api.paid) == 8
    assert all(finished for (finished,) in stored(tmp_path / "run", "SELECT finished_at FROM batch_jobs"))
    assert files_with(tmp_path, KEYS[provider]) == []


@providers
@pytest.mark.parametrize("lost", [500, "disconnect", "drop"])
def test_create_whose_reply_is_lost_is_looked_up_before_it_is_created_again(tmp_path, provider, lost):
    # 500 / "disconnect": the provider made the job, then the reply was lost. "drop": it made none.
    # 150 jobs of other clients follow each of ours, so the lookup has to page past them.
    with FakeAPI(Faults(batch_create_script=[lost], batch_neighbours=150)) as api:
        report = run(api, tmp_path / "run", provider)
    assert statuses(tmp_path / "run") == {"generated": 4} and report.stats["counts"]["failed"] == 0
    assert len(ours(api, provider)) == 2  # one job a round: the first adopted (or, never made, made once)
    assert set(api.requests.values()) == {1} and set(api.paid.values()) == {1} and len(api.paid) == 8
    rows = stored(tmp_path / "run", "SELECT job_id, submission, finished_at FROM batch_jobs ORDER BY id")
    assert [r[0] for r in rows] == ours(api, provider) and all(r[2] for r in rows)
    assert all(re.fullmatch(r"[0-9a-f]{32}", r[1]) for r in rows)
    if provider == "openai":  # the job carries our submission id: that is how the lookup knows it
        assert [api.batches[r[0]]["request"]["metadata"]["distill_submission"] for r in rows] == [r[1] for r in rows]


@providers
def test_a_job_that_lists_late_is_still_found_before_it_is_created_again(tmp_path, provider):
    # The provider made the job but lost the reply, and lists a new job only 0.2 s after making it:
    # one lookup at once would miss it and pay for a second job.
    with FakeAPI(Faults(batch_create_script=[500], batch_list_delay_s=0.2)) as api:
        run(api, tmp_path / "run", provider, preflight=False)
    assert statuses(tmp_path / "run") == {"generated": 4}
    assert len(ours(api, provider)) == 2 and set(api.paid.values()) == {1}  # two rounds, one job each


@pytest.mark.slow
@providers
def test_kill_9_while_the_create_reply_is_held_then_rerun_adopts_the_job(tmp_path, provider):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The provider makes the first job and holds its reply: the client is killed before it learns the id.
    with FakeAPI(Faults(batch_create_script=["hold"], slow_s=600)) as api:
        args = cli_args(api, provider, tmp_path)
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kill_when(proc, lambda: len(ours(api, provider)) == 1)
        ((job_id, status, submission),) = stored(tmp_path / "run", "SELECT job_id, status, submission FROM batch_jobs")
        assert (job_id, status) == (None, "submitting") and submission  # the intent was on record first
        done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert statuses(tmp_path / "run") == {"generated": 4}
    assert len(ours(api, provider)) == 2  # the held job adopted, then the answers' job: none twice
    assert set(api.requests.values()) == {1} and set(api.paid.values()) == {1} and len(api.paid) == 8
    rows = stored(tmp_path / "run", "SELECT job_id, submission, finished_at FROM batch_jobs ORDER BY id")
    assert [r[0] for r in rows] == ours(api, provider) and rows[0][1] == submission and all(r[2] for r in rows)


def test_server_refusing_json_schema_in_batch_lines_gets_json_object(tmp_path):
    # One attempt each: a refused output format must not use it up, since nothing was run.
    with FakeAPI(Faults(reject_json_schema=True)) as api:
        report = run(api, tmp_path / "run", "openai", taxonomy="tickets", batch_attempts=1)
    assert report.stats["counts"]["kept"] == 4 and statuses(tmp_path / "run") == {"generated": 4}
    first, second = (api.batches[job_id]["lines"] for job_id in ours(api, "openai"))
    assert {line["body"]["response_format"]["type"] for line in first} == {"json_schema"}
    assert {line["body"]["response_format"]["type"] for line in second} == {"json_object"}
    assert len(api.paid) == 4 and set(api.paid.values()) == {1}


def test_anthropic_lookup_that_cannot_tell_two_batches_apart_fails_clearly(tmp_path):
    # The reply to our create is lost, and another client made a batch of the same size meanwhile.
    faults = Faults(batch_create_script=[500], batch_neighbours=1, batch_neighbour_requests=4)
    with FakeAPI(faults) as api:
        with pytest.raises(RunFailed, match="cannot tell"):
            run(api, tmp_path / "run", "anthropic", preflight=False)
        counts = json.loads((tmp_path / "run" / "stats.json").read_text())["counts"]
        assert statuses(tmp_path / "run") == {"failed": 4} and counts["failed"] == 4
        assert ours(api, "anthropic") == ["msgbatch_1"]  # nothing created again
        # The job whose reply was lost was made and runs (the fake runs it once a lookup lists it after
        # batch_delay_s, which the spaced lookups pass): its answers are paid once, never twice.
        assert set(api.paid.values()) <= {1}
        for reject in rejected(tmp_path / "run"):
            assert "msgbatch_1" in reject["detail"] and "msgbatch_2" in reject["detail"], reject
            assert "cannot tell" in reject["detail"] and "--retry-failed" in reject["detail"]
        assert stored(tmp_path / "run", "SELECT job_id, status FROM batch_jobs") == [(None, "submitting")]
        # The user cancels the other client's batch; the re-run adopts ours.
        api.anthropic_batches["msgbatch_2"]["cancelled"] = True
        run(api, tmp_path / "run", "anthropic", preflight=False, retry_failed=True)
    assert statuses(tmp_path / "run") == {"generated": 4}
    assert ours(api, "anthropic") == ["msgbatch_1", "msgbatch_3"]
    assert set(api.paid.values()) == {1} and len(api.paid) == 8


def test_a_run_db_from_before_submission_ids_keeps_its_jobs(tmp_path):
    db = sqlite3.connect(tmp_path / "run.db")  # as the last release left it: one job open
    for number, script in enumerate(MIGRATIONS[:2], start=1):
        db.executescript(script + f"; PRAGMA user_version = {number};")
    db.execute("INSERT INTO batch_jobs (teacher, job_id, status, submitted_at) VALUES (?, ?, ?, ?)",
               ("t", "batch_9", "in_progress", 1.0))
    db.execute("INSERT INTO batch_requests VALUES (1, 'c1')")
    db.commit()
    db.close()
    store = RunStore(tmp_path / "run.db")
    try:
        (job,) = store.batch_jobs("t")
        assert (job["job_id"], job["submission"], job["custom_ids"]) == ("batch_9", None, ["c1"])
        indexes = {name for (name,) in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "batch_requests_custom_id" not in indexes
    finally:
        store.close()


@providers
def test_a_lookup_looks_back_to_the_first_create_attempt(provider):
    # Any attempt may have made the job: one made by the first attempt must be found even when later
    # attempts (after 429s and their retry-after) started minutes afterwards.
    import asyncio

    from distill.teachers.http.anthropic.batch import AnthropicBatches
    from distill.teachers.http.openai.batch import TAG, OpenAIBatches
    from distill.teachers.wrappers.batch import Submission

    with FakeAPI(Faults(batch_neighbours=3, batch_neighbour_requests=5)) as api:  # other clients' jobs around ours
        teacher = build_teacher(SPECS[provider], teacher_options(base_url=base_url(api, provider), concurrency=2))
        batches = (OpenAIBatches if provider == "openai" else AnthropicBatches)(teacher)

        async def main():
            client = teacher.next_client()
            first = time.time()
            if provider == "openai":
                upload = await client.files.create(file=("b.jsonl", b"{}\n", "application/jsonl"), purpose="batch")
                made = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                                   completion_window="24h", metadata={TAG: "sub-1"})
            else:
                made = await client.messages.batches.create(requests=[
                    {"custom_id": "a" * 64, "params": {"model": "m", "max_tokens": 8,
                                                      "messages": [{"role": "user", "content": "hi"}]}}])
            count = 1
            later = first + 600  # the last attempt, ten minutes on
            try:
                return made.id, await batches.find(Submission("sub-1", first, later, count), set())
            finally:
                await teacher.aclose()

        made_id, found = asyncio.run(main())
    assert found is not None and found.info.id == made_id


@providers
def test_requests_with_tools_go_out_natively_and_their_calls_come_back(provider):
    """A conversation turn with tools through a batch job: the tools and the earlier call in the provider's wire
    form, the answer's call and reasoning read back as records."""
    tools = [{"type": "function", "function": {"name": "lookup_order", "description": "An order by its id",
                                               "parameters": {"type": "object",
                                                              "properties": {"order_id": {"type": "string"}}}}}]
    earlier = ToolCall(id="call_1", function=ToolFunction(name="lookup_order", arguments={"order_id": "A-1"}))
    turns = [Message(role="user", content="Orders A-1 and B-2?"),
             Message(role="assistant", content="", tool_calls=[earlier]),
             Message(role="tool", content='{"status": "shipped"}', tool_call_id="call_1", name="lookup_order"),
             Message(role="user", content="And B-2?")]
    with FakeAPI(Faults(agent=lambda view: AgentReply(calls=[("lookup_order", {"order_id": "B-2"})],
                                                      reasoning="B-2 next."))) as api:
        teacher = build_teacher(SPECS[provider], teacher_options(base_url=base_url(api, provider), timeout_s=2.0,
                                                                 max_retries=2, batch=True, **FAST))

        async def main():
            try:
                return await teacher.generate([GenerationRequest(key="k", messages=turns, tools=tools)])
            finally:
                await teacher.aclose()

        (result,) = asyncio.run(main())
        (body,) = sent_bodies(api, provider)
    (call,) = result.tool_calls
    assert result.key == "k" and result.finish_reason == "tool_calls"
    assert (call.function.name, call.function.arguments) == ("lookup_order", {"order_id": "B-2"})
    if provider == "openai":
        assert body["tools"] == tools and body["messages"][1]["tool_calls"][0]["id"] == "call_1"
        assert result.reasoning == "B-2 next."
    else:
        assert body["tools"][0]["input_schema"] == tools[0]["function"]["parameters"]
        assert body["messages"][1]["content"][0]["type"] == "tool_use"
        assert [b["type"] for b in body["messages"][2]["content"]] == ["tool_result", "text"]
