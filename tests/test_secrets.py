"""A key in `--base-url` (`?api-key=...`, `user:pass@`) reaches the server and nothing else: not run.lock,
run.db, stats.json, the cache, the output, nor the message a second run on the same folder prints."""

from __future__ import annotations

import base64
import fcntl
import subprocess
import time
from pathlib import Path

import pytest

from cli_helpers import cli_env, distill, distill_command, error_lines, tiny_copy
from fakeapi import FakeAPI, Faults

SECRET = "s3cr3t-DO-NOT-STORE-77c1"
URLS = {  # how each form of key must reach the server
    "query": ("{url}?api-key={secret}", lambda entry: entry["query"].get("api-key") == SECRET),
    "userinfo": ("{scheme}//user:{secret}@{host}", lambda entry: entry["headers"].get("authorization") ==
                 "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()),
}


def _base_url(api: FakeAPI, provider: str, form: str) -> str:
    url = api.url + ("/v1" if provider == "openai" else "")
    scheme, _, host = url.partition("//")
    return URLS[form][0].format(url=url, secret=SECRET, scheme=scheme, host=host)


def _holding_secret(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("form", ["query", "userinfo"])
def test_a_key_in_the_base_url_is_sent_to_the_server_and_never_written_or_shown(tmp_path, provider, form):
    env = cli_env(tmp_path, ANTHROPIC_API_KEY="sk-ant-test-secrets")
    args = ["generate", "-t", str(tiny_copy(tmp_path) / "qa.yaml"), "--teacher", f"{provider}:m", "--out", "run"]
    with FakeAPI() as api:
        args += ["--base-url", _base_url(api, provider, form)]
        api.hold()  # the first run waits on its first answers, holding run.lock
        first = subprocess.Popen(distill_command(*args), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not api.log and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)
        second = distill(*args, cwd=tmp_path, env=env)
        api.release()
        out, err = first.communicate(timeout=120)
        sent = list(api.log)
    assert first.returncode == 0, err
    # The key went where the server reads it, on every request, and the routes were whole.
    paths = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
    assert sent and all(entry["path"] == paths[provider] and URLS[form][1](entry) for entry in sent)
    # The second run names the first (its command, the key masked) in one line.
    lines = error_lines(second.stderr)
    assert second.returncode == 2 and len(lines) == 1 and "is in use by another run" in lines[0], second.stderr
    assert "--base-url" in lines[0] and "***" in lines[0] and SECRET not in lines[0]
    assert "--base-url" in (tmp_path / "run" / "run.lock").read_text()
    assert _holding_secret(tmp_path) == []  # run.lock, run.db, stats.json, dataset.jsonl, report.md, the cache
    assert SECRET not in out + err + second.stdout


def test_a_base_url_that_is_not_a_url_is_one_line_without_its_key(tmp_path):
    bad = f"http://user:{SECRET}@127.0.0.1:port/v1?api-key={SECRET}"
    done = distill("generate", "-t", str(tiny_copy(tmp_path) / "qa.yaml"), "--teacher", "openai:m", "--out", "run",
                   "--base-url", bad, cwd=tmp_path, env=cli_env(tmp_path))
    lines = error_lines(done.stderr)
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error: --base-url http://***@127.0.0.1:port/v1?api-key=***: not a URL"), lines[0]
    assert _holding_secret(tmp_path) == [] and SECRET not in done.stdout + done.stderr


@pytest.mark.slow
def test_a_server_echoing_the_key_of_the_url_in_its_error_has_it_masked(tmp_path):
    with FakeAPI(Faults(expect_query_key=("api-key", "the-right-key"))) as api:
        done = distill("generate", "-t", str(tiny_copy(tmp_path) / "qa.yaml"), "--teacher", "openai:m", "--out", "run",
                       "--base-url", _base_url(api, "openai", "query"), "--max-retries", "0",
                       cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 1 and "HTTP 401: Access denied: invalid api-key" in done.stderr, done.stderr
    assert SECRET not in done.stdout + done.stderr and _holding_secret(tmp_path) == []


def test_the_lock_message_masks_a_key_an_older_run_wrote_into_run_lock(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / "run.lock", "w") as held:
        held.write(f"pid 1 on host: distill generate --base-url http://10.0.0.1/v1?token={SECRET}\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = distill("generate", "-t", str(tiny_copy(tmp_path) / "qa.yaml"), "--teacher", "openai:m", "--out", "run",
                       cwd=tmp_path, env=cli_env(tmp_path))
    lines = error_lines(done.stderr)
    assert done.returncode == 2 and len(lines) == 1 and "http://10.0.0.1/v1?token=***" in lines[0], done.stderr
    assert SECRET not in done.stderr
