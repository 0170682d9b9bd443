"""API teachers sending from a child process (`--sender-process`): same answers, limits and accounting.

The real SDKs run in the child against the loopback server; budget, cache and run.db stay in the
run. A child that dies fails its requests with the reason; a killed run takes its child with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from cli_helpers import ROOT
from distill.errors import BudgetExceeded, RunFailed
from distill.generate.runner import GenerateOptions, generate
from distill.store import RunStore
from distill.teachers.base import GenerationResult
from distill.teachers.registry import teacher_options
from distill.teachers.stack import build_teacher
from distill.teachers.wrappers.sender import Child, Lines, SenderTeacher
from fakeapi import FakeAPI, Faults
from fakeapi.outcomes import expected_outcomes, recorded_outcomes

TINY = ROOT / "tests" / "fixtures" / "tiny"
KEYS = {"openai": "sk-test-SENDER-NEVER-WRITE-91d3", "anthropic": "sk-ant-test-SENDER-NEVER-WRITE-2b7e"}
MODELS = {"openai": "openai:gpt-4o-mini", "anthropic": "anthropic:claude-haiku-4-5"}


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEYS["anthropic"])
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def run(api: FakeAPI, out: Path, provider: str = "openai", taxonomy: str | Path = "qa", **overrides):
    base_url = api.url + "/v1" if provider == "openai" else api.url
    extra = dict(base_url=base_url, timeout_s=0.5, max_retries=8, retry_base_s=0.01, concurrency=4,
                 sender_process=True)
    extra.update(overrides.pop("teacher", {}))
    path = taxonomy if isinstance(taxonomy, Path) else TINY / f"{taxonomy}.yaml"
    options = GenerateOptions(taxonomy=path, teacher=MODELS[provider], out=out, curate=False, progress=False,
                              teacher_options=teacher_options(**extra), **overrides)
    return generate(options)


def statuses(out: Path) -> dict[str, int]:
    store = RunStore(out / "run.db")
    try:
        values = list(store.statuses().values())
    finally:
        store.close()
    return {s: values.count(s) for s in set(values)}


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def senders_of(pid: int) -> list[int]:
    return [child for child in children_of(pid)
            if b"distill.teachers.wrappers.sender" in Path(f"/proc/{child}/cmdline").read_bytes()]


def alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


@pytest.fixture
def starts(monkeypatch) -> list[int]:
    """Counts the sender processes the run started (so a test cannot pass with everything inline)."""
    started: list[int] = []
    original = SenderTeacher._start

    async def counted(self):
        child = await original(self)
        if child is not None:
            started.append(child.proc.pid)
        return child

    monkeypatch.setattr(SenderTeacher, "_start", counted)
    return started


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_faults_are_retried_in_the_child_and_every_prompt_paid_once(tmp_path, provider, starts):
    faults = Faults(script=[429, 500, 529, "malformed", "slow", "disconnect"], retry_after="0.02", slow_s=1.0)
    with FakeAPI(faults) as api:
        report = run(api, tmp_path / "run", provider)
    assert len(starts) == 1  # one child answered every request
    assert report.stats["counts"]["kept"] == 4 and statuses(tmp_path / "run") == {"generated": 4}
    assert len(api.paid) == 8 and set(api.paid.values()) == {1}
    assert set(api.requests.values()) == {7}  # six faults, then the answer: retried by the child's policy
    assert report.stats["usage"]["cost_usd"] > 0  # the child's answers carry their prices
    assert senders_of(os.getpid()) == []  # the child is closed with the run
    for path in tmp_path.rglob("*"):  # the run and the shared cache
        if path.is_file():
            assert KEYS[provider].encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_rejects_cache_and_budget_work_as_inline(tmp_path, starts):
    taxonomy = tmp_path / "tax" / "tickets.yaml"
    shutil.copytree(TINY, taxonomy.parent)
    taxonomy.write_text(taxonomy.read_text().replace("per_leaf: 2", "per_leaf: 6"))  # 12 items
    cap = 0.0003
    with FakeAPI(Faults(content={"length": 0.3, "refusal": 0.3}, latency_s=0.01)) as api:
        with pytest.raises(BudgetExceeded, match=r"budget of \$0.0003 reached"):
            run(api, tmp_path / "a", taxonomy=taxonomy, budget_usd=cap, preflight=False)
        capped = statuses(tmp_path / "a")
        spent = json.loads((tmp_path / "a" / "stats.json").read_text())["usage"]["cost_usd"]
        assert 0 < spent <= cap and capped.get("pending", 0) > 0  # stopped at the cap, the rest waits
        first = run(api, tmp_path / "a", taxonomy=taxonomy, budget_usd=1.0, preflight=False)  # more budget: the rest
        paid = api.total_paid()
        second = run(api, tmp_path / "b", taxonomy=taxonomy, preflight=False)  # same prompts: all from the cache
    done = statuses(tmp_path / "a")
    assert sum(done.values()) == 12 and set(done) == {"generated", "rejected"}  # nothing left pending or failed
    expected = expected_outcomes(api, tmp_path / "a", "classification", "openai")
    assert recorded_outcomes(tmp_path / "a") == expected and len(expected) == 12
    assert {"kept", "truncated", "refusal"} <= set(expected.values())
    assert set(api.paid.values()) == {1} and api.total_paid() == paid  # nothing paid twice, the cache included
    assert second.stats["counts"] == first.stats["counts"]
    assert len(starts) == 2  # a child for each paying run; the third asked the cache only and never needed one


@pytest.mark.slow
def test_a_sender_that_dies_fails_its_requests_with_the_reason_and_retry_failed_recovers(tmp_path):
    taxonomy = tmp_path / "tax" / "qa.yaml"
    shutil.copytree(TINY, taxonomy.parent)
    taxonomy.write_text(taxonomy.read_text().replace("per_leaf: 2", "per_leaf: 6"))
    killed: list[int] = []

    def kill_the_sender(api: FakeAPI) -> None:
        deadline = time.monotonic() + 30
        while api.total_paid() < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        for pid in senders_of(os.getpid()):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with FakeAPI(Faults(latency_s=0.2)) as api:
        killer = threading.Thread(target=kill_the_sender, args=(api,))
        killer.start()
        report = run(api, tmp_path / "run", taxonomy=taxonomy, preflight=False)
        killer.join()
        assert killed, "the run never started a sender process"
        counts = statuses(tmp_path / "run")
        assert sum(counts.values()) == 12 and "pending" not in counts
        assert 1 <= counts.get("failed", 0) <= 4  # what was in flight in the dead child (concurrency 4)
        assert counts["generated"] == 12 - counts["failed"]  # a new child answered everything after
        store = RunStore(tmp_path / "run" / "run.db")
        errors = [row[0] for row in store.db.execute("SELECT error FROM teacher_calls WHERE error IS NOT NULL")]
        store.close()
        assert errors and all("sender process exited" in e for e in errors)
        assert report.stats["counts"]["kept"] == counts["generated"]
        run(api, tmp_path / "run", taxonomy=taxonomy, retry_failed=True)
    assert statuses(tmp_path / "run") == {"generated": 12}


@pytest.mark.slow
def test_kill_9_takes_the_sender_with_the_run_and_resume_never_pays_twice(tmp_path):
    """As the inline test (test_api_openai.py): the cache off and no pre-flight, so run.db alone answers for
    what was paid; the server holds every request after the 10th, and the resumed run talks to a second one."""
    taxonomy = tmp_path / "tax" / "qa.yaml"
    shutil.copytree(TINY, taxonomy.parent)
    taxonomy.write_text(taxonomy.read_text().replace("per_leaf: 2", "per_leaf: 8"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "run"

    def args(api: FakeAPI) -> list[str]:
        return [sys.executable, "-m", "distill.cli", "generate", "--taxonomy", str(taxonomy), "--teacher",
                MODELS["openai"], "--out", str(out), "--base-url", api.url + "/v1", "--concurrency", "4",
                "--no-curate", "--sender-process", "--no-cache", "--no-preflight"]

    with FakeAPI(Faults(latency_s=0.15, hold_after=10)) as first:
        proc = subprocess.Popen(args(first), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while first.total_paid() < 10 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        senders = senders_of(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert len(senders) == 1
        # The sender reads its run's end on its pipe: an event, waited for as long as a loaded machine needs.
        deadline = time.monotonic() + 60
        while alive(senders[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(senders[0]), "the sender outlived its run"
        assert first.total_paid() == 10  # killed mid-run, at the hold
        with sqlite3.connect(out / "run.db") as db:
            lost = 10 - db.execute("SELECT COUNT(*) FROM teacher_calls WHERE error IS NULL").fetchone()[0]
        paid = Counter(first.paid)
    assert lost <= 4, f"{lost} of 10 answers were not in run.db at the kill"  # one round of answers at most
    with FakeAPI() as second:
        done = subprocess.run(args(second), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        paid += second.paid
    assert statuses(out) == {"generated": 16}
    assert len(paid) == 32
    assert sum(n - 1 for n in paid.values()) <= lost  # what run.db held was looked up there, not asked again


def test_the_sender_process_is_the_default_from_128_requests_in_flight():
    inline = build_teacher("openai:gpt-4o-mini", teacher_options(base_url="http://127.0.0.1:9/v1", concurrency=127))
    sender = build_teacher("openai:gpt-4o-mini", teacher_options(base_url="http://127.0.0.1:9/v1", concurrency=128))
    forced_off = build_teacher("openai:gpt-4o-mini", teacher_options(base_url="http://127.0.0.1:9/v1",
                                                                  concurrency=256, sender_process=False))
    assert isinstance(sender, SenderTeacher)
    assert not isinstance(inline, SenderTeacher) and not isinstance(forced_off, SenderTeacher)
    for teacher in (inline, sender, forced_off):
        teacher.close()


def test_a_child_that_cannot_start_fails_every_request_at_once_with_the_reason(tmp_path, monkeypatch):
    tries = tmp_path / "tries"
    broken = tmp_path / "python"
    broken.write_text(f"#!/bin/sh\necho start >> {tries}\necho 'ImportError: no module named openai' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(broken))  # what the run starts its child with
    with FakeAPI() as api:
        with pytest.raises(RunFailed, match="nothing was kept: 4 of 4 items failed"):
            run(api, tmp_path / "run", preflight=False)
    assert statuses(tmp_path / "run") == {"failed": 4}
    assert json.loads((tmp_path / "run" / "stats.json").read_text())["counts"]["failed"] == 4
    assert tries.read_text().count("start") == 1  # one start tried, not one a request
    store = RunStore(tmp_path / "run" / "run.db")
    errors = {row[0] for row in store.db.execute("SELECT error FROM teacher_calls WHERE error IS NOT NULL")}
    store.close()
    assert errors == {"the sender process did not start: ImportError: no module named openai"}
    assert sum(api.requests.values()) == 0


class DeadProc:
    """A child that wrote `out` and `err`, then was killed."""

    def __init__(self, out: bytes, err: bytes):
        self.stdout, self.stderr = asyncio.StreamReader(), asyncio.StreamReader()
        for stream, data in ((self.stdout, out), (self.stderr, err)):
            stream.feed_data(data)
            stream.feed_eof()
        self.returncode, self.pid = -9, 0

    async def wait(self) -> int:
        return self.returncode

    def kill(self) -> None:
        pass


def test_cut_and_garbled_lines_fail_their_requests_with_the_childs_last_words_scrubbed():
    teacher = build_teacher("openai:gpt-4o-mini", teacher_options(base_url="http://127.0.0.1:9/v1", concurrency=4,
                                                                 sender_process=True))
    good = GenerationResult(key="", text="an answer", finish_reason="stop").model_dump_json().encode()
    out = b"1\t{not json\n" + b"2\t" + good + b"\n" + b'3\t{"key": "", "te'  # killed mid-line
    key = KEYS["openai"]
    err = ("x" * 700 + key + "y" * 490 + "\nMemoryError: killed\n").encode()  # the key across the 500-char cut

    async def main():
        loop = asyncio.get_running_loop()
        child = Child(DeadProc(out, err), Lines(lambda data: None))
        child.waiting = {n: loop.create_future() for n in (1, 2, 3)}
        futures = dict(child.waiting)
        child.readers.append(asyncio.create_task(teacher._read_errors(child)))
        await asyncio.wait_for(teacher._read_results(child), 5)
        return child, {n: f.result() for n, f in futures.items()}

    child, results = asyncio.run(main())
    assert results[2].text == "an answer"
    for n in (1, 3):
        assert results[n].error.startswith("the sender process exited with code -9: ")
        assert "MemoryError: killed" in results[n].error
        assert not any(key[i:i + 6] in results[n].error for i in range(len(key) - 5))  # no part of the key
    assert child.gone and not child.waiting
    teacher.close()
