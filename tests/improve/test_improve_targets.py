"""A round's new items for a weak leaf carry the student's failures there into the teacher's prompt, through the
task's own template, and have ids no plan item has (so generation pays only for them)."""

import asyncio

from cli_helpers import tiny_copy
from distill.improve.records import Attempt
from distill.improve.targets import BRIEF_AXIS, targeted_items
from distill.records import Message, PlanItem
from distill.taxonomy import build_plan, load_taxonomy

LEAF = "billing/refund"


def attempt(example_id: str, leaf: str, passed: bool, asked: str, expected: str, said: str) -> Attempt:
    return Attempt(example_id=example_id, leaf=leaf, task="classification", turn=2,
                   prompt=[Message(role="system", content="Classify."), Message(role="user", content=asked)],
                   reference=Message(role="assistant", content=expected),
                   answer=Message(role="assistant", content=said), passed=passed,
                   reason=None if passed else "label_mismatch")


def test_new_items_show_the_failures_keep_the_failed_axes_and_take_fresh_ids():
    attempts = [attempt("e1", LEAF, False, "I was charged twice", '{"label": "refund"}', '{"label": "billing"}'),
                attempt("e2", LEAF, True, "Refund please", '{"label": "refund"}', '{"label": "refund"}'),
                attempt("e3", "other", False, "Other leaf", '{"label": "x"}', '{"label": "y"}')]
    axes_of = {"e1": {"label": "refund", "tone": "angry"}, "e2": {"label": "refund", "tone": "calm"}}
    taken = {"e1", "e2", "e3"}
    items = targeted_items("tickets", 1, {LEAF: 3}, attempts, {LEAF: [{"label": "refund", "tone": "calm"}]},
                           axes_of, taken, {LEAF: 5})
    assert len(items) == 3 and len({i.id for i in items}) == 3 and not {i.id for i in items} & taken
    assert [i.index for i in items] == [6, 7, 8]  # after the leaf's last item
    for item in items:
        assert item.node_path == LEAF
        assert (item.axes["label"], item.axes["tone"]) == ("refund", "angry")  # the failed item's axes
        brief = item.axes[BRIEF_AXIS]
        assert "I was charged twice" in brief and '"billing"' in brief  # what it was asked and what it said
        assert "Refund please" not in brief and "Other leaf" not in brief  # passed, or another leaf's
    again = targeted_items("tickets", 1, {LEAF: 3}, attempts, {}, axes_of, taken, {LEAF: 5})
    assert [i.id for i in again] == [i.id for i in items]  # a resumed round asks for the same items


def test_a_leaf_the_student_never_failed_gets_plain_items_of_its_own_axes():
    items = targeted_items("tickets", 2, {LEAF: 2}, [], {LEAF: [{"label": "refund"}]}, {}, set(), {})
    assert [i.axes for i in items] == [{"label": "refund"}, {"label": "refund"}]


def test_the_failures_reach_the_teacher_prompt_through_the_task_template(tmp_path):
    """The built-in QA task renders every axis of an item: the brief is in the question request."""
    loaded = load_taxonomy(tiny_copy(tmp_path) / "qa.yaml")
    leaf = "respiratory/asthma"
    failed = attempt("q1", leaf, False, "What triggers an asthma attack at night?", "Dust mites and cold air.",
                     "Eat more fruit.")
    base = next(i for i in build_plan(loaded) if i.node_path == leaf)
    item = targeted_items(loaded.name, 1, {leaf: 1}, [failed], {}, {"q1": base.axes}, {base.id}, {})[0]
    assert isinstance(item, PlanItem)
    prompts = []

    async def ask(step, request):
        prompts.append(request.messages[-1].content)
        raise RuntimeError("stop after the first request")

    try:
        asyncio.run(loaded.task.run(loaded, item, "test", ask))
    except RuntimeError:
        pass
    assert "Student missed: a student model got these wrong" in prompts[0]
    assert "What triggers an asthma attack at night?" in prompts[0] and "Eat more fruit." in prompts[0]
