"""The gate: training waits for the review, and refuses a set (or a branch) whose reject rate may be too high."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cli_helpers import ROOT as REPO
from distill.errors import ReviewPending
from distill.owned import OwnedFolder
from distill.review.feedback import load_review
from distill.review.gate import evaluate, require_pass
from distill.review.ledger import ReviewLedger
from distill.review.model import ReviewSettings
from review_helpers import leaf_ids, make_dataset, queue_ids, review_all

ASTHMA, COLD, AF, HF = "respiratory/asthma", "respiratory/common-cold", "cardiology/arrhythmias", "cardiology/heart-failure"


def gate(directory):
    review = load_review(directory)
    return evaluate(review.state, review.population, directory)


def distill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distill.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})


def test_training_waits_until_every_queued_review_is_in(tmp_path):
    directory = make_dataset(tmp_path / "run", per_leaf=10)
    queue_ids(directory, leaf_ids(ASTHMA, 10) + leaf_ids(COLD, 10) + leaf_ids(AF, 10) + leaf_ids(HF, 6))
    result = distill("train", str(directory), "--student", "local")
    assert result.returncode == 4
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "waiting for review: 36 of 36 queued reviews still open" in lines[0]
    assert "Traceback" not in result.stderr and not (directory / "train.jsonl").exists()
    with pytest.raises(ReviewPending):
        require_pass(directory)
    review_all(directory)
    # Read in full, clean: only 4 unread items remain (heart-failure) and 36 clean reviews pass the bound.
    assert require_pass(directory).verdict == "pass"


def test_a_branch_over_the_threshold_fails_even_when_the_whole_set_passes(tmp_path):
    sizes = {ASTHMA: 100, COLD: 100, AF: 100, HF: 100}
    directory = make_dataset(tmp_path / "run", per_leaf=sizes)
    read = leaf_ids(ASTHMA, 50) + leaf_ids(COLD, 80) + leaf_ids(AF, 80) + leaf_ids(HF, 80)
    queue_ids(directory, read)
    review_all(directory, reject=set(leaf_ids(ASTHMA, 12)))
    result = gate(directory)
    units = {u.name: u for u in result.units}
    assert units["(all)"].verdict == "pass" and units["(all)"].ci[1] < 0.10  # 12 of 290: the set alone would pass
    assert units[ASTHMA].verdict == "fail" and units[ASTHMA].ci[0] > 0.10
    assert result.verdict == "fail"
    assert f"review gate: {ASTHMA}: 12 rejects in 50 reviews" in result.message
    assert f"distill review regenerate {directory} --leaf {ASTHMA}" in result.message
    cli = distill("train", str(directory))
    assert cli.returncode == 4 and ASTHMA in cli.stderr and "threshold 10.0%" in cli.stderr
    # A looser threshold, recorded with the queue, lets the same decisions pass.
    with ReviewLedger.open(directory) as ledger:
        ledger.save_settings(ReviewSettings(threshold=0.40))
    assert gate(directory).verdict == "pass"


def test_leaves_too_small_to_judge_alone_are_judged_with_their_siblings(tmp_path):
    sizes = {ASTHMA: 100, COLD: 100, AF: 60, HF: 60}
    directory = make_dataset(tmp_path / "run", per_leaf=sizes)
    queue_ids(directory, leaf_ids(ASTHMA, 90) + leaf_ids(COLD, 90) + leaf_ids(AF, 20) + leaf_ids(HF, 20))
    review_all(directory, reject=set(leaf_ids(AF, 6)))
    result = gate(directory)
    units = {u.name: u for u in result.units}
    assert result.min_reviews == 35
    assert units[AF].verdict == "small" and not units[AF].judged  # 20 reviews: cannot pass or fail alone
    assert units["cardiology"].judged and units["cardiology"].verdict == "undecided"  # 6 of 40 with its sibling
    assert units["(all)"].verdict == "pass"
    assert result.verdict == "fail" and result.message.startswith("review gate: cardiology: 6 rejects in 40 reviews")
    more = units["cardiology"].more
    assert more and f"about {more} more reviews would decide it" in result.message


def test_a_branch_read_in_full_passes_whatever_its_rate(tmp_path):
    sizes = {ASTHMA: 10, COLD: 200, AF: 0, HF: 0}
    directory = make_dataset(tmp_path / "run", per_leaf=sizes)
    queue_ids(directory, leaf_ids(ASTHMA, 10) + leaf_ids(COLD, 200))
    review_all(directory, reject=set(leaf_ids(ASTHMA, 5)))
    units = {u.name: u for u in gate(directory).units}
    assert units[ASTHMA].verdict == "pass" and units[ASTHMA].reject_rate == 0.5  # its rejects are out of the data
    assert gate(directory).verdict == "pass"


def test_a_branch_read_in_full_and_all_rejected_is_emptied_not_passed(tmp_path):
    sizes = {ASTHMA: 6, COLD: 200, AF: 0, HF: 0}
    directory = make_dataset(tmp_path / "run", per_leaf=sizes)
    queue_ids(directory, leaf_ids(ASTHMA, 6) + leaf_ids(COLD, 200))
    review_all(directory, reject=set(leaf_ids(ASTHMA, 6)))
    result = gate(directory)
    units = {u.name: u for u in result.units}
    assert units[ASTHMA].verdict == "emptied"  # nothing of it is left: not a "pass" a person would trust
    assert result.verdict == "pass" and f"every item of {ASTHMA}, respiratory was rejected" not in result.message
    assert f"every item of {ASTHMA} was rejected: nothing of it trains" in result.message
    status = distill("review", "status", str(directory))
    assert status.returncode == 0 and "emptied" in status.stdout


def test_a_set_whose_every_item_was_rejected_fails_the_gate_in_one_line(tmp_path):
    directory = make_dataset(tmp_path / "run", per_leaf={ASTHMA: 4, COLD: 3, AF: 0, HF: 0})
    queue_ids(directory, leaf_ids(ASTHMA, 4) + leaf_ids(COLD, 3))
    review_all(directory, reject=set(leaf_ids(ASTHMA, 4) + leaf_ids(COLD, 3)))
    assert gate(directory).verdict == "fail"
    cli = distill("train", str(directory), "--student", "local")
    lines = [line for line in cli.stderr.splitlines() if line.strip()]
    assert cli.returncode == 4 and len(lines) == 1, cli.stderr
    assert "every one of the 7 items was rejected in review, so nothing is left to train on" in lines[0]


def test_status_prints_the_figures_and_writes_them_to_stats(tmp_path):
    directory = make_dataset(tmp_path / "run", per_leaf=10)
    OwnedFolder.in_place(directory).write_text("stats.json", json.dumps({"counts": {"kept": 40}}))  # generation's
    queue_ids(directory, leaf_ids(ASTHMA, 10) + leaf_ids(COLD, 10))
    review_all(directory, reject=set(leaf_ids(COLD, 3)), reason="format")
    result = distill("review", "status", str(directory))
    assert result.returncode == 0, result.stderr
    assert "20 of 20 queued items reviewed: 17 accepted, 0 edited, 3 rejected" in result.stdout
    assert "top reasons: format 3" in result.stdout and "gate: review gate" in result.stdout
    stats = json.loads((directory / "stats.json").read_text())
    assert stats["review"]["rejected"] == 3 and stats["counts"]["kept"] == 37
    assert stats["review"]["branches"][COLD]["reject_rate"] == pytest.approx(0.3)
    assert stats["review"]["gate"]["threshold"] == 0.10


@pytest.mark.slow
def test_review_commands_give_one_line_errors(tmp_path):
    missing = distill("review", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and missing.stderr.startswith("error:") and "no dataset.jsonl here" in missing.stderr
    directory = make_dataset(tmp_path / "run", per_leaf=3)
    bad = distill("review", str(directory), "--interval", "bayes")
    assert bad.returncode == 2 and "--interval" in bad.stderr and "Traceback" not in bad.stderr
    no_queue = distill("review", "status", str(directory))
    assert no_queue.returncode == 2 and "no review" in no_queue.stderr
    both = distill("review", str(directory), "--size", "5", "--more", "2")
    assert both.returncode == 2 and "one of --size, --sample and --more" in both.stderr


def test_edits_fix_items_and_do_not_count_against_the_gate(tmp_path):
    """An edit corrects an item, which then trains in its fixed form: only rejects count towards the reject
    rate. 0 rejects in 40 reviews passes (a bound under 10%); had the 8 edits counted, 8 in 40 would fail."""
    from distill.review.session import ReviewSession

    directory = make_dataset(tmp_path / "run", per_leaf=25)
    read = leaf_ids(ASTHMA, 10) + leaf_ids(COLD, 10) + leaf_ids(AF, 10) + leaf_ids(HF, 10)
    queue_ids(directory, read)
    fixed = set(read[::5])
    session = ReviewSession(directory)
    try:
        for item_id in read:
            if item_id in fixed:
                messages = [m.model_dump() for m in session.state().items[item_id].messages()]
                messages[-1]["content"] = "A corrected answer: see a clinician if it gets worse."
                session.decide("alice", item_id, "edit", messages=messages)
            else:
                session.decide("alice", item_id, "accept")
    finally:
        session.close()
    result = gate(directory)
    overall = result.units[0]
    assert (overall.reviewed, overall.edited, overall.rejected) == (40, 8, 0)
    assert result.verdict == "pass" and result.message.startswith("review passed: 0 rejects in 40 reviews")
