"""The Python API (`import distill`): the README's notebook example inside a running event loop, as in
Jupyter; a taxonomy built in Python; options checked by the same models as the CLI's."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import threading
import time

import pytest
from pydantic import ValidationError

import distill
from cli_helpers import TINY
from distill.curate.pipeline import CurateResult
from distill.records import read_jsonl
from distill.taxonomy.model import Taxonomy
from fakeapi import FakeAPI, Faults

# The fake server writes word salad: the lexical topic checks would (rightly) reject all of it.
SKIP = ["off_topic", "self_contained"]


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-api-0000")
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def teacher(api: FakeAPI) -> dict:
    return {"teacher": "openai:gpt-4o-mini", "progress": False, "skip_checks": SKIP,
            "teacher_options": {"base_url": api.url + "/v1", "timeout_s": 2, "max_retries": 2, "concurrency": 4}}


def test_the_notebook_example_runs_inside_a_running_event_loop(tmp_path):
    """Jupyter runs every cell inside its event loop; `asyncio.run` there raises. Each call below is a cell."""
    run = tmp_path / "run"

    async def notebook(api: FakeAPI):
        assert asyncio.get_running_loop()
        report = distill.generate(TINY / "qa.yaml", out=run, **teacher(api))
        paid = api.total_paid()
        again = await distill.agenerate(TINY / "qa.yaml", out=run, **teacher(api))  # resumes: pays nothing
        curated = distill.curate(run, taxonomy=TINY / "qa.yaml", skip_checks=SKIP, out=tmp_path / "curated",
                                 progress=False)
        split = distill.split(run, fraction=0.5)
        queue = distill.review(run, size=2)
        return report, paid, again, curated, split, queue

    with FakeAPI() as api:
        report, paid, again, curated, split, queue = asyncio.run(notebook(api))
        assert api.total_paid() == paid
    counts = report.stats["counts"]
    assert counts["planned"] == 4 and counts["kept"] == 4 and again.stats["counts"] == counts
    assert len(list(read_jsonl(report.files["dataset"]))) == 4
    assert isinstance(curated, CurateResult) and len(curated.kept) == 4
    assert json.loads((tmp_path / "curated" / "stats.json").read_text())["input"] == str(run)
    assert len(split.train) + len(split.eval) == 4 and split.eval
    assert len(list(read_jsonl(run / "eval.jsonl"))) == len(split.eval)
    assert queue.added == 2 and queue.queued == 2


def test_agenerate_leaves_the_callers_loop_running(tmp_path):
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    async def notebook(api: FakeAPI):
        clock = asyncio.create_task(ticker())
        report = await distill.agenerate(TINY / "qa.yaml", out=tmp_path / "run", **teacher(api))
        clock.cancel()
        return report

    with FakeAPI() as api:
        report = asyncio.run(notebook(api))
    assert report.stats["counts"]["kept"] == 4 and ticks > 0


@pytest.mark.slow
def test_the_interrupt_button_stops_a_run_in_a_notebook_and_it_resumes(tmp_path):
    """Jupyter's interrupt raises KeyboardInterrupt in the kernel's main thread, which waits for the worker
    thread: the run there must stop too (not run on unseen, holding the run lock), saving what it has."""
    run = tmp_path / "run"

    def recorded() -> int:
        """Answers in run.db (read only: the run makes the file)."""
        try:
            with sqlite3.connect(f"file:{run / 'run.db'}?mode=ro", uri=True) as db:
                return db.execute("SELECT COUNT(*) FROM teacher_calls WHERE error IS NULL").fetchone()[0]
        except sqlite3.Error:  # not made yet
            return 0

    def press_interrupt(api: FakeAPI) -> None:
        # The interrupt button: SIGINT to the kernel's main thread, busy waiting for the worker. Pressed once
        # three answers are recorded (events, not a fixed time: start-up varies); the server holds every
        # request after the third, so the run is still going, an item half done, when it is pressed.
        deadline = time.monotonic() + 120
        while recorded() < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    async def cell(options: dict, api: FakeAPI):
        threading.Thread(target=press_interrupt, args=(api,), daemon=True).start()
        distill.generate(TINY / "qa.yaml", out=run, **options)

    loop = asyncio.new_event_loop()  # like ipykernel's: no SIGINT handler of asyncio.run's in the way
    with FakeAPI(Faults(latency_s=0.5, hold_after=3)) as api:
        options = {**teacher(api), "preflight": False, "cache": False}  # run.db alone remembers
        options["teacher_options"]["concurrency"] = 1  # 8 calls of 0.5 s one after another
        # A call past its timeout is retried and, answered late, paid twice: on a loaded machine 2 s can pass.
        options["teacher_options"]["timeout_s"] = 60
        try:
            with pytest.raises(KeyboardInterrupt):
                loop.run_until_complete(cell(options, api))
        finally:
            loop.close()
        assert not any(t.name.startswith("distill-") for t in threading.enumerate())  # the worker stopped
        assert recorded() == 3  # of 8: 4 items, a question and an answer each
        api.release()  # the request held at the interrupt is dropped unanswered
        report = distill.generate(TINY / "qa.yaml", out=run, **options)  # the lock is free: it resumes
        assert report.stats["counts"]["kept"] == 4
        assert api.total_paid() == 8  # what run.db held at the interrupt is not paid for again


def test_a_taxonomy_built_in_python(tmp_path):
    taxonomy = Taxonomy.model_validate({
        "name": "built-in-python", "task": "qa", "system_prompt": "Answer briefly.",
        "generation": {"per_leaf": 3},
        "axes": {"question_type": ["diagnosis", "treatment"], "audience": ["patient", "clinician"]},
        "tree": {"lungs": {"description": "Lungs and airways", "seeds": str(TINY / "seeds" / "respiratory.jsonl"),
                           "children": {"asthma": {"description": "Inhalers and triggers"},
                                        "cough": {"description": "Coughs that last"}}}},
    })
    loaded = distill.load_taxonomy(taxonomy)
    assert [leaf.path for leaf in loaded.leaves] == ["lungs/asthma", "lungs/cough"]
    with FakeAPI() as api:
        report = distill.generate(taxonomy, out=tmp_path / "run", **teacher(api))
    assert report.stats["counts"]["kept"] == 6
    assert {e["meta"]["taxonomy_path"] for e in read_jsonl(report.files["dataset"])} == {"lungs/asthma", "lungs/cough"}


def test_options_are_checked_by_the_clis_models(tmp_path):
    with pytest.raises(ValidationError, match="teachr"):
        distill.generate(TINY / "qa.yaml", teachr="openai:gpt-4o-mini")
    with pytest.raises(ValidationError, match="limit"):
        distill.generate(TINY / "qa.yaml", limit=0)
    with pytest.raises(ValidationError, match="threshold"):
        distill.curate([], threshold=2)
