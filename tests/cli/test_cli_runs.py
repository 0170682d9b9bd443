"""A run under interruption and contention, through the installed `distill` script against the loopback server:
Ctrl-C (a real SIGINT), a second run on the same directory, a full disk, a read-only folder."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from cli_helpers import answers_in, cli_env, distill, distill_command, error_lines, in_own_mount, tiny_copy, wait_for
from fakeapi import FakeAPI, Faults


def generate_args(tmp_path: Path, url: str, out: Path, *extra: str) -> list[str]:
    return ["generate", "-t", str(tmp_path / "tiny" / "qa.yaml"), "--teacher", "openai:gpt-4o-mini",
            "--base-url", url, "--out", str(out), "--no-curate", *extra]


@pytest.mark.slow
@pytest.mark.parametrize("stop, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["ctrl-c", "sigterm", "sighup"])
def test_ctrl_c_exits_130_with_the_resume_hint_and_the_same_command_resumes(tmp_path, stop, code):
    """Ctrl-C, and SIGTERM (`kill`, a scheduler) and SIGHUP (the terminal closed) the same way: the same line,
    the shell's exit code for the signal (128 + its number), nothing answered lost, nothing answered asked
    again. Sent once three answers are in run.db; the cache is off and there is no pre-flight, so run.db alone
    remembers, and the server holds every request after the third, so the signal lands mid-run, with an item
    half done, however slow the machine."""
    tiny_copy(tmp_path, per_leaf=4)  # 8 items, 16 calls
    env = cli_env(tmp_path)
    out = tmp_path / "run"
    with FakeAPI(Faults(latency_s=0.3, hold_after=3)) as api:  # a slow server, one request at a time
        args = generate_args(tmp_path, api.url + "/v1", out, "--concurrency", "1", "--no-cache", "--no-preflight")
        proc = subprocess.Popen(distill_command(*args), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        wait_for(lambda: answers_in(out) >= 3, proc)
        proc.send_signal(stop)
        stdout, stderr = proc.communicate(timeout=120)  # an event waited for: a loaded machine is slow
        assert proc.returncode == code, stderr
        assert error_lines(stderr) == ["interrupted: everything finished so far is saved (run.db, checkpoints); "
                                       "run the same command again to resume"]
        assert api.total_paid() == 3
        stats = json.loads((out / "stats.json").read_text())  # the exports match run.db
        assert stats["counts"]["pending"] > 0 and stats["teacher_calls"]["calls"] >= 3
        # The request in flight at the interrupt (and one more a dispatcher worker takes from its queue after
        # the items were cancelled: distill/generate/dispatch.py still sends it, a known leak) are held, then
        # dropped here: never answered, never paid. Released once they are past their latency, so that none is
        # answered (and paid) to the run that is gone.
        deadline = time.monotonic() + 60
        while not api.arrived_all() and time.monotonic() < deadline:
            time.sleep(0.02)
        api.release()
        done = distill(*args, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
    assert len(api.paid) == 16  # every prompt answered
    assert set(api.paid.values()) == {1}  # the three answers were in run.db: the resume asked none again


@pytest.mark.slow
def test_a_second_run_on_the_same_directory_stops_at_once_and_nothing_is_paid_twice(tmp_path):
    tiny_copy(tmp_path, per_leaf=4)  # 8 items, 16 calls
    env = cli_env(tmp_path)
    # One request answered, then the server holds the rest: the first run is still running, however slowly
    # the machine starts the second.
    with FakeAPI(Faults(latency_s=0.2, hold_after=1)) as api:
        args = generate_args(tmp_path, api.url + "/v1", tmp_path / "run", "--concurrency", "1")
        first = subprocess.Popen(distill_command(*args), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        wait_for(lambda: api.total_paid() >= 1, first)
        # (Short timeouts: were it let in, its requests would be held too, and it would fail fast, not hang.)
        second = distill(*args, "--timeout", "1", "--max-retries", "0", cwd=tmp_path, env=env)
        assert first.poll() is None  # the second came while the first was running
        lines = error_lines(second.stderr)
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert f"is in use by another run (pid {first.pid} on " in lines[0] and "distill generate" in lines[0]
        api.release()  # the held request is dropped unanswered; the first run asks it again
        assert first.wait(timeout=120) == 0, first.stderr.read()
        again = distill(*args, cwd=tmp_path, env=env)  # the lock is free once the first ends
        assert again.returncode == 0, again.stderr
    assert api.total_paid() == 16 and set(api.paid.values()) == {1}  # 16 prompts, each paid once


RUN_CONFIG = """taxonomy: tiny/qa.yaml
out: run
split_fraction: 0.3
generate:
  teacher: openai:gpt-4o-mini
  preflight: false
  teacher_options: {{base_url: '{url}', concurrency: 2}}
train: {{student: local, qlora: false, max_steps: 100000, max_length: 64, batch_size: 1, grad_accum: 1,
        eval_before: false, save_steps: 100000, threads: 1}}
"""


@pytest.mark.model
@pytest.mark.train
def test_a_second_distill_run_is_refused_while_the_first_holds_the_folder(tmp_path):
    """The run lock covers the whole pipeline, not only generation: while the first `distill run` trains,
    a second one on the same folder stops before any stage, naming the first (it would train into the same
    student folder otherwise)."""
    tiny_copy(tmp_path)
    env = cli_env(tmp_path, PYTHONUNBUFFERED="1")
    with FakeAPI() as api:
        (tmp_path / "job.yaml").write_text(RUN_CONFIG.format(url=api.url + "/v1"))
        first = subprocess.Popen(distill_command("run", "job.yaml"), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        try:
            said = []
            for line in first.stdout:  # the train stage runs 100,000 steps: the first holds the folder a while
                said.append(line)
                if line.startswith("stage 3/4: train"):
                    break
            assert said and said[-1].startswith("stage 3/4: train"), "".join(said)
            second = subprocess.Popen(distill_command("run", "job.yaml"), cwd=tmp_path, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # Read until it ends, or until it starts a stage: then the lock let it in (and it would train on).
            stage = next((line for line in second.stdout if line.startswith("stage")), None)
            if stage is not None:
                second.kill()
            second.wait(timeout=120)
            assert stage is None, f"the second run started {stage!r} while the first was training"
            lines = error_lines(second.stderr.read())
            assert second.returncode == 2 and len(lines) == 1, lines
            assert f"is in use by another run (pid {first.pid} on " in lines[0] and "distill run job.yaml" in lines[0]
            assert "give another out:" in lines[0]  # the run config's field, not a flag `distill run` lacks
            assert first.poll() is None  # still training: it was the holder all along
        finally:
            first.kill()
            first.wait()


@pytest.mark.slow
def test_a_killed_run_leaves_no_stale_lock(tmp_path):
    tiny_copy(tmp_path, per_leaf=4)
    env = cli_env(tmp_path)
    with FakeAPI(Faults(latency_s=0.2)) as api:
        args = generate_args(tmp_path, api.url + "/v1", tmp_path / "run", "--concurrency", "1")
        proc = subprocess.Popen(distill_command(*args), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_for(lambda: api.total_paid() >= 2, proc)
        proc.kill()
        proc.wait()
        done = distill(*args, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "run.lock").is_file()  # the file stays; the kernel released its lock


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_keeps_what_was_committed(tmp_path):
    tiny_copy(tmp_path, per_leaf=60)  # 120 items: run.db outgrows the small disk
    env = cli_env(tmp_path)
    disk, kept = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    with FakeAPI() as api:
        command = " ".join(f"'{part}'" for part in distill_command(
            *generate_args(tmp_path, api.url + "/v1", disk / "run", "--no-preflight")))
        done = in_own_mount(tmp_path, f"mount -t tmpfs -o size=600k tmpfs '{disk}' || exit 99\n"
                                      f"{command}\nrc=$?\ncp -r '{disk}/run' '{kept}'\nexit $rc\n", env)
        output = done.stdout + done.stderr
        assert done.returncode == 1 and "Traceback" not in output, output
        lines = error_lines(done.stderr)
        assert len(lines) == 1 and "run.db: the disk is full" in lines[0], done.stderr
        db = sqlite3.connect(kept / "run.db")  # what was committed is intact
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        answered = db.execute("SELECT COUNT(*) FROM teacher_calls WHERE error IS NULL").fetchone()[0]
        db.close()
        assert 0 < answered < 240
        paid = api.total_paid()
        resumed = distill(*generate_args(tmp_path, api.url + "/v1", kept), cwd=tmp_path, env=env, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
    assert len(api.paid) == 240  # the rest was asked on a disk with room
    # The resume asked again only for what the full disk lost (answers of the last commit window at most).
    assert api.total_paid() - paid <= 240 - answered + 8


def test_an_out_folder_on_a_read_only_file_system_is_one_line(tmp_path):
    tiny_copy(tmp_path)
    env = cli_env(tmp_path)
    target = tmp_path / "ro"
    target.mkdir()
    with FakeAPI() as api:
        command = " ".join(f"'{part}'" for part in distill_command(
            *generate_args(tmp_path, api.url + "/v1", target / "run")))
        done = in_own_mount(tmp_path, f"mount -t tmpfs -o ro tmpfs '{target}' || exit 99\n{command}\n", env)
        assert sum(api.requests.values()) == 0
    lines = error_lines(done.stderr)
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    assert f"--out {target / 'run'}: cannot make this folder (Read-only file system)" in lines[0]


@pytest.mark.slow
def test_one_huge_record_does_not_blow_up_curate(tmp_path):
    """A 6 MB line (a runaway generation) is rejected by the cheap checks and never hashed or shingled:
    it took ~950 MB when every text went through dedup, rejected or not. The peak is compared with the same
    run without the huge line, so what the interpreter and its imports take on a given machine cancels out."""
    import os
    import random

    rng = random.Random(0)
    words = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega".split()
    rows = [{"messages": [{"role": "user", "content": f"What is item {i}?"},
                          {"role": "assistant", "content": f"Item {i} is " + " ".join(rng.choices(words, k=30)) + "."}]}
            for i in range(40)]
    huge = {"messages": [{"role": "user", "content": "Tell me everything?"},
                         {"role": "assistant", "content": " ".join(rng.choices(words, k=1_000_000)) + "."}]}

    def curate_peak_kb(name: str, data_rows: list[dict]) -> int:
        data = tmp_path / f"{name}.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in data_rows))
        proc = subprocess.Popen(distill_command("curate", str(data), "--out", str(tmp_path / name), "--language", "any"),
                                cwd=tmp_path, env=cli_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read()
        return usage.ru_maxrss  # kB on Linux

    small = curate_peak_kb("small", rows)
    big = curate_peak_kb("big", rows + [huge])
    assert (tmp_path / "big.jsonl").stat().st_size > 6_000_000
    rejected = [json.loads(line) for line in (tmp_path / "big" / "rejected.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejected if len(r["example"]["messages"][1]["content"]) > 1_000_000] == ["too_long"]
    # the line itself is read, parsed and written to rejected.jsonl (a few copies of 6 MB); hashing it took ~800 MB more
    assert big - small < 250_000, f"peak {big // 1024} MB with the huge line, {small // 1024} MB without"

