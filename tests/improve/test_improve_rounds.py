"""`distill improve` end to end through the installed script: round 0 (`distill run`) and two steered rounds on a
tiny taxonomy, the loopback OpenAI server as the teacher and the embedded SmolLM2 as the student; killed between
rounds and resumed without paying the teacher twice; the held-out split frozen at round 0."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from cli_helpers import cli_env, distill, distill_command, error_lines, tiny_copy, wait_for
from distill.records import read_jsonl
from fakeapi import FakeAPI


def rounds_in(out: Path) -> dict[int, str]:
    """round -> status, read from run.db without creating or migrating it."""
    try:
        with sqlite3.connect(f"file:{out / 'run.db'}?mode=ro", uri=True) as db:
            return dict(db.execute("SELECT round, status FROM improve_rounds"))
    except sqlite3.Error:
        return {}


def items_of_round(out: Path, number: int) -> dict[str, str]:
    with sqlite3.connect(f"file:{out / 'run.db'}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT plan_item_id, node_path FROM improve_items WHERE round = ?", (number,)))


def calls_for(out: Path, item_ids: set[str]) -> int:
    """Teacher calls run.db answered (not from a cache) for these plan items."""
    with sqlite3.connect(f"file:{out / 'run.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT plan_item_id FROM teacher_calls WHERE error IS NULL AND cached = 0").fetchall()
    return sum(1 for (item_id,) in rows if item_id in item_ids)


def config_for(tmp_path: Path, api: FakeAPI) -> Path:
    tiny_copy(tmp_path, per_leaf=6)
    config = tmp_path / "job.yaml"
    config.write_text(
        "taxonomy: tiny/qa.yaml\nout: run\nsplit_fraction: 0.3\n"
        "generate:\n  teacher: openai:gpt-4o-mini\n  preflight: false\n  cache: false\n"
        f"  teacher_options: {{base_url: '{api.url}/v1', concurrency: 2, timeout_s: 10, max_retries: 0}}\n"
        "train: {student: local, qlora: false, max_steps: 2, max_length: 256, batch_size: 2, grad_accum: 1,"
        " eval_before: false, threads: 2}\n"
        "eval: {max_new_tokens: 16, resamples: 50, threads: 2}\n"
        # stop_early off: two steered rounds run whatever round 1 measured (a 2-step student rarely gains)
        # 12 new items a round: enough that a split following the dataset would hold some of them out
        "improve: {new_items: 12, attempts_per_leaf: 2, stop_early: false}\n")
    return config


@pytest.mark.model
@pytest.mark.train
def test_two_rounds_resume_after_a_kill_without_paying_twice_and_keep_the_held_out_split(tmp_path):
    env = cli_env(tmp_path)
    with FakeAPI() as api:
        config = config_for(tmp_path, api)
        out = tmp_path / "run"
        proc = subprocess.Popen(distill_command("improve", str(config), "--rounds", "2"), cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # (Minutes each on a 2-core machine: round 0 trains and evaluates, round 1 runs the student first.)
            wait_for(lambda: 0 in rounds_in(out), proc, seconds=1800)
            held_out = (out / "eval.jsonl").read_bytes()  # round 0's split, as it froze
            # Killed once round 1's new items are answered: it was training when it died.
            wait_for(lambda: rounds_in(out).get(1) == "generated", proc, seconds=1800)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
        paid = api.total_paid()
        asked_in_round_1 = items_of_round(out, 1)
        assert asked_in_round_1 and paid > 0

        done = distill("improve", str(config), "--rounds", "2", cwd=tmp_path, env=env, timeout=2400)
        assert done.returncode == 0, error_lines(done.stderr)[-5:]
        assert rounds_in(out) == {0: "done", 1: "done", 2: "done"}
        # Round 0's and round 1's items were all answered before the kill: only round 2's are new, two calls each
        # (question, answer).
        asked_in_round_2 = items_of_round(out, 2)
        assert asked_in_round_2 and not set(asked_in_round_2) & set(asked_in_round_1)
        new_calls = api.total_paid() - paid
        assert new_calls == calls_for(out, set(asked_in_round_2)) > 0  # (the response cache is off: run.db resumes)
        assert "round 1: new items" not in done.stdout and "round 1: generate" not in done.stdout  # resumed at training

        # The held-out split never grew: the same bytes, and no example a later round made is in it.
        assert (out / "eval.jsonl").read_bytes() == held_out
        later = set(asked_in_round_1) | set(asked_in_round_2)
        train_ids = {row["id"] for row in read_jsonl(out / "train.jsonl")}
        kept_later = {row["id"] for row in read_jsonl(out / "dataset.jsonl")} & later
        assert kept_later and kept_later <= train_ids
        assert not later & {row["id"] for row in read_jsonl(out / "eval.jsonl")}
        split = json.loads((out / "stats.json").read_text())["split"]
        assert (split["fraction"], split["eval"], split["frozen"]) == (0.3, len(held_out.splitlines()), True)

        # The new items were asked with the student's failures in their prompt, only from training items.
        attempts = [json.loads(line) for line in (out / "rounds" / "1" / "attempts.jsonl").read_text().splitlines()]
        held_ids = {row["id"] for row in read_jsonl(out / "eval.jsonl")}
        assert attempts and not {a["example_id"] for a in attempts} & held_ids
        failed = [a for a in attempts if not a["passed"]]
        if failed:  # (a 2-step student fails nearly every item; one that passed them all is asked plainly)
            missed = " ".join(failed[0]["prompt"][-1]["content"].split())[:60]
            prompts = [m["content"] for body in api.bodies for m in body["messages"] if isinstance(m["content"], str)]
            assert any("Student missed: a student model got these wrong" in p and missed in p for p in prompts)

        # Each round's adapter and eval are kept; improve.md has every round's table and the plot.
        for number in (1, 2):
            assert (out / "rounds" / str(number) / "student" / "adapter_config.json").is_file()
            assert json.loads((out / "rounds" / str(number) / "eval" / "eval.json").read_text())["n"] == \
                len(held_out.splitlines())
        report = (out / "improve.md").read_text()
        for number in (0, 1, 2):
            assert f"### Round {number}" in report
        assert "token_f1" in report and (out / "improve_leaves.png").is_file()
        assert "### Round 2" in done.stdout  # printed as the round ended

        again = distill("improve", str(config), "--rounds", "2", cwd=tmp_path, env=env, timeout=600)
        assert again.returncode == 0, error_lines(again.stderr)[-5:]
        assert api.total_paid() == paid + new_calls  # nothing asked again
        assert again.stdout.strip() == "round 0: distill run"  # every round finished: no step runs again
        assert (out / "improve.md").read_text() == report  # the same table
        assert (out / "eval.jsonl").read_bytes() == held_out


def test_improve_mistakes_are_one_line_and_exit_2(tmp_path):
    env = cli_env(tmp_path)
    tiny_copy(tmp_path)
    config = tmp_path / "job.yaml"
    config.write_text("taxonomy: tiny/qa.yaml\nout: run\nimprove: {new_item: 4}\n")
    done = distill("improve", str(config), "--rounds", "1", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        f"error: {config}:3: improve.new_item: unknown field 'new_item'; remove it or check its spelling; "
        "see docs/improve.md#the-improve-section"]
    assert not (tmp_path / "run").exists()  # refused before anything was made
