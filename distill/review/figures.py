"""The human review's figures, as the dataset card and the model card both show them.

The review stage records its summary under the "review" key of the run's stats.json: items queued and
reviewed (accepted, edited, rejected, skipped), the reject rate with its interval, the gate's verdict,
threshold and message, the top reject reasons, the agreement between reviewers (kappa), reading time, and
the same per taxonomy branch. The cards say "no human review" when there is none, and show a field they do
not know as it is rather than dropping it.
"""

from __future__ import annotations

import json
from typing import Any

from distill.records import REVIEW_REASONS

NO_REVIEW = ("No human review: no one has reviewed a sample of this data (`distill review`); every quality "
             "figure here comes from automatic checks.")
_COUNTS = ("accepted", "approved", "edited", "rejected", "skipped")
_SHOWN = {"queued", "reviewed", *_COUNTS, "open_reviews", "items_judged", "reject_rate", "reject_rate_ci",
          "interval", "gate", "top_reasons", "agreement", "kappa", "reviewers", "median_seconds_per_item",
          "overall", "branches", "calibration"}


def override_lines(gate: dict[str, Any]) -> list[str]:
    """What the manifest says of the gate at training time: an override with `--force`, or a pass."""
    if gate.get("forced"):
        return [f"- **Gate overridden with `--force`**: trained although the review gate said: {gate.get('message')}"]
    if gate.get("gate") == "pass":
        return [f"- Gate at training time: passed ({gate.get('message')})"]
    return []


def review_lines(stats: dict[str, Any]) -> list[str]:
    """Markdown for the review (list items, then a table per taxonomy branch), or the line saying there was none."""
    review = stats.get("review")
    if not isinstance(review, dict) or not review:
        return [NO_REVIEW]
    lines = [line for line in (_counts(review), _rate(review), _gate(review), _reasons(review.get("top_reasons")),
                               _agreement(review), _reviewers(review)) if line]
    lines += [f"- {key.replace('_', ' ').capitalize()}: {_plain(review[key])}" for key in sorted(set(review) - _SHOWN)
              if review[key] not in (None, {}, [])]
    return lines + _branches(review.get("branches")) + _calibration(review.get("calibration"))


def _counts(review: dict) -> str | None:
    # What each verdict did to the data: rejected items are left out, edits replace the originals.
    effect = {"rejected": " (left out)", "edited": " (the edits are used)"}
    parts = [f"{review[key]} {key}{effect.get(key, '') if review[key] else ''}" for key in _COUNTS
             if review.get(key) is not None]
    if review.get("reviewed") is None and not parts:
        return None
    read = "Items" if review.get("reviewed") is None else f"Read {review['reviewed']}" + (
        f" of {review['queued']} queued" if review.get("queued") else "") + " items"
    open_reviews = f"; {review['open_reviews']} awaiting a second reviewer" if review.get("open_reviews") else ""
    return f"- {read}: {', '.join(parts)}{open_reviews}"


def _rate(review: dict) -> str | None:
    value, interval = review.get("reject_rate"), review.get("reject_rate_ci")
    if isinstance(value, dict):  # {"value", "low", "high"}
        interval = [value.get("low"), value.get("high")]
        value = value.get("value")
    if value is None:
        return None
    text = f"- Reject rate {_percent(value)}"
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and None not in interval:
        text += f" ({review.get('interval', '95%')} interval {_percent(interval[0])} to {_percent(interval[1])})"
    if review.get("items_judged"):
        text += f" over {review['items_judged']} items judged"
    return text


def _gate(review: dict) -> str | None:
    gate = review.get("gate")
    if not isinstance(gate, dict) or not gate:
        return None
    parts = [f"**{gate['verdict']}**" if gate.get("verdict") else None,
             f"threshold {_percent(gate['threshold'])}" if gate.get("threshold") is not None else None,
             gate.get("message")]
    return "- Gate: " + ", ".join(p for p in parts if p)


def _reasons(reasons) -> str | None:
    if not reasons:
        return None
    if isinstance(reasons, dict):
        pairs = list(reasons.items())
    else:
        pairs = [tuple(r) if isinstance(r, (list, tuple)) else (r, None) for r in reasons]
    names = [REVIEW_REASONS.get(r, r) for r, _ in pairs]
    return "- Top reject reasons: " + ", ".join(str(r) if n is None else f"{r} ({n})"
                                               for r, (_, n) in zip(names, pairs))


def _agreement(review: dict) -> str | None:
    agreement = review.get("agreement")
    if isinstance(agreement, dict) and agreement:
        method = {"cohen": "Cohen's kappa", "fleiss": "Fleiss' kappa"}.get(str(agreement.get("method")), "kappa")
        kappa = "n/a (one verdict throughout)" if agreement.get("kappa") is None else f"{agreement['kappa']:.2f}"
        agree = agreement.get("percent_agreement")
        return (f"- Agreement on {agreement.get('items', '?')} items read twice ({agreement.get('reviewers', '?')} "
                f"reviewers): {method} {kappa}" + (f", {agree:.0%} agree on keep or reject" if agree is not None
                                                   else ""))
    if review.get("kappa") is not None:
        return f"- Agreement between reviewers: kappa {_plain(review['kappa'])}"
    return None


def _reviewers(review: dict) -> str | None:
    parts = []
    if isinstance(review.get("reviewers"), dict) and review["reviewers"]:
        parts.append("reviewers " + ", ".join(f"{name} ({n})" for name, n in review["reviewers"].items()))
    if review.get("median_seconds_per_item"):
        parts.append(f"median {review['median_seconds_per_item']} s of reading per item")
    return ("- " + "; ".join(parts)) if parts else None


def _branches(branches) -> list[str]:
    rows = {name: b for name, b in (branches or {}).items() if isinstance(b, dict) and b.get("reviewed")}
    if not rows:
        return []
    lines = ["", "| taxonomy branch | reviewed | rejected | reject rate (interval) | verdict |",
             "|---|---:|---:|---|---|"]
    for name, b in sorted(rows.items()):
        low, high = b.get("ci") or (None, None)
        interval = f" ({_percent(low)} to {_percent(high)})" if low is not None else ""
        lines.append(f"| {name} | {b['reviewed']} of {b.get('items', '?')} | {b.get('rejected', 0)} | "
                     f"{_percent(b.get('reject_rate'))}{interval} | {b.get('verdict', '')} |")
    return lines


def _calibration(rows) -> list[str]:
    """The automated checks against the reviewers (review/calibration.py): the ones that flag a reviewed item or
    have a suggested threshold; those curation left nothing to flag would be rows of 0 of 0."""
    shown = [r for r in rows or [] if isinstance(r, dict) and (r.get("flagged") or r.get("suggested"))]
    if not shown:
        return []
    lines = ["", "Automated checks against the reviewers (a reviewer's reject is the truth; 95% Wilson intervals):", "",
             "| check | threshold | flagged | rejects caught | precision (interval) | recall (interval) | "
                 "suggested threshold |", "|---|---:|---:|---:|---|---|---|"]
    for r in shown:
        suggested = r.get("suggested") or {}
        threshold = "-" if r.get("threshold") is None else _plain(r["threshold"])
        lines.append(f"| {r['check']} | {threshold} | {r.get('flagged')} | {r.get('caught')} of "
                     f"{r.get('rejected')} | {_share(r.get('precision'), r.get('precision_ci'))} | "
                     f"{_share(r.get('recall'), r.get('recall_ci'))} | "
                     f"{_plain(suggested.get('threshold')) if suggested else ''} |")
    return lines


def _share(value, interval) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" + (f" ({interval[0]:.2f} to {interval[1]:.2f})" if interval else "")


def _percent(value) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else str(value)


def _plain(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
