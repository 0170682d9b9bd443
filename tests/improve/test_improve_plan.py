"""The re-planning rule of `distill improve` on synthetic eval tables (eval.json's shape): quota goes where the
student is weak, unsure, rejected or repetitive; a leaf it masters gets nothing."""

from distill.improve.plan import improved_past_interval, leaf_scores, replan

WEAK, MASTERED, MIDDLE, UNSEEN = "care/weak", "care/mastered", "care/middle", "care/unseen"


def eval_table(scores: dict[str, tuple[float, float, float]], task: str = "qa") -> dict:
    """An eval report as `distill eval` writes it, with each leaf's student score (value, low, high)."""
    metric = "accuracy" if task == "classification" else "token_f1"
    return {"systems": ["base", "student", "teacher"], "leaves": {
        leaf: {task: {"n": 10, "systems": {
            "base": {metric: {"value": 0.0, "low": 0.0, "high": 0.2, "n": 10}},
            "student": {metric: {"value": v, "low": lo, "high": hi, "n": 10}},
            "teacher": {}}}}
        for leaf, (v, lo, hi) in scores.items()}}


def plan_for(table: dict, rejects=None, diversity=None, new_items=20):
    leaves = [WEAK, MASTERED, MIDDLE, UNSEEN]
    return replan(leaves, leaf_scores(table), rejects or {}, new_items, diversity=diversity)


def test_a_weak_leaf_gains_and_a_mastered_one_gets_nothing():
    table = eval_table({WEAK: (0.2, 0.1, 0.4), MASTERED: (0.95, 0.91, 0.99), MIDDLE: (0.8, 0.7, 0.9)})
    plan = plan_for(table)
    quotas = plan.quotas()
    assert MASTERED not in quotas  # its interval's low end (0.91) is over 0.9
    assert sum(quotas.values()) == plan.new_items == 20
    # need: weak 0.8 + 0.5*0.3 = 0.95, middle 0.2 + 0.5*0.2 = 0.3, unseen (no held-out score) 1.0; of 20 items
    # that is 8.44, 2.67 and 8.89, rounded by largest remainder
    assert quotas == {WEAK: 8, MIDDLE: 3, UNSEEN: 9}
    assert quotas[WEAK] > quotas[MIDDLE]


def test_a_mastered_leaf_gets_nothing_even_when_its_reviewers_reject_and_its_data_repeats():
    table = eval_table({WEAK: (0.5, 0.4, 0.6), MASTERED: (0.97, 0.93, 1.0), MIDDLE: (0.5, 0.4, 0.6),
                        UNSEEN: (0.5, 0.4, 0.6)})
    plan = plan_for(table, rejects={MASTERED: 0.9}, diversity={MASTERED: 1.0})
    assert plan.quotas().get(MASTERED, 0) == 0
    assert next(n for n in plan.leaves if n.leaf == MASTERED).mastered


def test_a_wide_interval_rejects_and_repetitive_data_each_move_quota_toward_a_leaf():
    same = (0.5, 0.4, 0.6)
    even = eval_table({WEAK: same, MASTERED: same, MIDDLE: same, UNSEEN: same})
    base = plan_for(even).quotas()
    assert len(set(base.values())) == 1  # equal needs, equal shares

    wide = eval_table({WEAK: (0.5, 0.1, 0.9), MASTERED: same, MIDDLE: same, UNSEEN: same})
    assert plan_for(wide).quotas()[WEAK] > base[WEAK]
    assert plan_for(even, rejects={WEAK: 0.6}).quotas()[WEAK] > base[WEAK]
    assert plan_for(even, diversity={WEAK: 0.9, MIDDLE: 0.1}).quotas()[WEAK] > base[WEAK]


def test_classification_leaves_are_read_by_accuracy_and_a_gain_must_clear_the_interval():
    before = leaf_scores(eval_table({WEAK: (0.3, 0.2, 0.45), MIDDLE: (0.6, 0.5, 0.7)}, task="classification"))
    after = leaf_scores(eval_table({WEAK: (0.7, 0.55, 0.8), MIDDLE: (0.65, 0.55, 0.75)}, task="classification"))
    assert before[WEAK].metric == "accuracy"
    assert improved_past_interval(before, after) == [WEAK]  # MIDDLE's new interval overlaps its old one
