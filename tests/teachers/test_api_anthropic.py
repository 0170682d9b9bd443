"""anthropic: teacher against the loopback server through the real SDK: tool-use JSON, overload retries, rejects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli_helpers import TINY
from distill.errors import DistillError
from distill.generate.runner import GenerateOptions, generate
from distill.store import RunStore
from distill.teachers.registry import teacher_options
from fakeapi import FakeAPI, Faults
from fakeapi.outcomes import expected_outcomes, kinds_seen, recorded_outcomes

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


@pytest.mark.slow
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


@pytest.mark.parametrize("task, taxonomy", [("qa", "qa"), ("classification", "tickets")])
def test_refusals_and_max_tokens_are_rejects_with_the_reason_their_fault_calls_for(tmp_path, task, taxonomy):
    shutil.copytree(TINY, tmp_path / "tax")
    path = tmp_path / "tax" / f"{taxonomy}.yaml"
    path.write_text(path.read_text().replace("per_leaf: 2", "per_leaf: 12"))
    faults = Faults(content={"refusal": 0.15, "length": 0.15, "filter": 0.15, "truncated_json": 0.15})
    with FakeAPI(faults) as api:
        generate(GenerateOptions(
            taxonomy=path, teacher="anthropic:claude-haiku-4-5", out=tmp_path / "run", curate=False, progress=False,
            preflight=False, teacher_options=teacher_options(base_url=api.url, timeout_s=0.5, max_retries=5,
                                                             retry_base_s=0.01)))
    expected = expected_outcomes(api, tmp_path / "run", task, "anthropic")
    assert recorded_outcomes(tmp_path / "run") == expected and len(expected) == 24  # item by item
    assert kinds_seen(api) >= {"refusal", "length", "filter"}
    assert {"kept", "refusal"} <= set(expected.values())
    assert ("truncated" if task == "classification" else "no_question") in expected.values()


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
