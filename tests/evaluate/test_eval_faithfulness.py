"""eval's share of answers faithful to their passage (distill/evaluate/faithfulness.py), for held-out questions
written from the user's documents: scored through `build_report` as `distill eval` calls it, on known answers."""

from __future__ import annotations

from distill.evaluate.markdown import render_markdown
from distill.evaluate.report import EvalConfig, build_report
from distill.records import Example

PASSAGE = ("Sharps bins are labelled with the date and the room. A bin is closed when it is three quarters full "
           "and never later than three months after it was opened. Closed bins are kept in the locked clinical "
           "waste store until collection on Tuesdays.")
QUESTIONS = ["When is a sharps bin closed at Harbour Lane?", "Where are closed sharps bins kept at Harbour Lane?"]
COPIED = ["A bin is closed when it is three quarters full and never later than three months after it was opened.",
          "Closed bins are kept in the locked clinical waste store until collection on Tuesdays."]
CONTRADICTING = ["A bin is closed after 6 months by Doctor Okafor.",
                 "They go to the pharmacy on Fridays, where the council collects them with the recycling."]


def examples() -> list[Example]:
    made = [Example(id=f"q{i}", messages=[{"role": "user", "content": question},
                                          {"role": "assistant", "content": COPIED[i]}],
                    meta={"task": "qa", "taxonomy_path": "infection-control/sharps-and-waste",
                          "source": {"id": "sharps", "file": "protocols.pdf", "page": 5}})
            for i, question in enumerate(QUESTIONS)]
    # A held-out question of the teacher's own knowledge (no passage): not counted either way.
    return [*made, Example(id="own", messages=[{"role": "user", "content": "When should I book travel vaccines?"},
                                               {"role": "assistant", "content": "Six weeks before you travel."}],
                           meta={"task": "qa", "taxonomy_path": "medicines/travel-vaccination"})]


def test_answers_copying_their_passage_score_one_and_contradicting_ones_zero():
    held_out = examples()
    answers = {"base": [*CONTRADICTING, "Six weeks before you travel."],
               "student": [*COPIED, "Ask at reception."],
               "teacher": [e.response for e in held_out]}
    report = build_report(held_out, answers, EvalConfig(resamples=50), passages={"sharps": PASSAGE})
    systems = report["tasks"]["qa"]["systems"]
    assert systems["student"]["faithful"]["value"] == 1.0 and systems["base"]["faithful"]["value"] == 0.0
    assert systems["teacher"]["faithful"]["value"] == 1.0  # the references, kept by curation's own check
    for system in ("base", "student"):
        share = systems[system]["faithful"]
        assert share["n"] == 2 and share["low"] <= share["value"] <= share["high"]  # the two with a passage
    leaf = report["leaves"]["infection-control/sharps-and-waste"]["qa"]["systems"]["student"]
    assert leaf["faithful"]["value"] == 1.0
    assert "faithful to its passage" in render_markdown(report)


def test_an_empty_answer_is_not_faithful_and_a_run_without_documents_has_no_such_score():
    held_out = examples()
    answers = {"base": ["", " ", ""], "student": COPIED + [""], "teacher": [e.response for e in held_out]}
    report = build_report(held_out, answers, EvalConfig(resamples=50), passages={"sharps": PASSAGE})
    assert report["tasks"]["qa"]["systems"]["base"]["faithful"]["value"] == 0.0
    plain = build_report(held_out, answers, EvalConfig(resamples=50))
    assert "faithful" not in plain["tasks"]["qa"]["systems"]["student"]
