"""The review server's API: the token check, writes, several reviewers at once, and the command that starts it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from cli_helpers import ROOT as REPO
from distill.errors import DistillError
from distill.review.ledger import ReviewLedger
from distill.review.model import QueueRow
from distill.review.server import ReviewServer
from distill.review.state import ReviewState
from review_helpers import SERVER_IDS as IDS


@pytest.fixture
def server(run_dir):
    srv = ReviewServer(run_dir, port=0, owner="owner").start()
    yield srv
    srv.stop()


def test_every_request_needs_the_token(server):
    base = server.base_url
    with httpx.Client() as anonymous:
        for path in ("", "api/queue", "api/hello", f"api/item/{IDS[0]}", "static/review.js"):
            assert anonymous.get(base + path).status_code == 401, path
        assert anonymous.get(base + "?token=not-the-token").status_code == 401
        assert anonymous.post(base + "api/decide", json={"item_id": IDS[0], "verdict": "accept"},
                              headers={"X-Distill": "1"}).status_code == 401
    with httpx.Client() as browser:
        first = browser.get(server.url, follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/"  # the token leaves the address bar
        cookie = first.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = browser.get(base)
        assert page.status_code == 200 and "distill review" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert browser.get(base + "static/review.js").headers["content-type"].startswith("text/javascript")
        # Writes need the custom header a cross-site form cannot send.
        assert browser.post(base + "api/decide", json={"item_id": IDS[0], "verdict": "accept"}).status_code == 403
    bearer = httpx.get(base + "api/hello", headers={"Authorization": f"Bearer {server.owner_token}"})
    assert bearer.status_code == 200 and bearer.json()["reviewer"] == "owner"
    # A loopback review refuses other Host names (DNS rebinding).
    assert httpx.get(base, headers={"Host": "attacker.example"}).status_code == 400


def test_decisions_through_the_api(server, run_dir):
    client = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.owner_token}",
                                                             "X-Distill": "1"})
    overview = client.get("/api/queue").json()
    progress = overview["progress"]
    assert (progress["items"], progress["done"], progress["todo"]) == (12, 0, 12)
    card = client.get(f"/api/item/{IDS[0]}").json()
    assert card["leaf"] == "respiratory/asthma" and card["messages"][-1]["role"] == "assistant"
    assert card["seeds"] == [{"id": "seed-asthma-1", "text": None}] and card["checks"]
    assert client.post("/api/decide", json={"item_id": IDS[0], "verdict": "reject"}).status_code == 400
    ok = client.post("/api/decide", json={"item_id": IDS[0], "verdict": "reject", "reasons": ["unsafe"],
                                          "seconds": 4.2, "client_id": "x1"})
    assert ok.status_code == 200 and ok.json()["decision"]["reviewer"] == "owner"
    again = client.post("/api/decide", json={"item_id": IDS[0], "verdict": "reject", "reasons": ["unsafe"],
                                             "client_id": "x1"})
    assert again.json()["decision"]["id"] == ok.json()["decision"]["id"]  # a retry lands once
    undone = client.post("/api/undo", json={"client_id": "u1"}).json()["undone"]
    assert undone["undoes"] == ok.json()["decision"]["id"]
    assert client.post("/api/decide", content=b"not json").status_code == 400
    assert client.get("/api/queue").json()["progress"]["done"] == 0
    with ReviewLedger.open(run_dir) as ledger:
        assert [d.verdict for d in ledger.decisions()] == ["reject", "undo"]


def test_other_binds_need_per_reviewer_tokens_and_name_each_decision(run_dir):
    with pytest.raises(DistillError, match="add-reviewer"):
        ReviewServer(run_dir, host="0.0.0.0", port=0)
    with ReviewLedger.open(run_dir) as ledger:
        tokens = {name: ledger.add_reviewer(name) for name in ("ann", "bob", "cat")}
        # Two overlap slots for every item, so ann and bob both read each one.
        ledger.add_to_queue([], [QueueRow(item_id=i, slot=1, ord=k, why="sample") for k, i in enumerate(IDS)])
        assert ledger.revoke_reviewer("cat")
    server = ReviewServer(run_dir, host="0.0.0.0", port=0).start()
    try:
        assert server.owner_token is None and "token" not in server.url
        base = f"http://127.0.0.1:{server.port}/"
        assert httpx.get(base + "api/hello", headers={"Authorization": f"Bearer {tokens['cat']}"}).status_code == 401

        def review(name: str, verdicts: list[str]) -> None:
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tokens[name]}", "X-Distill": "1"},
                              timeout=30) as client:
                assert client.get("/api/hello").json()["reviewer"] == name
                for item_id, verdict in zip(IDS, verdicts):
                    body = {"item_id": item_id, "verdict": verdict, "client_id": f"{name}-{item_id}"}
                    if verdict == "reject":
                        body["reasons"] = ["wrong"]
                    assert client.post("/api/decide", json=body).status_code == 200

        ann = ["accept"] * 10 + ["reject", "reject"]
        bob = ["accept"] * 9 + ["reject", "reject", "accept"]
        threads = [threading.Thread(target=review, args=args) for args in (("ann", ann), ("bob", bob))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        figures = httpx.get(base + "api/queue", headers={"Authorization": f"Bearer {tokens['ann']}"}).json()
    finally:
        server.stop()
    with ReviewLedger.open(run_dir) as ledger:
        decisions = ledger.decisions()
        state = ReviewState.load(ledger)
    assert sorted({d.reviewer for d in decisions}) == ["ann", "bob"] and len(decisions) == 24
    assert all(item.done for item in state.items.values())
    agreement = figures["figures"]["agreement"]
    assert agreement["method"] == "cohen" and agreement["items"] == 12 and agreement["percent_agreement"] == 10 / 12
    assert figures["figures"]["rejected"] == 3  # a reject by either reviewer drops the item


@pytest.mark.slow
def test_serve_command_prints_a_url_and_saves_the_figures_on_exit(run_dir):
    env = {**os.environ, "COLUMNS": "250"}
    proc = subprocess.Popen([sys.executable, "-m", "distill.cli", "review", str(run_dir), "--serve", "--port", "0",
                             "--reviewer", "dana"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        url = None
        deadline = time.time() + 60
        while url is None and time.time() < deadline:
            line = proc.stdout.readline()
            found = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=(\S+)", line)
            if found:
                url, token = found.group(1), found.group(2)
        assert url, proc.stderr.read()
        for _ in range(50):
            try:
                if httpx.get(url).status_code == 401:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}", "X-Distill": "1"})
        assert client.get("/api/hello").json()["reviewer"] == "dana"
        assert client.post("/api/decide", json={"item_id": IDS[0], "verdict": "accept"}).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "plain HTTP" not in err  # loopback: nobody else can listen in
    assert "gate: waiting for review: 11 of 12" in out
    assert (run_dir / "stats.json").is_file()


@pytest.mark.slow
def test_busy_port_is_a_clear_error(run_dir, server):
    result = subprocess.run([sys.executable, "-m", "distill.cli", "review", str(run_dir), "--serve", "--port",
                             str(server.port)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and f"cannot listen on 127.0.0.1:{server.port}" in result.stderr


def test_a_card_one_reviewer_opened_is_not_handed_to_another(run_dir):
    """Several reviewers on one queue: a card ann has open shows as claimed to bob (his page skips it), not to
    ann herself, so two people do not read the same item at the same moment."""
    with ReviewLedger.open(run_dir) as ledger:
        tokens = {name: ledger.add_reviewer(name) for name in ("ann", "bob")}
    server = ReviewServer(run_dir, port=0, owner="owner").start()
    try:
        def client(name: str) -> httpx.Client:
            return httpx.Client(base_url=server.base_url, timeout=30,
                                headers={"Authorization": f"Bearer {tokens[name]}", "X-Distill": "1"})

        def claimed(c: httpx.Client) -> set[str]:
            return {item["id"] for item in c.get("/api/queue").json()["items"] if item["claimed"]}

        with client("ann") as ann, client("bob") as bob:
            assert claimed(ann) == claimed(bob) == set()
            assert ann.get(f"/api/item/{IDS[0]}").status_code == 200  # ann opens the first card
            assert claimed(bob) == {IDS[0]} and claimed(ann) == set()
            assert bob.get(f"/api/item/{IDS[1]}").status_code == 200  # bob takes the next one
            assert claimed(ann) == {IDS[1]} and claimed(bob) == {IDS[0]}
    finally:
        server.stop()
