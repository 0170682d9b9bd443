"""`distill generate --executor ray` on a local two-CPU Ray cluster: the local path's dataset, a worker killed
mid-run that loses no answer, a resume that asks nothing again, and the one-line errors."""

from __future__ import annotations

import _thread
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

import distill as api_module
from cli_helpers import ROOT, answers_in, cli_env, distill
from distill.errors import DistillError
from distill.executors import generation_executor
from distill.generate.runner import GenerateOptions, generate
from distill.records import Example, Reject, read_jsonl
from distill.store import RunStore
from distill.teachers.registry import teacher_options
from fakeapi import FakeAPI, Faults

pytestmark = pytest.mark.ray
TINY = ROOT / "tests" / "fixtures" / "tiny"


@pytest.fixture(autouse=True)
def env(monkeypatch, ray_cluster):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def run(api: FakeAPI, out: Path, executor: str, taxonomy: str = "qa", **overrides):
    """The local path through the runner; Ray through the Python API, as a notebook user would call it."""
    teacher = dict(base_url=api.url + "/v1", timeout_s=5, max_retries=4, retry_base_s=0.01, concurrency=4)
    settings = dict(teacher="openai:gpt-4o-mini", out=out, progress=False, executor=executor,
                    cache_dir=out.parent / f"cache-{out.name}", **overrides)
    if executor == "ray":
        return api_module.generate(TINY / f"{taxonomy}.yaml", teacher_options=teacher, **settings)
    return generate(GenerateOptions(taxonomy=TINY / f"{taxonomy}.yaml", teacher_options=teacher_options(**teacher),
                                    **settings))


def stored_fingerprints(out: Path) -> list[str]:
    store = RunStore(out / "run.db")
    try:
        return [row[0] for row in store.db.execute("SELECT fingerprint FROM teacher_calls WHERE error IS NULL")]
    finally:
        store.close()



@pytest.mark.parametrize("taxonomy", ["qa", "tickets"])
def test_ray_writes_the_dataset_the_local_path_writes(tmp_path, taxonomy):
    reports, paid = {}, {}
    for executor in ("local", "ray"):
        with FakeAPI(Faults(latency_s=0.02, content={"refusal": 0.1, "truncated_json": 0.1})) as api:
            reports[executor] = run(api, tmp_path / executor, executor, taxonomy, per_leaf=10)
            paid[executor] = api.paid
    local, on_ray = reports["local"], reports["ray"]
    assert local.stats["counts"]["kept"] >= 5 and local.stats["counts"]["rejected"] >= 1
    assert on_ray.stats["counts"] == local.stats["counts"]
    assert on_ray.stats["reject_reasons"] == local.stats["reject_reasons"]
    # Same ids, same content, same order: the files are byte for byte the same.
    assert (tmp_path / "ray" / "dataset.jsonl").read_bytes() == (tmp_path / "local" / "dataset.jsonl").read_bytes()
    assert paid["ray"] == paid["local"] and set(paid["ray"].values()) == {1}  # every prompt asked once
    fingerprints = stored_fingerprints(tmp_path / "ray")
    assert len(fingerprints) == len(set(fingerprints)) == sum(paid["ray"].values())


def worker_processes() -> list[psutil.Process]:
    """The Ray actor processes holding a teacher (Ray names them after the class they run)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any("GenerateWorker" in part for part in proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_a_worker_killed_mid_run_loses_no_answer(tmp_path):
    killed: list[int] = []

    def kill_a_worker(api: FakeAPI) -> None:
        # The server holds every request after the 30th: nothing more is answered until the kill, and the
        # kill waits until every answer is in run.db (events, however slowly the machine gets there).
        deadline = time.monotonic() + 300
        while (api.total_paid() < 30 or answers_in(tmp_path / "run") < api.total_paid()) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        victims = worker_processes()
        if victims:
            victims[0].send_signal(signal.SIGKILL)
            killed.append(victims[0].pid)
        # A request the dead worker sent just before the kill may still be in its latency: released now, it would
        # be answered (and billed) to a client that is gone. Past its latency it is held like the rest.
        while not api.arrived_all() and time.monotonic() < deadline:
            time.sleep(0.05)
        api.release()  # held requests are dropped unanswered; the live worker's SDK retries them

    with FakeAPI(Faults(latency_s=0.05, hold_after=30)) as api:
        killer = threading.Thread(target=kill_a_worker, args=(api,), daemon=True)
        killer.start()
        report = run(api, tmp_path / "run", "ray", per_leaf=30, preflight=False)
        killer.join()
    assert killed, "no worker process was found to kill"
    assert api.total_paid() >= 30 + 1  # the run went on after the kill
    counts = report.stats["counts"]
    assert counts["planned"] == 60 and counts["pending"] == 0 and counts["failed"] == 0
    # Ray restarted the worker and ran its block again: nothing answered before the kill was asked again.
    assert set(api.paid.values()) == {1}
    fingerprints = stored_fingerprints(tmp_path / "run")
    assert len(fingerprints) == len(set(fingerprints)) == api.total_paid()


def test_an_interrupted_run_resumes_without_asking_again(tmp_path):
    """Ctrl-C on the driver mid-run; the next run (response cache off: only run.db remembers) asks only the rest."""

    def interrupt(api: FakeAPI) -> None:
        deadline = time.monotonic() + 120
        while api.total_paid() < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        _thread.interrupt_main()

    out = tmp_path / "run"
    with FakeAPI(Faults(latency_s=0.1)) as api:
        threading.Thread(target=interrupt, args=(api,), daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            run(api, out, "ray", per_leaf=30, preflight=False, cache=False)
        first = api.total_paid()
        time.sleep(1.0)
        assert api.total_paid() == first  # the workers stopped with the driver: nothing more is sent
        recorded = len(stored_fingerprints(out))
        assert 20 <= recorded <= first < 120
        report = run(api, out, "ray", per_leaf=30, preflight=False, cache=False)
    assert report.stats["counts"]["pending"] == 0 and report.stats["counts"]["planned"] == 60
    # Only answers that reached no record (in flight at the interrupt) may be paid twice.
    assert sum(n - 1 for n in api.paid.values()) <= first - recorded
    fingerprints = stored_fingerprints(out)
    assert len(fingerprints) == len(set(fingerprints))


@pytest.mark.parametrize("flags, message", [
    (["--executor", "ray", "--batch"], "--batch: not with --executor ray"),
    (["--executor", "ray", "--budget-usd", "1"], "--budget-usd: not with --executor ray"),
    (["--ray-workers", "2"], "--ray-workers and --ray-gpus-per-worker are for --executor ray"),
    (["--executor", "spark"], "unknown executor 'spark'; use one of: local, ray"),
])
def test_ray_flags_that_cannot_apply_are_one_line_errors(tmp_path, flags, message):
    done = distill("generate", "--taxonomy", str(TINY / "qa.yaml"), "--teacher", "openai:gpt-4o-mini", "--out",
                   str(tmp_path / "run"), *flags, cwd=ROOT, env=cli_env(tmp_path), timeout=60)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "run.db").exists()


def test_a_teacher_object_cannot_go_to_ray_workers(tmp_path):
    from distill.teachers.base import Teacher

    options = GenerateOptions(taxonomy=TINY / "qa.yaml", teacher="local", out=tmp_path / "run", progress=False,
                              executor="ray")
    with pytest.raises(DistillError, match="pass teacher=SPEC"):
        generate(options, teacher_factory=Teacher)


@pytest.mark.model
def test_the_embedded_model_generates_on_ray_workers(tmp_path):
    """Each worker loads SmolLM2 itself (the taxonomy and task travel pickled). The text is not compared with
    the local path's: in bfloat16 a different batch composition changes long answers even at temperature 0."""
    out = tmp_path / "run"
    report = generate(GenerateOptions(taxonomy=TINY / "qa.yaml", teacher="local", out=out, progress=False,
                                      executor="ray", ray_workers=2), executor=generation_executor("ray"))
    counts = report.stats["counts"]
    assert counts["planned"] == 4 and counts["pending"] == 0 and counts["failed"] == 0
    kept = [Example.model_validate(row) for row in read_jsonl(out / "dataset.jsonl")]
    rejected = [Reject.model_validate(row) for row in read_jsonl(out / "rejected.jsonl")]
    assert len({e.id for e in kept} | {r.id for r in rejected}) == 4 and kept
    for example in kept:
        assert example.meta.teacher.startswith("local") and example.meta.usage.completion_tokens > 0
        assert example.messages[1].content.endswith("?")
    fingerprints = stored_fingerprints(out)
    assert len(fingerprints) == len(set(fingerprints)) >= 4  # every call asked once
