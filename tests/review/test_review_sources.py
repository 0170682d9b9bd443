"""The review of a run made from the user's documents, through the server's HTTP API: a card made from a passage
carries the passage (file, page, headings, text as the run recorded it) and the sentences that support its answer;
its link serves the original file, only a file documents.json records, only while it is unchanged; nothing a
request names is ever read from elsewhere."""

from __future__ import annotations

import http.client
import json
import shutil
from pathlib import Path

import httpx
import pytest
from sources_helpers import ALSO_SUPPORTING, DOCUMENTS, SUPPORTING, documents_run, fridge_item, kept

from distill.review.server import ReviewServer
from review_helpers import example_row, make_dataset, queue_ids

# The tests marked slow share one run generated from the documents (about 5 s).


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return documents_run(tmp_path_factory.mktemp("sources"))


@pytest.fixture
def server(run):
    srv = ReviewServer(run, port=0, owner="kim").start()
    yield srv
    srv.stop()


def client(server) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.owner_token}"})


def raw_get(server, path: str) -> tuple[int, bytes]:
    """GET `path` exactly as written: no client library normalises `..` or decodes `%2e` on the way."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {server.owner_token}"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.slow
def test_a_card_made_from_a_passage_shows_it_with_the_supporting_sentence(run, server):
    item = fridge_item(run)
    recorded = json.loads((run / "documents.json").read_text())
    with client(server) as api:
        source = api.get(f"/api/item/{item['id']}").json()["source"]
        others = [api.get(f"/api/item/{e['id']}").json() for e in kept(run) if "source" not in e["meta"]]
    assert (source["file"], source["page"], source["headings"]) == ("protocols.pdf", 3, ["Medication storage"])
    assert source["text"] == recorded["passages"][item["meta"]["source"]["id"]]
    marked = [source["text"][span["start"]:span["end"]] for span in source["spans"]]
    # The two sentences the answer restates, in passage order; nothing for its last sentence, which shares one
    # word with the page's table of temperature ranges.
    assert marked == [ALSO_SUPPORTING, SUPPORTING]
    assert source["href"] == "/documents/protocols.pdf#page=3"
    # The folder is recorded whole, so the review finds it from wherever it is started (this test's folder is
    # not the one `distill generate` ran in).
    assert recorded["folder"] == str(run.parent / "documents" / "clinic-protocols")
    # An example not made from a passage has no source (and its page looks as before).
    assert others and all(card["source"] is None for card in others)


@pytest.mark.slow
def test_the_link_serves_the_recorded_file_and_only_with_the_token(run, server):
    href = fridge_item(run)["meta"]["source"]["file"]
    with client(server) as api:
        pdf = api.get(f"/documents/{href}")
        html = api.get("/documents/patient-information.html")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content == (DOCUMENTS / "protocols.pdf").read_bytes()
    # The user's HTML page runs no script in the review's origin.
    assert html.status_code == 200 and html.headers["content-security-policy"].startswith("sandbox")
    assert httpx.get(server.base_url + "documents/protocols.pdf").status_code == 401


@pytest.mark.slow
def test_a_file_changed_or_gone_since_the_run_is_said_so(run, server):
    recorded = json.loads((run / "documents.json").read_text())
    original = str(run.parent / "documents" / "clinic-protocols" / "protocols.pdf")
    kept_bytes = Path(original).read_bytes()
    item = fridge_item(run)
    try:
        Path(original).write_bytes(kept_bytes + b"\n% edited since\n")
        with client(server) as api:
            changed = api.get("/documents/protocols.pdf")
            as_json = api.get("/documents/protocols.pdf", headers={"Accept": "application/json"})
            card = api.get(f"/api/item/{item['id']}").json()
        assert changed.status_code == 409 and "protocols.pdf has changed since the run" in changed.text
        assert b"%PDF" not in changed.content
        assert as_json.status_code == 409 and "changed since the run" in as_json.json()["error"]
        # The passage shown is still the text the run read.
        assert card["source"]["text"] == recorded["passages"][item["meta"]["source"]["id"]]
        shutil.move(original, original + ".moved")
        with client(server) as api:
            gone = api.get("/documents/protocols.pdf")
        assert gone.status_code == 410 and "protocols.pdf is gone since the run" in gone.text
    finally:  # the documents folder is the module's: put the file back as it was
        if Path(original + ".moved").exists():
            shutil.move(original + ".moved", original)
        Path(original).write_bytes(kept_bytes)


@pytest.mark.slow
def test_a_request_names_no_path_of_its_own(run, server):
    recorded = json.loads((run / "documents.json").read_text())
    folder = recorded["folder"]
    secret = run.parent / "documents" / "secret.txt"  # beside the documents folder, never recorded
    secret.write_text("SECRET: not a document of the run")
    attempts = ["/documents/../secret.txt", "/documents/%2e%2e/secret.txt", "/documents/..%2fsecret.txt",
                "/documents/%2e%2e%2fsecret.txt", "/documents/clinic-protocols/../secret.txt",
                f"/documents/{folder}/../secret.txt", f"/documents/%2F{folder[1:]}/protocols.pdf",
                f"/documents/{secret}", "/documents//etc/passwd", "/documents/%2Fetc%2Fpasswd",
                "/documents/../../../../etc/passwd", "/documents/..%5csecret.txt", "/documents/run.db",
                "/documents/documents.json", "/documents/", "/documents/protocols.pdf%00.txt"]
    for path in attempts:
        status, body = raw_get(server, path)
        assert status in (400, 404), path
        assert b"SECRET" not in body and b"%PDF" not in body and b"root:" not in body, path


def test_a_run_without_documents_reviews_as_before(tmp_path):
    directory = make_dataset(tmp_path / "run", per_leaf=1, extra=[example_row("plain", "respiratory/asthma",
                                                                              "What is a spacer?", "A tube.")])
    queue_ids(directory, ["plain"])
    srv = ReviewServer(directory, port=0, owner="kim").start()
    try:
        with client(srv) as api:
            assert api.get("/api/item/plain").json()["source"] is None
            assert api.get("/documents/protocols.pdf").status_code == 404
    finally:
        srv.stop()
