"""The review's statistics against reference implementations (statsmodels, a test-only dependency)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from statsmodels.stats.inter_rater import cohens_kappa, fleiss_kappa as sm_fleiss
from statsmodels.stats.proportion import proportion_confint

from distill.review import intervals
from distill.review.agreement import cohen_kappa, fleiss_kappa, reject_agreement

CASES = [(0, 1), (0, 10), (0, 35), (1, 35), (3, 20), (10, 10), (7, 69), (50, 400), (1, 1000)]


@pytest.mark.parametrize("rejects,n", CASES)
@pytest.mark.parametrize("ours,theirs", [("wilson", "wilson"), ("clopper-pearson", "beta")])
@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_intervals_match_statsmodels(rejects, n, ours, theirs, confidence):
    low, high = intervals.interval(rejects, n, ours, confidence)
    ref_low, ref_high = proportion_confint(rejects, n, alpha=1 - confidence, method=theirs)
    assert low == pytest.approx(ref_low, abs=1e-9) and high == pytest.approx(ref_high, abs=1e-9)


def test_a_strict_bound_needs_about_thirty_clean_reviews():
    # The arithmetic: with 0 rejects a 95% bound under 10% needs ~30 reviews; two-sided Wilson needs 35.
    assert intervals.min_reviews_to_pass(0.10, "wilson") == 35
    assert intervals.min_reviews_to_pass(0.10, "clopper-pearson") == 36
    assert intervals.wilson(0, 34)[1] >= 0.10 > intervals.wilson(0, 35)[1]


def test_reviews_to_decide_is_the_smallest_sample_that_settles_the_bound():
    # 2 rejects in 40 (5%): undecided now; at that rate the bound falls under 10% after `more` reviews, not before.
    more = intervals.reviews_to_decide(2, 40, 0.10)
    assert more and intervals.wilson(2 + round(0.05 * more), 40 + more)[1] < 0.10
    assert intervals.wilson(2 + round(0.05 * (more - 1)), 40 + more - 1)[1] >= 0.10
    # A clearly bad set is decided the other way: its lower bound already clears the threshold.
    assert intervals.reviews_to_decide(12, 40, 0.10) == 0 and intervals.wilson(12, 40)[0] > 0.10
    assert intervals.reviews_to_decide(0, 35, 0.10) == 0


def test_cohen_kappa_matches_statsmodels():
    rng = random.Random(3)
    for _ in range(20):
        n = rng.randint(5, 60)
        a = [rng.choice(["keep", "reject"]) for _ in range(n)]
        b = [x if rng.random() < 0.7 else rng.choice(["keep", "reject"]) for x in a]
        table = np.array([[sum(x == p and y == q for x, y in zip(a, b)) for q in ("keep", "reject")]
                          for p in ("keep", "reject")])
        expected = cohens_kappa(table, return_results=False)
        ours = cohen_kappa(a, b)
        if np.isnan(expected):
            assert ours is None
        else:
            assert ours == pytest.approx(expected, abs=1e-9)


def test_fleiss_kappa_matches_statsmodels():
    rng = np.random.default_rng(5)
    for raters in (2, 3, 5):
        counts = rng.multinomial(raters, [0.6, 0.3, 0.1], size=40)
        assert fleiss_kappa(counts) == pytest.approx(sm_fleiss(counts, method="fleiss"), abs=1e-9)


def test_reject_agreement_picks_cohen_for_two_reviewers_and_fleiss_for_more():
    two = [(("ann", "accept"), ("bob", "reject")), (("bob", "reject"), ("ann", "reject")),
           (("ann", "edit"), ("bob", "accept")), (("ann", "accept"), ("bob", "accept"))]
    result = reject_agreement(two)
    # ann: keep reject keep keep; bob: reject reject keep keep (order by reviewer, whoever answered first).
    assert result.method == "cohen" and result.percent_agreement == 0.75
    assert result.kappa == pytest.approx(cohen_kappa(["keep", "reject", "keep", "keep"],
                                                     ["reject", "reject", "keep", "keep"]))
    three = two + [(("cat", "reject"), ("ann", "reject"))]
    assert reject_agreement(three).method == "fleiss" and reject_agreement(three).reviewers == 3
    assert reject_agreement([]) is None
    same = [(("ann", "accept"), ("bob", "accept"))] * 3
    assert reject_agreement(same).kappa is None and reject_agreement(same).percent_agreement == 1.0
