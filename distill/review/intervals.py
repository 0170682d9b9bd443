"""Confidence intervals for a reject rate, and how many more reviews would settle a bound.

Wilson's score interval (the default: close to nominal coverage even at 0 or few rejects) and the
Clopper-Pearson exact interval (never below nominal coverage, so a little wider). Both are two-sided:
the gate compares the upper end of the 95% interval with the threshold. tests/review/test_review_stats.py
checks both against statsmodels' `proportion_confint`.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from scipy.special import betaincinv


def wilson(rejects: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = rejects / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def clopper_pearson(rejects: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    alpha = 1 - confidence
    low = 0.0 if rejects == 0 else float(betaincinv(rejects, n - rejects + 1, alpha / 2))
    high = 1.0 if rejects == n else float(betaincinv(rejects + 1, n - rejects, 1 - alpha / 2))
    return low, high


INTERVALS = {"wilson": wilson, "clopper-pearson": clopper_pearson}


def interval(rejects: int, n: int, method: str = "wilson", confidence: float = 0.95) -> tuple[float, float]:
    return INTERVALS[method](rejects, n, confidence)


def min_reviews_to_pass(threshold: float, method: str = "wilson", confidence: float = 0.95) -> int:
    """The fewest reviews whose bound can pass at all (every one accepted): 35 for 10% with Wilson."""
    n = 1
    while interval(0, n, method, confidence)[1] >= threshold:
        n += 1
    return n


def reviews_to_decide(rejects: int, n: int, threshold: float, method: str = "wilson", confidence: float = 0.95,
                      limit: int = 1_000_000) -> int | None:
    """How many more reviews, at the reject rate seen so far, would put the interval wholly below the
    threshold (pass) or wholly above it (fail). 0 when it is decided; None when no number up to `limit`
    would (a rate right at the threshold)."""

    def decided(extra: int) -> bool:
        total = n + extra
        low, high = interval(rejects + round(rate * extra), total, method, confidence)
        return high < threshold or low > threshold

    rate = rejects / n if n else 0.0
    if decided(0):
        return 0
    # Decided-ness grows with the sample: double to find an upper end, then bisect.
    high = 1
    while not decided(high):
        high *= 2
        if high > limit:
            return None
    low = high // 2
    while low + 1 < high:
        middle = (low + high) // 2
        if decided(middle):
            high = middle
        else:
            low = middle
    return high
