"""anthropic: teacher against the loopback server through the real SDK: tool-use JSON, overload retries, rejects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.generate.runner import GenerateOptions, generate
from distill.store import RunStore
from distill.teachers.registry import teacher_options
from fakeapi import FakeAPI, Faults

TINY = Path(__file__).resolve().parent / "fixtures" / "tiny"
KEY = "sk-ant-test-NEVER-WRITE-77c2"


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))


def run(api: FakeAPI, out: Path, taxonomy: str = "qa", **extra):
    options = GenerateOptions(
        taxonomy=TINY / f"{taxonomy}.yaml", teacher="anthropic:claude-haiku-4-5", out=out, curate=False,
        progress=False, teacher_options=teacher_options(**{"base_url": api.url, "timeout_s": 0.5, "max_retries": 5,
                                                           "retry_base_s": 0.01, **extra}))
    return generate(options)


def statuses(out: Path) -> list[str]:
    store = RunStore(out / "run.db")
    try:
        return sorted(store.statuses().values())
    finally:
        store.close()


def test_overload_and_rate_limits_are_retried_once_paid(tmp_path):
    with FakeAPI(Faults(script=[529, 429, 500, "slow"], slow_s=1.0)) as api:
        report = run(api, tmp_path / "qa")
        run(api, tmp_path / "tickets", taxonomy="tickets")
    assert report.stats["counts"]["kept"] == 4
    assert statuses(tmp_path / "tickets") == ["generated"] * 4
    assert set(api.paid.values()) == {1} and len(api.paid) == 12
    assert report.stats["usage"]["cost_usd"] > 0  # priced from the table


def test_structured_output_is_a_forced_tool_call(tmp_path):
    with FakeAPI() as api:
        run(api, tmp_path / "run", taxonomy="tickets")
    rows = [json.loads(line) for line in (tmp_path / "run" / "dataset.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(row["output"]["label"] for row in rows)


def test_refusals_and_max_tokens_are_rejects_with_reasons(tmp_path):
    with FakeAPI(Faults(content={"refusal": 0.4, "length": 0.4})) as api:
        run(api, tmp_path / "run")
    found = statuses(tmp_path / "run")
    assert len(found) == 4 and "pending" not in found and "rejected" in found
    reasons = {json.loads(line)["reason"] for line in (tmp_path / "run" / "rejected.jsonl").read_text().splitlines()}
    assert reasons <= {"refusal", "truncated", "no_question"}  # a cut question is "no_question"


def test_key_is_sent_but_never_written(tmp_path):
    with FakeAPI(Faults(expect_key=KEY)) as api:
        run(api, tmp_path / "run")
    sent = [e["headers"].get("x-api-key") or e["headers"].get("authorization", "") for e in api.log]
    assert sent and all(KEY in value for value in sent)  # the SDK version picks the header
    assert statuses(tmp_path / "run") == ["generated"] * 4
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]


def test_missing_key_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(DistillError, match="ANTHROPIC_API_KEY"):
        generate(GenerateOptions(taxonomy=TINY / "qa.yaml", teacher="anthropic:claude-sonnet-4", out=tmp_path / "r",
                                 progress=False))
