"""The human review's figures, as the dataset card and the model card both show them.

The review stage records its summary under the "review" key of the run's stats.json: items reviewed,
accepted, rejected and edited, the reject rate with its 95% interval, the gate's threshold and verdict, the
top reject reasons and the inter-reviewer kappa. The cards say "no human review" when there is none, and show
any field they do not know as it is rather than dropping it.
"""

from __future__ import annotations

import json
from typing import Any

NO_REVIEW = ("No human review: no one has reviewed a sample of this data (`distill review`); every quality "
             "figure here comes from automatic checks.")
_KNOWN = {"reviewed", "accepted", "approved", "rejected", "edited", "reject_rate", "reject_rate_ci",
          "reject_rate_interval", "gate", "threshold", "gate_threshold", "verdict", "gate_verdict", "passed",
          "top_reasons", "reasons", "kappa"}


def review_lines(stats: dict[str, Any]) -> list[str]:
    """Markdown list items for the review, or the one line saying there was none."""
    review = stats.get("review")
    if not isinstance(review, dict) or not review:
        return [NO_REVIEW]
    lines = []
    counts = [(label, review.get(key)) for label, key in (("reviewed", "reviewed"), ("accepted", "accepted"),
                                                          ("approved", "approved"), ("rejected", "rejected"),
                                                          ("edited", "edited"))]
    counts = [f"{value} {label}" for label, value in counts if value is not None]
    if counts:
        lines.append("- Items: " + ", ".join(counts))
    rate = _rate(review)
    if rate:
        lines.append(f"- Reject rate: {rate}")
    gate = _gate(review)
    if gate:
        lines.append(f"- Gate: {gate}")
    reasons = _reasons(review.get("top_reasons", review.get("reasons")))
    if reasons:
        lines.append(f"- Top reject reasons: {reasons}")
    if review.get("kappa") is not None:
        lines.append(f"- Agreement between reviewers (Cohen's kappa): {_number(review['kappa'])}")
    for key in sorted(set(review) - _KNOWN):
        lines.append(f"- {key.replace('_', ' ').capitalize()}: {_plain(review[key])}")
    return lines


def _rate(review: dict) -> str | None:
    value = review.get("reject_rate")
    interval = review.get("reject_rate_ci", review.get("reject_rate_interval"))
    if isinstance(value, dict):
        interval = interval or [value.get("low"), value.get("high")]
        value = value.get("value", value.get("rate"))
    if value is None:
        return None
    text = _percent(value)
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and None not in interval:
        text += f" (95% interval {_percent(interval[0])} to {_percent(interval[1])})"
    return text


def _gate(review: dict) -> str | None:
    gate = review.get("gate") if isinstance(review.get("gate"), dict) else {}
    threshold = gate.get("threshold", review.get("gate_threshold", review.get("threshold")))
    verdict = gate.get("verdict", review.get("gate_verdict", review.get("verdict")))
    passed = gate.get("passed", review.get("passed"))
    if verdict is None and passed is not None:
        verdict = "passed" if passed else "failed"
    if threshold is None and verdict is None:
        return _plain(review["gate"]) if review.get("gate") not in (None, {}) else None
    parts = []
    if verdict is not None:
        parts.append(f"**{verdict}**")
    if threshold is not None:
        fraction = isinstance(threshold, float) and threshold < 1
        parts.append(f"threshold {_percent(threshold) if fraction else threshold}")
    return ", ".join(parts)


def _reasons(reasons) -> str | None:
    if not reasons:
        return None
    pairs = []
    for item in (reasons.items() if isinstance(reasons, dict) else reasons):
        if isinstance(item, dict):
            pairs.append((item.get("reason"), item.get("count")))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pairs.append(tuple(item))
        else:
            pairs.append((item, None))
    return ", ".join(str(reason) if count is None else f"{reason} ({count})" for reason, count in pairs)


def _percent(value) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else str(value)


def _number(value) -> str:
    if isinstance(value, dict):
        value = value.get("value", json.dumps(value))
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _plain(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
