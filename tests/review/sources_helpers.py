"""A run generated from the shipped clinic documents (`distill generate --documents`) against the loopback API, and
queued for review: the fridge leaf's items are answered from page 3 of protocols.pdf with a planted faithful
answer; every other request gets the fake API's usual words."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from cli_helpers import ROOT, cli_env, distill
from fakeapi import FakeAPI, Faults

TAXONOMY = ROOT / "taxonomies" / "clinic-protocols.yaml"
DOCUMENTS = ROOT / "documents" / "clinic-protocols"
QUESTION = "How often is the vaccine refrigerator log at Harbour Lane countersigned?"
# Its first two sentences say what two sentences of the passage say; its last shares one word ("vaccines") with
# the passage, a topic, not a claim: it marks nothing.
ANSWER = ("The vaccine refrigerator log at Harbour Lane is countersigned every Friday by the duty pharmacist. "
          "The refrigerators are never used for food, specimens or drinks. Vaccines need care.")
SUPPORTING = ("The\nvaccine refrigerator log at Harbour Lane is countersigned every Friday by the duty pharmacist, "
              "who initials\nthe lowest and highest reading of the week.")
ALSO_SUPPORTING = "The refrigerators\nare never used for food, specimens or drinks, and the doors are kept locked."


def teacher(request: dict[str, Any]) -> str | None:
    """Faults.user: the question step of an item whose passage is the fridge page gets QUESTION, and the answer
    step ANSWER; anything else (None) the fake API's own words."""
    if request.get("response_format"):
        return None
    last = request["messages"][-1]["content"]
    flat = " ".join((last if isinstance(last, str) else " ".join(p.get("text", "") for p in last)).split())
    if flat.endswith(QUESTION):
        return ANSWER
    return QUESTION if "countersigned every Friday" in flat else None


def documents_run(tmp_path: Path) -> Path:
    """A copy of the shipped taxonomy and documents, a run generated from them (the folder named relative to
    `tmp_path`, as a user types it), every kept example queued."""
    taxonomy = tmp_path / "taxonomies" / TAXONOMY.name
    taxonomy.parent.mkdir(parents=True)
    shutil.copy(TAXONOMY, taxonomy)
    shutil.copytree(DOCUMENTS, tmp_path / "documents" / DOCUMENTS.name)
    env = cli_env(tmp_path)
    with FakeAPI(Faults(user=teacher)) as api:
        done = distill("generate", "--taxonomy", str(taxonomy), "--teacher", "openai:test-model", "--base-url",
                       api.url + "/v1", "--out", str(tmp_path / "run"), "--no-preflight", "--per-leaf", "1",
                       # The leaf without a document keeps its one item whatever the fake's words are about.
                       "--skip-check", "off_topic", "--documents", "documents/clinic-protocols", cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    queued = distill("review", str(tmp_path / "run"), "--sample", "1", cwd=tmp_path, env=env)
    assert queued.returncode == 0, queued.stderr
    return tmp_path / "run"


def kept(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "dataset.jsonl").read_text().splitlines()]


def fridge_item(run: Path) -> dict:
    """The kept example made from page 3 of protocols.pdf."""
    return next(e for e in kept(run) if (e["meta"].get("source") or {}).get("page") == 3)
