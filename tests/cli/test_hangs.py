"""Nothing a server or a task file does makes a run hang: `--timeout` is a deadline for the whole response
(a server sending a byte at a time), and a task's regex check is given a time limit per example."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from cli_helpers import cli_env, distill, tiny_copy
from fakeapi import FakeAPI, Faults

TIMEOUT_S = 0.5


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_server_trickling_its_answer_fails_the_request_at_the_timeout(tmp_path, provider):
    # 0.02 s a byte is well inside a per-read timeout of 0.5 s; the whole answer would take over 10 s.
    faults = Faults(script=["trickle"], trickle_s=0.02)
    env = cli_env(tmp_path, ANTHROPIC_API_KEY="sk-ant-test-hangs")
    with FakeAPI(faults) as api:
        base = api.url + "/v1" if provider == "openai" else api.url
        done = distill("generate", "-t", str(tiny_copy(tmp_path) / "qa.yaml"), "--teacher", f"{provider}:m",
                       "--base-url", base, "--timeout", str(TIMEOUT_S), "--max-retries", "0", "--no-preflight",
                       "--no-curate", "--out", "run", cwd=tmp_path, env=env, timeout=60)
        trickled = list(api.trickled)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    # Every request trickled and was given up at the deadline (loosely bounded: the machine is shared).
    assert len(trickled) == 4 and max(trickled) < 10 * TIMEOUT_S, trickled
    with sqlite3.connect(tmp_path / "run" / "run.db") as db:
        errors = [row[0] for row in db.execute("SELECT error FROM teacher_calls")]
    assert len(errors) == 4 and all(e and e.startswith("timeout: no whole response in 0.5 s") for e in errors), errors


def _regex_task(folder: Path, pattern: str) -> Path:
    taxonomy = folder / "codes.yaml"
    taxonomy.write_text(f"""\
name: codes
system_prompt: Answer briefly.
task:
  name: codes
  seed:
    question: text
    answer: text
  steps:
    - name: answer
      prompt: "{{{{ seed.question }}}}"
  example:
    messages:
      - {{role: user, content: "{{{{ seed.question }}}}"}}
      - {{role: assistant, content: "{{{{ steps.answer }}}}"}}
  checks:
    - regex: {{field: user, pattern: "{pattern}"}}
      reason: not_a_code
tree:
  codes:
    description: Codes
    seeds:
      - {{id: c1, question: aaaa, answer: Yes it is.}}
""")
    return taxonomy


def _dataset(path: Path, users: list[str]) -> Path:
    rows = [{"id": f"e{i}", "messages": [{"role": "user", "content": user},
                                         {"role": "assistant", "content": f"That is line {i} of the codes answer."}],
             "meta": {"taxonomy_path": "codes"}} for i, user in enumerate(users)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.slow
def test_a_catastrophic_task_regex_is_a_reject_with_its_reason_not_a_hang(tmp_path):
    taxonomy = _regex_task(tmp_path, "^(a+)+$")
    # With re, ^(a+)+$ tries every one of 2**30000 ways to split the a's before it gives up.
    evil = "a" * 30_000 + "b"
    data = _dataset(tmp_path / "data.jsonl", [evil, "aaaa", "abab"])
    started = time.monotonic()
    done = distill("curate", str(data), "--taxonomy", str(taxonomy), "--out", "cur", "--skip-check", "off_topic",
                   "--skip-check", "self_contained", "--no-near-dedup", cwd=tmp_path, env=cli_env(tmp_path),
                   timeout=90)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    rejected = {row["id"]: row for row in map(json.loads, (tmp_path / "cur" / "rejected.jsonl").read_text().splitlines())}
    # A timeout says so, under the check's own reason too: the example did not fail the pattern.
    assert rejected["e0"]["reason"] == "regex_timeout" and "user:" in rejected["e0"]["detail"], rejected
    # The check itself still runs: a value that matches passes, one that does not is the check's reject.
    assert rejected["e2"]["reason"] == "not_a_code"
    kept = [json.loads(line)["id"] for line in (tmp_path / "cur" / "dataset.jsonl").read_text().splitlines()]
    assert kept == ["e1"]
    assert elapsed < 60

