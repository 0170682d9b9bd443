"""openai: teacher against the loopback server, through the real SDK: retries, rejects, cache, budget, keys."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from cli_helpers import ROOT
from distill.errors import BudgetExceeded, DistillError, RunFailed
from distill.generate.budget import Budget, BudgetStop
from distill.generate.runner import GenerateOptions, generate
from distill.store import RunStore
from distill.teachers.registry import teacher_options
from fakeapi import FakeAPI, Faults
from fakeapi.outcomes import expected_outcomes, kinds_seen, recorded_outcomes

TINY = ROOT / "tests" / "fixtures" / "tiny"
KEY = "sk-test-DO-NOT-LEAK-4f9a1c"


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def run(api: FakeAPI, out: Path, taxonomy: str | Path = "qa", **overrides) -> object:
    extra = dict(base_url=api.url + "/v1", timeout_s=0.5, max_retries=4, retry_base_s=0.01, concurrency=4)
    extra.update(overrides.pop("teacher", {}))
    path = taxonomy if isinstance(taxonomy, Path) else TINY / f"{taxonomy}.yaml"
    options = GenerateOptions(taxonomy=path, teacher="openai:gpt-4o-mini", out=out, curate=False, progress=False,
                              teacher_options=teacher_options(**extra), **overrides)
    return generate(options)


def accounted(out: Path) -> dict[str, int]:
    store = RunStore(out / "run.db")
    try:
        statuses = list(store.statuses().values())
    finally:
        store.close()
    return {s: statuses.count(s) for s in set(statuses)}


@pytest.mark.slow
def test_transient_faults_are_retried_and_every_prompt_paid_once(tmp_path):
    faults = Faults(script=[429, 500, 529, "malformed", "slow", "disconnect"], retry_after="0.02", slow_s=1.0)
    with FakeAPI(faults) as api:
        report = run(api, tmp_path / "run", teacher={"max_retries": 8})
    assert report.stats["counts"]["kept"] == 4
    assert accounted(tmp_path / "run") == {"generated": 4}
    assert len(api.paid) == 8 and set(api.paid.values()) == {1}  # two calls an item, each answered once
    assert set(api.requests.values()) == {7}  # six injected faults, then the answer


def bigger(tmp_path: Path, name: str, per_leaf: int) -> Path:
    """A copy of a tiny taxonomy with more items a leaf, so that every fault lands on some item."""
    folder = tmp_path / f"tax-{name}-{per_leaf}"
    if not folder.exists():
        shutil.copytree(TINY, folder)
    path = folder / f"{name}.yaml"
    path.write_text(path.read_text().replace("per_leaf: 2", f"per_leaf: {per_leaf}"))
    return path


@pytest.mark.parametrize("task, taxonomy", [("qa", "qa"), ("classification", "tickets")])
def test_every_bad_answer_is_rejected_with_the_reason_its_fault_calls_for(tmp_path, task, taxonomy):
    faults = Faults(content={"length": 0.1, "refusal": 0.1, "filter": 0.1, "empty": 0.1, "prose": 0.1})
    with FakeAPI(faults) as api:
        run(api, tmp_path / "run", taxonomy=bigger(tmp_path, taxonomy, 12), preflight=False)
    expected = expected_outcomes(api, tmp_path / "run", task, "openai")
    assert recorded_outcomes(tmp_path / "run") == expected  # item by item, not a set of reasons
    assert len(expected) == 24
    reasons = set(expected.values())
    assert {"kept", "refusal", "content_filter", "empty_output"} <= reasons  # the faults really landed
    assert ("truncated" in reasons or "no_question" in reasons) and kinds_seen(api) >= {"length", "prose"}
    rejected = [json.loads(line) for line in (tmp_path / "run" / "rejected.jsonl").read_text().splitlines()]
    assert {r["id"]: r["reason"] for r in rejected} == {i: r for i, r in expected.items() if r != "kept"}


def test_fenced_and_truncated_json_are_repaired_or_rejected_with_reason(tmp_path):
    with FakeAPI(Faults(content={"fenced": 0.3, "truncated_json": 0.3, "prose": 0.3})) as api:
        run(api, tmp_path / "run", taxonomy=bigger(tmp_path, "tickets", 12), preflight=False)
    expected = expected_outcomes(api, tmp_path / "run", "classification", "openai")
    assert recorded_outcomes(tmp_path / "run") == expected
    assert kinds_seen(api) == {"fenced", "truncated_json", "prose"}
    assert {"kept", "schema_invalid", "unparseable_json"} <= set(expected.values())
    rejected = [json.loads(line) for line in (tmp_path / "run" / "rejected.jsonl").read_text().splitlines()]
    assert rejected and all(r.get("raw") for r in rejected)  # the bad output is kept to look at
    fenced = [body for body in api.bodies if api.kinds.get(_key(body)) == "fenced"]
    kept = [json.loads(line) for line in (tmp_path / "run" / "dataset.jsonl").read_text().splitlines()]
    assert fenced and len(kept) == list(expected.values()).count("kept")  # fenced JSON parsed and kept


def _key(body: dict) -> str:
    from fakeapi.server import conversation_key

    return conversation_key(body["messages"], body.get("seed"))


def _formats(api: FakeAPI) -> list[str | None]:
    return [(body.get("response_format") or {}).get("type") for body in api.bodies]


def test_server_without_json_schema_falls_back_to_json_object(tmp_path):
    with FakeAPI(Faults(reject_json_schema=True)) as api:
        report = run(api, tmp_path / "run", taxonomy="tickets")
    assert report.stats["counts"]["kept"] == 4
    formats = _formats(api)
    # json_schema first (refused), then json_object for every request, the refused ones sent again.
    first_object = formats.index("json_object")
    assert 1 <= first_object <= 4 and set(formats[:first_object]) == {"json_schema"}
    assert set(formats[first_object:]) == {"json_object"} and len(formats) == 4 + first_object
    refused = {_key(body) for body in api.bodies[:first_object]}
    assert refused <= {_key(body) for body in api.bodies[first_object:]}
    assert all("JSON schema" in body["messages"][-1]["content"] for body in api.bodies[first_object:])


def test_server_with_json_schema_gets_json_schema_only(tmp_path):
    with FakeAPI() as api:
        report = run(api, tmp_path / "run", taxonomy="tickets")
    assert report.stats["counts"]["kept"] == 4
    assert _formats(api) == ["json_schema"] * 4
    assert all(body["response_format"]["json_schema"]["schema"]["required"] == ["text", "rationale"]
               for body in api.bodies)


def test_persistent_failure_is_recorded_then_retry_failed_fixes_it(tmp_path):
    faults = Faults(script=[500] * 3)
    with FakeAPI(faults) as api:
        with pytest.raises(RunFailed, match="nothing was kept: 4 of 4 items failed; e.g. instruction: HTTP 500"):
            run(api, tmp_path / "run", teacher={"max_retries": 1})
        assert accounted(tmp_path / "run") == {"failed": 4}
        rejected = [json.loads(line) for line in (tmp_path / "run" / "rejected.jsonl").read_text().splitlines()]
        assert len(rejected) == 4 and all("HTTP 500" in r["detail"] for r in rejected)
        sent = sum(api.requests.values())
        with pytest.raises(RunFailed, match="--retry-failed"):  # without --retry-failed: nothing is sent
            run(api, tmp_path / "run", teacher={"max_retries": 1})
        assert accounted(tmp_path / "run") == {"failed": 4} and sum(api.requests.values()) == sent
        api.faults.script = []  # the outage is over
        report = run(api, tmp_path / "run", retry_failed=True, teacher={"max_retries": 1})
    assert report.stats["counts"]["kept"] == 4 and set(api.paid.values()) == {1}


def test_cache_is_shared_across_runs_and_an_edited_node_misses_alone(tmp_path):
    with FakeAPI() as api:
        run(api, tmp_path / "a")
        first = sum(api.requests.values())
        run(api, tmp_path / "b")  # a new run directory: answered from the user cache
        assert sum(api.requests.values()) == first
        run(api, tmp_path / "c", cache=False)
        assert sum(api.requests.values()) == 2 * first

        edited = tmp_path / "tax"
        shutil.copytree(TINY, edited)
        text = (edited / "qa.yaml").read_text().replace("Colds, runny nose, sore throat", "Colds and flu")
        (edited / "qa.yaml").write_text(text)
        before = sum(api.requests.values())
        run(api, tmp_path / "d", taxonomy=edited / "qa.yaml")
    # Only the common-cold items (2 of 4, two calls each) are asked again.
    assert sum(api.requests.values()) - before == 4


def test_budget_is_a_hard_cap(tmp_path):
    with FakeAPI(Faults(latency_s=0.01)) as api:
        with pytest.raises(BudgetExceeded) as caught:
            run(api, tmp_path / "run", budget_usd=0.0003, preflight=False)
    assert "budget" in str(caught.value)
    store = RunStore(tmp_path / "run" / "run.db")
    spent = store.usage_totals()["cost_usd"]
    statuses = list(store.statuses().values())
    store.close()
    assert 0 < spent <= 0.0003
    assert "pending" in statuses  # what was not sent waits for more budget
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())  # everything saved and exported
    assert stats["usage"]["cost_usd"] == pytest.approx(spent)
    assert stats["counts"]["pending"] == statuses.count("pending") > 0
    kept = (tmp_path / "run" / "dataset.jsonl").read_text().splitlines()
    assert len(kept) == stats["counts"]["kept"] == statuses.count("generated")


def test_requests_in_flight_hold_their_worst_case_against_the_cap():
    """Before a request is sent its worst case is reserved, and stays reserved until its real cost is known:
    with three requests in flight at $0.30 worst each under a $1 cap, a fourth is not sent, however little the
    three will turn out to cost. (A run's requests overlap only as the machine's timing allows; this does not.)"""
    async def go() -> None:
        budget = Budget(1.0)
        hold = await budget.start_item()  # the first item runs alone and reserves as it goes
        reserved = [budget.reserve(0.30, hold, "instruction") for _ in range(3)]
        with pytest.raises(BudgetStop):
            budget.reserve(0.30, hold, "response")
        for worst in reserved:
            budget.settle(worst, 0.01)
        assert budget.spent == pytest.approx(0.03) and budget.in_flight == pytest.approx(0.0)
        await budget.end_item(hold)

    asyncio.run(go())


def test_an_item_started_finishes_before_new_items_start(tmp_path):
    """An item's answer step goes ahead of other items' question steps, so items finish one by one.

    One request at a time: before, the order was A:q B:q A:a C:q B:a D:q C:a D:a (first steps first).
    """
    with FakeAPI(Faults(latency_s=0.02)) as api:
        run(api, tmp_path / "run", teacher={"concurrency": 1}, preflight=False)
    db = sqlite3.connect(tmp_path / "run" / "run.db")
    order = [row for row in db.execute("SELECT plan_item_id, step FROM teacher_calls ORDER BY id")]
    db.close()
    assert len(order) == 8
    for first, second in zip(order[::2], order[1::2]):
        assert first[0] == second[0] and (first[1], second[1]) == ("instruction", "response"), order


def test_a_small_budget_finishes_the_items_it_starts(tmp_path):
    """A cap that holds a few whole items finishes those, rather than paying every item's first step.

    Before: all ten questions went out at once (concurrency 16), then no answer fitted: 0 of 10 items
    finished, a third of the cap spent on questions nobody answered.
    """
    tax = tmp_path / "tax"
    shutil.copytree(TINY, tax)
    (tax / "qa.yaml").write_text((tax / "qa.yaml").read_text().replace("per_leaf: 2", "per_leaf: 5"))
    prices = {"gpt-4o-mini": {"input": 1.0, "output": 10.0}}  # answers cost far more than questions
    with FakeAPI(Faults(latency_s=0.05)) as api:
        with pytest.raises(BudgetExceeded):
            run(api, tmp_path / "run", taxonomy=tax / "qa.yaml", budget_usd=0.01, preflight=False,
                teacher={"concurrency": 16, "api_config": {"prices": prices}})
    counts = accounted(tmp_path / "run")
    assert counts.get("generated", 0) >= 3
    # Every item that was paid for is finished: two answered calls each, no question left unanswered.
    assert len(api.paid) == 2 * counts["generated"]
    assert counts["generated"] + counts.get("pending", 0) == 10


def test_unknown_price_with_budget_is_a_clear_error(tmp_path):
    with FakeAPI() as api:
        options = GenerateOptions(taxonomy=TINY / "qa.yaml", teacher="openai:my-local-model", out=tmp_path / "r",
                                  progress=False, budget_usd=1.0,
                                  teacher_options=teacher_options(base_url=api.url + "/v1"))
        with pytest.raises(DistillError, match="prices"):
            generate(options)


def test_missing_key_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    options = GenerateOptions(taxonomy=TINY / "qa.yaml", teacher="openai:gpt-4o-mini", out=tmp_path / "r",
                              progress=False)
    with pytest.raises(DistillError, match="OPENAI_API_KEY"):
        generate(options)


def _files_contain(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_no_key_in_any_file_even_when_the_server_echoes_it(tmp_path):
    with FakeAPI(Faults(expect_key="something-else")) as api:  # 401 with a masked echo of our key
        with pytest.raises(RunFailed, match="HTTP 401") as caught:
            run(api, tmp_path / "denied")
        assert KEY not in str(caught.value) and KEY[-8:] not in str(caught.value)
    with FakeAPI(Faults(expect_key=KEY)) as api:
        run(api, tmp_path / "ok")
        assert api.log and all(KEY in (e["headers"].get("authorization") or "") for e in api.log)
    assert accounted(tmp_path / "denied") == {"failed": 4}
    assert accounted(tmp_path / "ok") == {"generated": 4}
    for part in (KEY.encode(), KEY[-8:].encode()):
        assert _files_contain(tmp_path, part) == []


def test_preflight_stops_a_teacher_that_cannot_follow_the_format(tmp_path):
    taxonomy = tmp_path / "tax" / "tickets.yaml"
    shutil.copytree(TINY, taxonomy.parent)
    taxonomy.write_text(taxonomy.read_text().replace("per_leaf: 2", "per_leaf: 20"))
    with FakeAPI(Faults(content={"prose": 1.0})) as api:
        with pytest.raises(DistillError, match="pre-flight failed: 5 of 5.*unparseable_json.*the teacher wrote"):
            run(api, tmp_path / "run", taxonomy=taxonomy)
    # It costs the sample, not the budget: 5 requests of 40 planned items. (How many seconds that takes is
    # the machine's business: benchmarks/bench_stops.py measures it.)
    assert sum(api.requests.values()) == 5


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "distill.cli", "generate", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def committed_answers(out: Path) -> int:
    """Answers run.db holds: what a run killed now would find again."""
    with sqlite3.connect(out / "run.db") as db:
        return db.execute("SELECT COUNT(*) FROM teacher_calls WHERE error IS NULL").fetchone()[0]


@pytest.mark.slow
def test_kill_9_and_resume_never_pays_twice(tmp_path):
    """kill -9 mid-run, then the same command: an answer run.db committed is never paid for again, and kill -9
    loses only the answers still on their way or in the 20 ms commit window.

    The response cache is off and there is no pre-flight, so run.db alone remembers what was answered, and
    the kill lands mid-item (after the pre-flight's sample every item was whole). The server answers 10
    requests, then holds the rest, so the kill lands there however slow the machine; the resumed run talks
    to a second server, so the requests held at the kill are never answered."""
    taxonomy = tmp_path / "tax" / "qa.yaml"
    shutil.copytree(TINY, taxonomy.parent)
    taxonomy.write_text(taxonomy.read_text().replace("per_leaf: 2", "per_leaf: 8"))
    env = {**os.environ, "DISTILL_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    out = tmp_path / "run"

    def args(api: FakeAPI) -> list[str]:
        return ["--taxonomy", str(taxonomy), "--teacher", "openai:gpt-4o-mini", "--out", str(out),
                "--base-url", api.url + "/v1", "--concurrency", "4", "--no-curate", "--no-cache", "--no-preflight"]

    with FakeAPI(Faults(latency_s=0.15, hold_after=10)) as first:
        proc = _cli(*args(first), env=env)
        deadline = time.monotonic() + 120
        while first.total_paid() < 10 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert first.total_paid() == 10, proc.stderr.read()  # killed mid-run, at the hold
        lost = 10 - committed_answers(out)
        paid = Counter(first.paid)
    # Answered but not committed: on their way back to the run, or inside the commit window (20 ms; four
    # requests at a time and 150 ms each, so one round of answers at most).
    assert lost <= 4, f"{lost} of 10 answers were not in run.db at the kill"
    with FakeAPI() as second:
        done = subprocess.run([sys.executable, "-m", "distill.cli", "generate", *args(second)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        paid += second.paid
    assert accounted(out) == {"generated": 16}
    assert len(paid) == 32
    assert sum(n - 1 for n in paid.values()) <= lost  # what run.db held was looked up there, not asked again
    store = RunStore(out / "run.db")
    fingerprints = [row[0] for row in store.db.execute("SELECT fingerprint FROM teacher_calls WHERE error IS NULL")]
    store.close()
    assert len(fingerprints) == len(set(fingerprints)) == 32  # the resumed run re-asked nothing it had


def test_dry_run_prints_estimate_and_sends_nothing(tmp_path):
    env = {**os.environ, "DISTILL_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    with FakeAPI() as api:
        done = subprocess.run([sys.executable, "-m", "distill.cli", "generate", "--taxonomy", str(TINY / "qa.yaml"),
                               "--teacher", "openai:gpt-4o-mini", "--out", str(tmp_path / "run"),
                               "--base-url", api.url + "/v1", "--dry-run"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "4 items" in done.stdout and "8 teacher calls" in done.stdout and "$" in done.stdout
    assert sum(api.requests.values()) == 0 and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_per_leaf_from_the_cli_plans_that_many_items_a_leaf(tmp_path):
    """`--per-leaf 3` on a taxonomy of two leaves at per_leaf 2: six items made, three a leaf."""
    env = {**os.environ, "DISTILL_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    with FakeAPI() as api:
        done = subprocess.run([sys.executable, "-m", "distill.cli", "generate", "--taxonomy", str(TINY / "tickets.yaml"),
                               "--teacher", "openai:gpt-4o-mini", "--out", str(tmp_path / "run"), "--per-leaf", "3",
                               "--base-url", api.url + "/v1", "--no-preflight", "--no-curate"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["counts"]["planned"] == 6 and stats["counts"]["generated"] == 6
    assert {path: node["planned"] for path, node in stats["nodes"].items()} == {"(all)": 6, "account": 3, "billing": 3}


@pytest.mark.slow
def test_budget_exit_code_from_the_cli(tmp_path):
    env = {**os.environ, "DISTILL_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    with FakeAPI() as api:
        done = subprocess.run([sys.executable, "-m", "distill.cli", "generate", "--taxonomy", str(TINY / "qa.yaml"),
                               "--teacher", "openai:gpt-4o-mini", "--out", str(tmp_path / "run"),
                               "--base-url", api.url + "/v1", "--budget-usd", "0.0001", "--no-preflight"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "budget of $0.0001 reached" in done.stderr
    assert KEY not in done.stderr + done.stdout


def test_a_smaller_limit_or_another_seed_never_shrinks_the_exports(tmp_path):
    taxonomy = bigger(tmp_path, "qa", 4)  # 8 items
    with FakeAPI() as api:
        first = run(api, tmp_path / "run", taxonomy=taxonomy, limit=6, preflight=False)
        assert first.stats["counts"]["kept"] == 6
        sent = sum(api.requests.values())
        smaller = run(api, tmp_path / "run", taxonomy=taxonomy, limit=2, preflight=False)
        assert sum(api.requests.values()) == sent  # nothing new to ask
        other_seed = run(api, tmp_path / "run", taxonomy=taxonomy, limit=2, seed=1, preflight=False)
    kept = [json.loads(line)["id"] for line in (tmp_path / "run" / "dataset.jsonl").read_text().splitlines()]
    assert smaller.stats["counts"]["kept"] == 6  # the export still holds everything generated
    assert other_seed.stats["counts"]["kept"] == len(kept) == len(set(kept)) > 6  # and the new seed's items too
    store = RunStore(tmp_path / "run" / "run.db")
    try:
        generated = {row[0] for row in store.db.execute("SELECT id FROM plan_items WHERE status = 'generated'")}
    finally:
        store.close()
    assert set(kept) == generated
