"""Building the review queue: every leaf, a risk slice first, deterministic for a seed, and growth that never
disturbs a decision already made."""

from __future__ import annotations

import json
import shutil

from distill.records import Decision
from distill.review.ledger import ReviewLedger
from distill.review.model import ReviewSettings
from distill.review.queue import build_queue, default_size
from distill.review.state import ReviewState
from review_helpers import decide, example_row, make_dataset


def queue_of(directory):
    with ReviewLedger.open(directory) as ledger:
        return ledger.queue(), ledger.items()


def risky_rows() -> list[dict]:
    long_answer = " ".join(["Inhaled steroids reduce airway inflammation over weeks of daily use"] * 12) + "."
    return [
        example_row("risk-repaired", "cardiology/arrhythmias", "Which drug slows a fast heart rate in AF?",
                    "Beta blockers such as bisoprolol are a common first choice.", json_repaired=True),
        example_row("risk-repeat", "respiratory/asthma", "How often should I use my preventer inhaler?",
                    "Use it every day. Use it every day. Use it every day. Use it every day even when well."),
        example_row("risk-long", "respiratory/asthma", "Why do steroid inhalers take time to work?", long_answer),
        example_row("risk-twin-a", "cardiology/heart-failure", "Should I weigh myself daily with heart failure?",
                    "Yes: weigh yourself every morning after using the toilet and before breakfast, and call "
                    "your nurse if you gain more than two kilograms in three days."),
        example_row("risk-twin-b", "cardiology/heart-failure", "Should I weigh myself daily with heart failure at all?",
                    "Yes: weigh yourself every morning after using the toilet and before breakfast, and call "
                    "your team if you gain more than two kilograms in three days."),
    ]


def test_queue_covers_every_leaf_is_deterministic_and_sized_to_decide(tmp_path):
    a, b, c = (make_dataset(tmp_path / name, per_leaf=40) for name in "abc")
    report = build_queue(a, ReviewSettings(seed=7))
    build_queue(b, ReviewSettings(seed=7))
    build_queue(c, ReviewSettings(seed=8))
    rows_a, items_a = queue_of(a)
    rows_b, _ = queue_of(b)
    rows_c, _ = queue_of(c)
    assert [(r.item_id, r.ord) for r in rows_a] == [(r.item_id, r.ord) for r in rows_b]  # same seed, same queue
    assert {r.item_id for r in rows_a} != {r.item_id for r in rows_c}
    # Default size: enough for a set at a quarter of the threshold to pass the bound.
    assert report.added == default_size(160, 4, ReviewSettings()) == 69
    assert {i.node_path for i in items_a.values()} == {"respiratory/asthma", "respiratory/common-cold",
                                                       "cardiology/arrhythmias", "cardiology/heart-failure"}
    # Any prefix of the order is spread over the leaves (interleaved), not one leaf after another.
    first_four = {items_a[r.item_id].node_path for r in rows_a[:4]}
    assert len(first_four) == 4


def test_size_and_sample_and_one_item_per_leaf_at_least(tmp_path):
    sized = make_dataset(tmp_path / "sized", per_leaf=10)
    assert build_queue(sized, ReviewSettings(size=12)).queued == 12
    fraction = make_dataset(tmp_path / "fraction", per_leaf=10)
    assert build_queue(fraction, ReviewSettings(sample=0.25)).queued == 10
    tiny = make_dataset(tmp_path / "tiny", per_leaf=10)
    report = build_queue(tiny, ReviewSettings(size=2))
    assert report.queued == 4 and "at least one for each leaf" in report.note
    assert len({i.node_path for i in queue_of(tiny)[1].values()}) == 4


def test_risk_slice_puts_borderline_items_first_and_names_the_signals(tmp_path):
    directory = make_dataset(tmp_path / "run", per_leaf=25, extra=risky_rows())
    report = build_queue(directory, ReviewSettings(size=30))
    rows, items = queue_of(directory)
    signals = {item_id: {s.name for s in item.signals} for item_id, item in items.items()}
    assert signals["risk-repaired"] >= {"json_repaired"}
    assert "repetition" in signals["risk-repeat"]
    assert "length_outlier" in signals["risk-long"]
    assert "near_neighbour" in signals.get("risk-twin-a", set()) | signals.get("risk-twin-b", set())
    twin = items.get("risk-twin-a") or items["risk-twin-b"]
    assert twin.neighbour.id in ("risk-twin-a", "risk-twin-b") and twin.neighbour.similarity >= 0.5
    assert report.risk >= 3
    # Risky items lead the queue: the reviewer sees them first.
    risky = {"risk-repaired", "risk-repeat", "risk-long", "risk-twin-a", "risk-twin-b"}
    leading = [r.item_id for r in rows[:report.risk]]
    assert set(leading) <= risky and {r.why for r in rows[:report.risk]} == {"risk"}


def test_growing_the_queue_never_disturbs_decisions(tmp_path):
    directory = make_dataset(tmp_path / "run", per_leaf=30)
    build_queue(directory, ReviewSettings(size=20, seed=3))
    before_rows, _ = queue_of(directory)
    decide(directory, before_rows[0].item_id, "accept")
    decide(directory, before_rows[1].item_id, "reject", reasons=["wrong"], note="dose is off")
    decide(directory, before_rows[2].item_id, "edit", messages=[
        {"role": "system", "content": "You are a careful medical expert."},
        {"role": "user", "content": "q?"}, {"role": "assistant", "content": "A fixed answer."}])
    with ReviewLedger.open(directory) as ledger:
        decisions_before = ledger.decisions()
    db_before = (directory / "run.db").stat().st_size

    report = build_queue(directory, more=15)
    assert report.added == 15 and report.queued == 35
    after_rows, items = queue_of(directory)
    assert after_rows[:len(before_rows)] == before_rows  # existing rows untouched, in place
    new = after_rows[len(before_rows):]
    assert min(r.ord for r in new) > max(r.ord for r in before_rows) and {r.round for r in new} == {1}
    assert not {r.item_id for r in new} & {r.item_id for r in before_rows}
    with ReviewLedger.open(directory) as ledger:
        assert ledger.decisions() == decisions_before
        state = ReviewState.load(ledger)
    assert state.items[before_rows[1].item_id].outcome == "reject"
    assert state.items[before_rows[2].item_id].messages()[-1].content == "A fixed answer."
    assert (directory / "run.db").stat().st_size >= db_before
    # Asking for a size the queue already has adds nothing.
    assert build_queue(directory, ReviewSettings(size=10)).added == 0


def test_overlap_items_get_a_second_slot_for_named_reviewers(tmp_path):
    directory = make_dataset(tmp_path / "run", per_leaf=30)
    build_queue(directory, ReviewSettings(size=60, overlap=0.2, reviewers=["ann", "bob"], seed=1))
    rows, _ = queue_of(directory)
    doubled = {r.item_id for r in rows if r.slot == 1}
    assert 5 <= len(doubled) <= 20  # ~20% of 60
    for item_id in doubled:
        names = {r.assigned for r in rows if r.item_id == item_id}
        assert names == {"ann", "bob"}
    with ReviewLedger.open(directory) as ledger:
        state = ReviewState.load(ledger)
    item = state.items[sorted(doubled)[0]]
    assert item.wants("ann") and item.wants("bob") and not item.wants("cat")
    with ReviewLedger.open(directory) as ledger:
        ledger.add_decision(Decision(item_id=item.item_id, reviewer="ann", verdict="accept"))
        state = ReviewState.load(ledger)
    assert not state.items[item.item_id].done and state.items[item.item_id].wants("bob")
    assert not state.items[item.item_id].wants("ann")


def test_queue_of_a_curated_folder_in_another_format(tmp_path):
    folder = tmp_path / "alpaca"
    folder.mkdir()
    rows = [{"instruction": f"Name a symptom of condition {i}", "output": f"Symptom {i} is common and mild."}
            for i in range(8)]
    (folder / "dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = build_queue(folder)
    assert report.queued == 8 and (folder / "run.db").is_file()  # small sets are read in full
    shutil.rmtree(folder)
