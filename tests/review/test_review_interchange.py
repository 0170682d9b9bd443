"""`distill review export`: the queue and its decisions, loaded back by the real `datasets` and `argilla` packages."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cli_helpers import ROOT as REPO
from distill.review.session import ReviewSession
from review_helpers import leaf_ids, make_dataset, queue_ids

IDS = leaf_ids("respiratory/asthma", 3) + leaf_ids("cardiology/arrhythmias", 3)


@pytest.fixture
def reviewed(tmp_path):
    directory = make_dataset(tmp_path / "run", per_leaf=3)
    queue_ids(directory, IDS)
    session = ReviewSession(directory)
    session.decide("ann", IDS[0], "accept", seconds=5.0)
    session.decide("ann", IDS[1], "reject", reasons=["wrong", "unsafe"], note="wrong drug")
    messages = [m.model_dump() for m in session.state().items[IDS[2]].messages()]
    messages[-1]["content"] = "A **fixed** answer."
    session.decide("ann", IDS[2], "edit", messages=messages)
    session.decide("ann", IDS[3], "accept")
    session.undo("ann")
    session.close()
    return directory


def export(directory: Path, fmt: str) -> Path:
    result = subprocess.run([sys.executable, "-m", "distill.cli", "review", "export", str(directory), "--format", fmt],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return directory / f"review-{fmt}"


def test_datasets_export_loads_with_load_dataset(reviewed):
    from datasets import load_dataset

    folder = export(reviewed, "datasets")
    queue = load_dataset(str(folder), "queue", split="train")
    rows = {row["id"]: row for row in queue}
    assert set(rows) == set(IDS)
    assert rows[IDS[1]]["outcome"] == "reject" and rows[IDS[1]]["reasons"] == ["wrong", "unsafe"]
    assert rows[IDS[2]]["current_messages"][-1]["content"] == "A **fixed** answer."
    assert rows[IDS[2]]["messages"][-1]["content"] != "A **fixed** answer."  # the original beside the edit
    assert rows[IDS[3]]["outcome"] is None  # accepted, then undone
    assert rows[IDS[0]]["reviews"] == [{"reviewer": "ann", "verdict": "accept", "reasons": [], "note": "",
                                        "seconds": 5.0, "at": rows[IDS[0]]["reviews"][0]["at"]}]
    log = load_dataset(str(folder), "decisions", split="train")
    assert [row["verdict"] for row in log] == ["accept", "reject", "edit", "accept", "undo"]


class _ArgillaMe(BaseHTTPRequestHandler):
    """The one endpoint the Argilla SDK calls on start-up (who am I); nothing else is served."""

    def do_GET(self):
        body = json.dumps({"id": str(uuid.uuid4()), "username": "owner", "role": "owner", "first_name": "Owner",
                           "last_name": None, "inserted_at": "2025-01-01T00:00:00",
                           "updated_at": "2025-01-01T00:00:00"}).encode()
        self.send_response(200 if self.path == "/api/v1/me" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_argilla_export_is_what_argilla_reads_from_disk(reviewed, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ArgillaMe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ARGILLA_API_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("ARGILLA_API_KEY", "test-key")
    try:
        import argilla as rg
        from argilla._models import DatasetModel

        folder = export(reviewed, "argilla")
        settings = rg.Settings.from_json(folder / ".argilla" / "settings.json")
        assert [f.name for f in settings.fields] == ["conversation"]
        assert [q.name for q in settings.questions] == ["verdict", "reasons", "edited_answer", "note"]
        assert "wrong" in [o["value"] for o in settings.questions["reasons"].serialize()["settings"]["options"]]
        model = DatasetModel(**json.loads((folder / ".argilla" / "dataset.json").read_text()))
        assert model.name == f"distill-review-{reviewed.name}"
        records = {r.id: r for r in (rg.Record.from_dict(d) for d in json.loads((folder / "records.json").read_text()))}
    finally:
        server.shutdown()
    assert set(records) == set(IDS)
    rejected = records[IDS[1]]
    assert rejected.suggestions["verdict"].value == "reject" and rejected.suggestions["reasons"].value == ["wrong", "unsafe"]
    assert rejected.suggestions["note"].value == "ann: wrong drug" and "ann" in rejected.suggestions["verdict"].agent
    assert records[IDS[2]].suggestions["edited_answer"].value == "A **fixed** answer."
    assert records[IDS[0]].metadata["seconds"] == 5.0 and records[IDS[0]].metadata["leaf"] == "respiratory/asthma"
    assert "verdict" not in records[IDS[3]].suggestions.to_dict()  # nothing stands: no suggestion
    assert records[IDS[0]].fields["conversation"][-1]["role"] == "assistant"


def test_export_refuses_an_unknown_format(reviewed):
    result = subprocess.run([sys.executable, "-m", "distill.cli", "review", "export", str(reviewed), "--format", "csv"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--format must be one of argilla, datasets" in result.stderr
