"""The review in the whole workflow: `distill run` stops for it and goes on after it, training sees only what
survived, the model card carries the review, and `--force` is recorded. Real training on CPU (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cli_helpers import ROOT as REPO
from distill.records import read_jsonl
from distill.review.model import ReviewSettings
from distill.review.queue import build_queue
from distill.review.session import ReviewSession
from fakeapi import FakeAPI
from review_helpers import make_dataset, tiny_taxonomy

TRAIN = ("{student: local, qlora: false, max_steps: 1, max_length: 192, batch_size: 2, grad_accum: 1, "
         "eval_before: false, threads: 1}")


def distill(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distill.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", **(env or {})})


@pytest.mark.model
@pytest.mark.train
def test_run_stops_for_the_review_then_trains_only_on_what_survived(tmp_path):
    tiny_taxonomy(tmp_path, per_leaf=6)
    job = tmp_path / "job.yaml"
    job.write_text("taxonomy: tiny/qa.yaml\nout: run\nsplit_fraction: 0.25\n"
                   "generate: {teacher: 'openai:gpt-4o-mini', curate: false}\n"
                   f"train: {TRAIN}\neval: {{max_new_tokens: 8, resamples: 20, threads: 1}}\n"
                   "review: {sample: 1.0, seed: 3}\n")
    out = tmp_path / "run"
    with FakeAPI() as api:
        env = {"OPENAI_BASE_URL": api.url + "/v1", "OPENAI_API_KEY": "sk-test", "DISTILL_CACHE_DIR": str(tmp_path)}
        first = distill("run", str(job), env=env)
    assert first.returncode == 4, first.stderr
    assert "waiting for review: 12 of 12 queued reviews still open" in first.stderr
    assert json.loads((out / "pipeline.json").read_text())["done"].keys() == {"generate"}

    session = ReviewSession(out)
    ids = list(session.state().items)
    rejected, fixed = ids[:2], ids[2]
    for item_id in ids:
        if item_id in rejected:
            session.decide("rita", item_id, "reject", reasons=["wrong"])
        elif item_id == fixed:
            messages = [m.model_dump() for m in session.state().items[item_id].messages()]
            messages[-1]["content"] = "A reviewed and corrected answer."
            session.decide("rita", item_id, "edit", messages=messages)
        else:
            session.decide("rita", item_id, "accept")
    session.close()

    second = distill("run", str(job))
    assert second.returncode == 0, second.stderr
    assert "review passed" in second.stdout
    trained = {row["id"]: row for name in ("train.jsonl", "eval.jsonl") for row in read_jsonl(out / name)}
    assert len(trained) == 10 and not set(rejected) & set(trained)
    assert trained[fixed]["messages"][-1]["content"] == "A reviewed and corrected answer."
    manifest = json.loads((out / "student" / "distill_manifest.json").read_text())
    assert manifest["review"]["gate"] == "pass" and manifest["review"]["forced"] is False
    card = (out / "student" / "README.md").read_text()
    assert "## Human review" in card and "Read 12 of 12 queued items: 9 accepted, 1 edited (the edits are used)" in card
    assert "2 rejected (left out)" in card and "wrong or hallucinated (2)" in card


@pytest.mark.model
@pytest.mark.train
def test_force_trains_past_the_gate_and_the_adapter_says_so(tmp_path):
    directory = make_dataset(tmp_path / "run", per_leaf=4)
    build_queue(directory, ReviewSettings(size=8))
    config = tmp_path / "train.yaml"
    config.write_text(TRAIN.strip("{}").replace(", ", "\n").replace(": ", ": ") + "\n")
    refused = distill("train", str(directory), "--config", str(config))
    assert refused.returncode == 4 and "waiting for review" in refused.stderr
    forced = distill("train", str(directory), "--config", str(config), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "--force: training despite the review gate (waiting for review" in forced.stderr
    manifest = json.loads((directory / "student" / "distill_manifest.json").read_text())
    assert manifest["review"]["forced"] is True and manifest["review"]["gate"] == "waiting"
    card = (directory / "student" / "README.md").read_text()
    assert "**Gate overridden with `--force`**" in card
