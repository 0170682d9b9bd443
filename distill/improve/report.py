"""improve.md and its plot: what each round bought (per-leaf scores before and after, with intervals) and cost.

Built from run.db's rounds and each round's eval.json alone, so the same rounds give the same file.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from distill.evaluate.metrics import BASE, TEACHER, leaf_metric
from distill.improve.plan import LeafScore, leaf_scores


class Overall(BaseModel):
    metric: str
    value: float
    low: float
    high: float


class RoundSummary(BaseModel):
    """One round as improve.md shows it."""

    round: int
    status: str
    scores: dict[str, LeafScore] = Field(default_factory=dict)
    overall: Overall | None = None
    targeted: dict[str, int] = Field(default_factory=dict)  # new plan items a leaf
    added: dict[str, int] = Field(default_factory=dict)  # new examples kept a leaf
    teacher_cost_usd: float = 0.0
    train_minutes: float | None = None


def overall_metric(report: dict) -> Overall | None:
    """The run's one number: macro-F1 for classification, else the first task's main metric (as a leaf's)."""
    student = next((s for s in report.get("systems", []) if s not in (BASE, TEACHER)), None)
    tasks = report.get("tasks") or {}
    for task in (["classification"] if "classification" in tasks else []) + sorted(tasks):
        block = tasks[task]
        metric = "macro_f1" if task == "classification" else leaf_metric(task, block)
        estimate = (block.get("systems") or {}).get(student, {}).get(metric)
        if isinstance(estimate, dict) and "value" in estimate:
            return Overall(metric=metric, value=estimate["value"], low=estimate["low"], high=estimate["high"])
    return None


def summarize(number: int, status: str, report: dict | None, targeted: dict[str, int], added: dict[str, int],
              teacher_cost_usd: float, train_minutes: float | None) -> RoundSummary:
    return RoundSummary(round=number, status=status, scores=leaf_scores(report) if report else {},
                        overall=overall_metric(report) if report else None, targeted=targeted, added=added,
                        teacher_cost_usd=teacher_cost_usd, train_minutes=train_minutes)


def _score(score: LeafScore | None) -> str:
    return "-" if score is None else f"{score.value:.3f} [{score.low:.3f}, {score.high:.3f}]"


def _change(before: LeafScore | None, after: LeafScore | None) -> str:
    if before is None or after is None:
        return "-"
    if after.low > before.high:
        return "up, past the interval"
    if after.high < before.low:
        return "down, past the interval"
    return "within the interval"


def round_table(summary: RoundSummary, previous: RoundSummary | None) -> str:
    """A round's per-leaf table (markdown), as printed when the round ends and kept in improve.md."""
    cost = f"${summary.teacher_cost_usd:.4f}"
    minutes = "-" if summary.train_minutes is None else f"{summary.train_minutes:.1f}"
    overall = "-" if summary.overall is None else \
        f"{summary.overall.metric} {summary.overall.value:.3f} [{summary.overall.low:.3f}, {summary.overall.high:.3f}]"
    lines = [f"### Round {summary.round}", "",
             f"overall: {overall}; examples added: {sum(summary.added.values())}; teacher cost: {cost}; "
             f"training minutes: {minutes}", ""]
    metric = next((s.metric for s in summary.scores.values()), "score")
    lines += [f"| leaf | new items asked | examples added | {metric} before | {metric} after | change |",
              "|---|---|---|---|---|---|"]
    leaves = sorted(set(summary.scores) | set(summary.targeted) | (set(previous.scores) if previous else set()))
    for leaf in leaves:
        before = previous.scores.get(leaf) if previous else None
        after = summary.scores.get(leaf)
        lines.append(f"| {leaf} | {summary.targeted.get(leaf, 0)} | {summary.added.get(leaf, 0)} | {_score(before)} "
                     f"| {_score(after)} | {_change(before, after)} |")
    return "\n".join(lines) + "\n"


def render(summaries: list[RoundSummary], stopped: str | None, plot: str | None) -> str:
    """improve.md: the rounds at a glance, then each round's table."""
    lines = ["# distill improve", "",
             "Every round is scored on the same held-out split (eval.jsonl, frozen at round 0). Intervals are 95%.",
             "", "| round | status | overall | examples added | teacher cost (USD) | training minutes |",
             "|---|---|---|---|---|---|"]
    for s in summaries:
        overall = "-" if s.overall is None else f"{s.overall.metric} {s.overall.value:.3f} " \
                                                f"[{s.overall.low:.3f}, {s.overall.high:.3f}]"
        minutes = "-" if s.train_minutes is None else f"{s.train_minutes:.1f}"
        lines.append(f"| {s.round} | {s.status} | {overall} | {sum(s.added.values())} | {s.teacher_cost_usd:.4f} "
                     f"| {minutes} |")
    if stopped:
        lines += ["", f"Stopped: {stopped}."]
    if plot:
        lines += ["", f"![per-leaf scores across rounds]({plot})"]
    lines.append("")
    previous = None
    for s in summaries:
        lines.append(round_table(s, previous))
        previous = s
    return "\n".join(lines)
