"""Reviewer agreement on the overlap: Cohen's kappa for two reviewers, Fleiss' kappa for more.

Written out rather than imported: the formulas are a few lines of numpy, and the libraries that
have them (statsmodels, scikit-learn) would pull pandas or a compiled stack into the light review
extra. tests/review/test_review_stats.py checks both against statsmodels.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from pydantic import BaseModel


def cohen_kappa(first: list[str], second: list[str]) -> float | None:
    """Agreement of two raters over the same items beyond chance; None when chance agreement is total."""
    if len(first) != len(second) or not first:
        raise ValueError("two equally long, non-empty lists of ratings")
    n = len(first)
    observed = sum(a == b for a, b in zip(first, second)) / n
    left, right = Counter(first), Counter(second)
    expected = sum(left[c] * right[c] for c in set(left) | set(right)) / (n * n)
    if expected == 1.0:
        return None
    return (observed - expected) / (1 - expected)


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa from an (items x categories) table of how many raters chose each category;
    every item needs the same number of raters (here: the two reviews of an overlap item)."""
    counts = np.asarray(counts, dtype=float)
    raters = counts.sum(axis=1)
    if counts.size == 0 or not np.all(raters == raters[0]) or raters[0] < 2:
        raise ValueError("every item needs the same number (>= 2) of ratings")
    n_items, m = counts.shape[0], raters[0]
    per_item = ((counts * counts).sum(axis=1) - m) / (m * (m - 1))
    shares = counts.sum(axis=0) / (n_items * m)
    expected = float((shares * shares).sum())
    if expected == 1.0:
        return None
    return (float(per_item.mean()) - expected) / (1 - expected)


class Agreement(BaseModel):
    method: str  # "cohen" | "fleiss"
    items: int  # overlap items read by two reviewers
    reviewers: int
    kappa: float | None  # None when everyone gave the same verdict every time (kappa undefined)
    percent_agreement: float


def reject_agreement(pairs: list[tuple[tuple[str, str], tuple[str, str]]]) -> Agreement | None:
    """Agreement on reject-or-keep over items reviewed twice: ((reviewer, verdict), (reviewer, verdict))
    each. Keep-or-reject is what the data and the gate use; an edit keeps the item."""
    if not pairs:
        return None
    binary = [tuple("reject" if v == "reject" else "keep" for _, v in pair) for pair in pairs]
    agree = sum(a == b for a, b in binary) / len(binary)
    names = {name for pair in pairs for name, _ in pair}
    if len(names) == 2:
        first_name = sorted(names)[0]
        ordered = [(a, b) if pair[0][0] == first_name else (b, a) for pair, (a, b) in zip(pairs, binary)]
        kappa = cohen_kappa([a for a, _ in ordered], [b for _, b in ordered])
        return Agreement(method="cohen", items=len(pairs), reviewers=2, kappa=kappa, percent_agreement=agree)
    table = np.array([[sum(v == "keep" for v in pair), sum(v == "reject" for v in pair)] for pair in binary])
    return Agreement(method="fleiss", items=len(pairs), reviewers=len(names), kappa=fleiss_kappa(table),
                     percent_agreement=agree)
