"""`distill review regenerate`: a leaf asked again through the generate library (openai: teacher against the
loopback server), new ids, resumable, and the new items in the queue and the data."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.generate.regenerate import regenerate
from distill.generate.runner import GenerateOptions, generate
from distill.records import read_jsonl
from distill.review.feedback import load_review
from distill.review.gate import evaluate
from distill.review.ledger import ReviewLedger
from distill.review.model import ReviewSettings
from distill.review.queue import build_queue
from distill.teachers.registry import teacher_options
from fakeapi import FakeAPI, Faults
from review_helpers import review_all, tiny_taxonomy

ASTHMA = "respiratory/asthma"


def taxonomy_of(tmp_path: Path) -> Path:
    """The taxonomy generated_run made its run from (the caller names it to regenerate)."""
    return tmp_path / "tiny" / "qa.yaml"


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-regenerate")
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def generated_run(tmp_path: Path, api: FakeAPI) -> Path:
    taxonomy = tiny_taxonomy(tmp_path, per_leaf=6)
    out = tmp_path / "run"
    generate(GenerateOptions(taxonomy=taxonomy, teacher="openai:gpt-4o-mini", out=out, curate=False, progress=False,
                             teacher_options=teacher_options(base_url=api.url + "/v1", max_retries=0)))
    return out


def test_a_rejected_leaf_is_asked_again_and_its_new_items_join_the_queue(tmp_path):
    with FakeAPI() as api:
        out = generated_run(tmp_path, api)
        before = {row["id"]: row for row in read_jsonl(out / "dataset.jsonl")}
        assert len(before) == 12
        build_queue(out, ReviewSettings(sample=1.0))
        asthma = sorted(i for i, row in before.items() if row["meta"]["taxonomy_path"] == ASTHMA)
        review_all(out, reject=set(asthma[:3]))
        paid = api.total_paid()

        report = regenerate(out, ASTHMA, taxonomy_of(tmp_path), base_url=api.url + "/v1", curate=False)
        assert report.round == 1 and report.asked == 3 and report.kept == 3 and report.queued == 3
        assert api.total_paid() == paid + 6  # two calls (question, answer) for each new item, nothing else

        after = {row["id"]: row for row in read_jsonl(out / "dataset.jsonl")}
        new = set(after) - set(before)
        assert len(new) == 3 and not new & set(before)  # new ids never collide with the old ones
        assert not set(asthma[:3]) & set(after)  # the rejected ones are out, with their reason
        assert {after[i]["meta"]["taxonomy_path"] for i in new} == {ASTHMA}
        with ReviewLedger.open(out) as ledger:
            rows = [r for r in ledger.queue() if r.item_id in new]
            assert {r.why for r in rows} == {"regenerated"} and len(rows) == 3
            plan_axes = sorted(str(ledger.store.statuses().get(i)) for i in new)
        assert plan_axes == ["generated"] * 3

        # The gate now judges the new round of asthma: waiting for its 3 reviews, then clean.
        review = load_review(out)
        assert evaluate(review.state, review.population, out).open_reviews == 3
        review_all(out)
        review = load_review(out)
        units = {u.name: u for u in evaluate(review.state, review.population, out).units}
        assert units[ASTHMA].reviewed == 3 and units[ASTHMA].rejected == 0

        # A plain re-run of `distill generate` keeps the regenerated items and asks for nothing.
        paid = api.total_paid()
        generate(GenerateOptions(taxonomy=tmp_path / "tiny" / "qa.yaml", teacher="openai:gpt-4o-mini", out=out,
                                 curate=False, progress=False,
                                 teacher_options=teacher_options(base_url=api.url + "/v1")))
        assert api.total_paid() == paid
        assert new <= {row["id"] for row in read_jsonl(out / "dataset.jsonl")}


def test_a_failed_regeneration_resumes_the_same_round(tmp_path):
    with FakeAPI() as api:
        out = generated_run(tmp_path, api)
        build_queue(out, ReviewSettings(sample=1.0))
        ids = [row["id"] for row in read_jsonl(out / "dataset.jsonl") if row["meta"]["taxonomy_path"] == ASTHMA]
        review_all(out, reject=set(ids[:2]))
    with FakeAPI(Faults(script=[500] * 20)) as broken:
        report = regenerate(out, ASTHMA, taxonomy_of(tmp_path), base_url=broken.url + "/v1", curate=False)
        assert report.asked == 2 and report.kept == 0 and report.failed == 2
        assert "run the same command again" in report.message
    with FakeAPI() as api:
        report = regenerate(out, ASTHMA, taxonomy_of(tmp_path), base_url=api.url + "/v1", curate=False)
    assert report.round == 1 and report.asked == 2 and report.kept == 2 and report.queued == 2
    with ReviewLedger.open(out) as ledger:
        assert len(ledger.regenerated()) == 2  # the same two items, not a second round


def test_regenerate_refuses_what_it_cannot_do(tmp_path):
    with FakeAPI() as api:
        out = generated_run(tmp_path, api)
        with pytest.raises(DistillError, match="no review queue"):
            regenerate(out, ASTHMA, taxonomy_of(tmp_path))
        build_queue(out, ReviewSettings(sample=1.0))
        with pytest.raises(DistillError, match="no leaf 'respiratory/knees'"):
            regenerate(out, "respiratory/knees", taxonomy_of(tmp_path))
        review_all(out)
        with pytest.raises(DistillError, match="nothing to regenerate"):
            regenerate(out, ASTHMA, taxonomy_of(tmp_path))
        # The taxonomy is the one the caller names, never the file run.db records (a run folder may come from
        # someone else): without it, one line saying so.
        with pytest.raises(DistillError, match="pass --taxonomy with the taxonomy of run 'tiny-qa'"):
            regenerate(out, ASTHMA)
