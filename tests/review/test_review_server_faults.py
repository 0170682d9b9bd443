"""The review server keeps every decision: a retry is the same reviewer, item and client id; a body past the
limit is refused before it is read; wrong types are a 400 naming the field; a full disk or a locked run.db is
a message for the reviewer; a bind off loopback warns that the page is plain HTTP. Nothing here may put a
traceback in front of a client or on the terminal."""

from __future__ import annotations

import json
import logging
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import time

import httpx
import pytest

from cli_helpers import cli_env, distill, distill_command
from distill.review.ledger import ReviewLedger
from distill.review.server import ReviewServer
from distill.store import MIGRATIONS
from review_helpers import SERVER_IDS as IDS, make_dataset, queue_ids


class Recorded(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server(run_dir):
    srv = ReviewServer(run_dir, port=0, owner="owner").start()
    # What uvicorn would print on the terminal: "Exception in ASGI application" and its traceback. Its
    # config replaces this logger's handlers when the server is made, so this one goes on after.
    srv.logged = Recorded()
    logging.getLogger("uvicorn.error").addHandler(srv.logged)
    yield srv
    logging.getLogger("uvicorn.error").removeHandler(srv.logged)
    srv.stop()
    assert [r.getMessage() for r in srv.logged.records] == []  # no traceback reached the terminal


def client(server, token: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=30,
                        headers={"Authorization": f"Bearer {token or server.owner_token}", "X-Distill": "1"})


def stored(run_dir) -> list[tuple]:
    with ReviewLedger.open(run_dir) as ledger:
        return [(d.reviewer, d.item_id, d.verdict, d.client_id) for d in ledger.decisions()]


def test_a_client_id_is_a_retry_only_from_the_same_reviewer_on_the_same_item(server, run_dir):
    with ReviewLedger.open(run_dir) as ledger:
        ann_token = ledger.add_reviewer("ann")
    owner, ann = client(server), client(server, ann_token)
    first = owner.post("/api/decide", json={"item_id": IDS[0], "verdict": "accept", "client_id": "c1"}).json()
    other_item = owner.post("/api/decide", json={"item_id": IDS[1], "verdict": "reject", "reasons": ["wrong"],
                                                 "client_id": "c1"}).json()
    other_reviewer = ann.post("/api/decide", json={"item_id": IDS[0], "verdict": "skip", "client_id": "c1"}).json()
    retry = owner.post("/api/decide", json={"item_id": IDS[0], "verdict": "accept", "client_id": "c1"}).json()
    assert other_item["decision"]["item_id"] == IDS[1] and other_item["decision"]["verdict"] == "reject"
    assert other_reviewer["decision"]["reviewer"] == "ann" and other_reviewer["decision"]["verdict"] == "skip"
    assert retry["decision"]["id"] == first["decision"]["id"]
    # Undo: one client id, two reviewers, two undos; the owner's retry finds the owner's.
    owner_undo = owner.post("/api/undo", json={"client_id": "u1"}).json()["undone"]
    ann_undo = ann.post("/api/undo", json={"client_id": "u1"}).json()["undone"]
    assert owner.post("/api/undo", json={"client_id": "u1"}).json()["undone"]["id"] == owner_undo["id"]
    assert (owner_undo["reviewer"], owner_undo["item_id"]) == ("owner", IDS[1])
    assert (ann_undo["reviewer"], ann_undo["undoes"]) == ("ann", other_reviewer["decision"]["id"])
    assert stored(run_dir) == [("owner", IDS[0], "accept", "c1"), ("owner", IDS[1], "reject", "c1"),
                               ("ann", IDS[0], "skip", "c1"), ("owner", IDS[1], "undo", "u1"),
                               ("ann", IDS[0], "undo", "u1")]


def test_a_run_db_from_before_the_new_key_keeps_its_decisions(tmp_path):
    directory = make_dataset(tmp_path / "run", per_leaf=6)
    db = sqlite3.connect(directory / "run.db")  # as the last release left it: three decisions, one undone
    for number, script in enumerate(MIGRATIONS[:4], start=1):
        db.executescript(script + f"; PRAGMA user_version = {number};")
    db.executemany("INSERT INTO review_decisions (item_id, reviewer, verdict, reasons, undoes, client_id, created_at)"
                   " VALUES (?, 'owner', ?, ?, ?, ?, 1.0)",
                   [(IDS[0], "accept", "[]", None, "c1"), (IDS[1], "reject", '["wrong"]', None, "c2"),
                    (IDS[1], "undo", "[]", 2, "c3")])
    db.commit()
    db.close()
    queue_ids(directory, IDS)
    srv = ReviewServer(directory, port=0, owner="owner").start()
    try:
        owner = client(srv)
        progress = owner.get("/api/queue").json()["progress"]
        assert (progress["done"], progress["todo"]) == (1, 11)  # the undo still withdraws the reject
        again = owner.post("/api/decide", json={"item_id": IDS[2], "verdict": "accept", "client_id": "c1"}).json()
        assert again["decision"]["item_id"] == IDS[2] and again["decision"]["id"] == 4
    finally:
        srv.stop()


WRONG_TYPES = [
    ({"item_id": IDS[0], "verdict": "reject", "reasons": "wrong"}, "reasons"),
    ({"item_id": IDS[0], "verdict": "reject", "reasons": 5}, "reasons"),
    ({"item_id": IDS[0], "verdict": "reject", "reasons": [["wrong"]]}, "reasons.0"),
    ({"item_id": IDS[0], "verdict": "edit", "messages": 5}, "messages"),
    ({"item_id": IDS[0], "verdict": "edit", "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    ({"item_id": IDS[0], "verdict": "accept", "seconds": "a while"}, "seconds"),
    ({"item_id": IDS[0], "verdict": "accept", "note": {"text": "hi"}}, "note"),
    ({"item_id": 7, "verdict": "accept"}, "item_id"),
    ({"item_id": IDS[0], "verdict": ["accept"]}, "verdict"),
    ({"item_id": IDS[0], "verdict": "accept", "client_id": ["c1"]}, "client_id"),
    ([IDS[0], "accept"], "the request body"),
]


@pytest.mark.parametrize("body,field", WRONG_TYPES, ids=[field for _, field in WRONG_TYPES])
def test_wrong_types_are_a_400_naming_the_field(server, run_dir, body, field):
    answer = client(server).post("/api/decide", json=body)
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]
    assert message.startswith(f"{field}: ") and "\n" not in message, message


def test_bodies_that_are_not_json_or_nest_too_deep_are_a_400(server, run_dir):
    owner = client(server)
    for body in (b"not json", b"[" * 100_000, b'{"item_id": "\xff"}'):
        answer = owner.post("/api/decide", content=body)
        assert answer.status_code == 400 and answer.json()["error"].startswith("the request body is not JSON")
    undo = owner.post("/api/undo", json={"client_id": {"id": 1}})
    assert undo.status_code == 400 and undo.json()["error"].startswith("client_id: ")
    assert stored(run_dir) == []


def raw_post(server, head: dict[str, str], parts: list[bytes], wait_s: float = 10) -> tuple[int, dict, float]:
    """POST over a bare socket: send the head and these parts of the body (not necessarily all of it), then read
    the answer. Returns its status, its JSON and how long it took after the last byte sent."""
    lines = ["POST /api/decide HTTP/1.1", f"Host: 127.0.0.1:{server.port}",
             f"Authorization: Bearer {server.owner_token}", "X-Distill: 1", "Content-Type: application/json",
             *(f"{k}: {v}" for k, v in head.items())]
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        for part in parts:
            sock.sendall(part)
        sent = time.monotonic()
        sock.settimeout(wait_s)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < content_length(answer):
            chunk = sock.recv(65536)  # socket.timeout here: the server is still waiting for the rest
            if not chunk:
                break
            answer += chunk
    head_bytes, _, payload = answer.partition(b"\r\n\r\n")
    return int(head_bytes.split()[1]), json.loads(payload), time.monotonic() - sent


def content_length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def test_a_body_past_the_limit_is_refused_before_it_is_read(server, run_dir):
    # 200 MB announced, 64 KiB sent: the answer comes at once, it does not wait for (or read) the rest.
    status, answer, waited = raw_post(server, {"Content-Length": str(200 * 10**6)}, [b'{"note": "' + b"x" * 65536])
    assert status == 413 and "2 MiB" in answer["error"] and waited < 5
    # No length announced (chunked): counted as it arrives, refused once past 2 MiB, before the body ends.
    chunk = b"x" * 65536
    parts = [b'10000\r\n' + chunk + b"\r\n"] * 34  # 2.125 MiB, and no last chunk: the body never ends
    status, answer, waited = raw_post(server, {"Transfer-Encoding": "chunked"}, parts)
    assert status == 413 and len(json.dumps(answer)) < 200 and waited < 5
    # An edit as large as a legitimate one still lands.
    owner = client(server)
    messages = owner.get(f"/api/item/{IDS[0]}").json()["messages"]
    messages[-1]["content"] = "A long answer. " * 60_000  # 900 kB
    edit = owner.post("/api/decide", json={"item_id": IDS[0], "verdict": "edit", "messages": messages})
    assert edit.status_code == 200
    assert stored(run_dir) == [("owner", IDS[0], "edit", None)]


def test_an_error_never_echoes_the_body(server):
    answer = client(server).post("/api/decide", json={"item_id": "x" * 1_000_000, "verdict": "accept"})
    assert answer.status_code == 400 and "not in the review queue" in answer.json()["error"]
    assert len(answer.content) < 300
    answer = client(server).post("/api/decide", json={"item_id": IDS[0], "verdict": "reject",
                                                      "reasons": ["y" * 1_000_000]})
    assert answer.status_code == 400 and "unknown reason" in answer.json()["error"] and len(answer.content) < 300


def test_a_locked_run_db_tells_the_reviewer_and_pressing_again_saves(server, run_dir):
    # The server waits out a lock for run.db's busy timeout (10 s) before it answers; 0.3 s here.
    server.session.ledger.db.execute("PRAGMA busy_timeout = 300")
    holder = sqlite3.connect(run_dir / "run.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing: run.db's write lock is taken
    body = {"item_id": IDS[0], "verdict": "accept", "client_id": "c1"}
    try:
        answer = client(server).post("/api/decide", json=body)
        assert answer.status_code == 503
        assert answer.json()["error"] == ("the run is busy (another process holds run.db's lock): your decision was "
                                          "not saved; press again")
        undo = client(server).post("/api/undo", json={"client_id": "u1"})
        assert undo.status_code == 200 and undo.json()["undone"] is None  # nothing of the owner's stands
        assert client(server).get("/api/queue").status_code == 200  # reading goes on meanwhile
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert client(server).post("/api/decide", json=body).status_code == 200
    assert stored(run_dir) == [("owner", IDS[0], "accept", "c1")]


@pytest.mark.slow
def test_a_full_disk_tells_the_reviewer_and_pressing_again_saves(run_dir, tmp_path):
    # A real full disk: the run on a 4 MB tmpfs in a mount namespace of the server's own (unshare -rm),
    # filled up by a shell beside the server while it runs, and freed again, when this test says so.
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.fail("this test needs a mount namespace (util-linux's unshare -rm)")
    disk, said = tmp_path / "disk", tmp_path / "said"
    disk.mkdir()
    said.mkdir()
    serve = shlex.join(distill_command("review", str(disk / "run"), "--serve", "--port", "0", "--reviewer", "dana"))
    d, s = shlex.quote(str(disk)), shlex.quote(str(said))
    script = (f"mount -t tmpfs -o size=4m tmpfs {d} || exit 99\n"
              f"cp -r {shlex.quote(str(run_dir))} {d}/run || exit 98\n"
              f"wait_for() {{ for i in $(seq 1200); do [ -e {s}/$1 ] && return 0; sleep 0.05; done; exit 1; }}\n"
              f"(wait_for fill; dd if=/dev/zero of={d}/filler bs=4096 2>/dev/null; touch {s}/filled\n"
              f" wait_for free; rm {d}/filler; touch {s}/freed) &\n"
              f"exec {serve}\n")
    proc = subprocess.Popen(["unshare", "-rm", "sh", "-c", script], cwd=tmp_path, env=cli_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def say(word: str, answer: str) -> None:
        (said / word).touch()
        deadline = time.time() + 60
        while not (said / answer).exists():
            assert time.time() < deadline, f"the shell beside the server did not {word} the disk"
            time.sleep(0.05)

    try:
        found = None
        while found is None:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            found = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=(\S+)", line)
        with httpx.Client(base_url=found.group(1), timeout=30,
                          headers={"Authorization": f"Bearer {found.group(2)}", "X-Distill": "1"}) as dana:
            messages = dana.get(f"/api/item/{IDS[0]}").json()["messages"]
            messages[-1]["content"] = "An answer rewritten at length. " * 2000  # 62 kB to write
            body = {"item_id": IDS[0], "verdict": "edit", "messages": messages, "client_id": "e1"}
            say("fill", "filled")
            answer = dana.post("/api/decide", json=body)
            assert answer.status_code == 507, answer.text
            assert answer.json()["error"] == ("the disk is full: your decision was not saved; free some space and "
                                              "press again")
            assert dana.get("/api/queue").json()["progress"]["done"] == 0
            say("free", "freed")
            again = dana.post("/api/decide", json=body)
            assert again.status_code == 200 and again.json()["decision"]["messages"][-1] == messages[-1]
            assert dana.get("/api/queue").json()["progress"]["done"] == 1
    finally:
        (said / "free").touch()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err


@pytest.mark.slow
def test_serving_off_loopback_warns_that_the_page_is_plain_http(run_dir, tmp_path):
    env = cli_env(tmp_path)
    token = distill("review", "add-reviewer", str(run_dir), "ann", cwd=tmp_path, env=env).stdout.split()[3]
    proc = subprocess.Popen(distill_command("review", str(run_dir), "--serve", "--host", "0.0.0.0", "--port", "0"),
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        warning = proc.stderr.readline()
        assert warning.strip() == ("warning: the review page is plain HTTP: anyone on the network can read the data "
                                   "and, with the token, decide; put it behind TLS or use an SSH tunnel")
        port = None
        while port is None:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            found = re.search(r"http://0\.0\.0\.0:(\d+)/", line)
            port = found and found.group(1)
        base = f"http://127.0.0.1:{port}/"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}", "X-Distill": "1"}) as ann:
            for _ in range(100):
                try:
                    ann.get("/api/hello")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            # What once was a 500 with a traceback on this terminal.
            wrong = ann.post("/api/decide", json={"item_id": IDS[0], "verdict": "reject", "reasons": 5})
            assert wrong.status_code == 400
            assert ann.post("/api/decide", content=b"[" * 100_000).status_code == 400
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "plain HTTP" not in err  # the warning was said once, at the start

