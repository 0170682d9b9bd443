"""improve.md's plot: each leaf's score across rounds (matplotlib, the report extra, imported when drawn)."""

from __future__ import annotations

from distill.improve.report import RoundSummary


def rounds_figure(summaries: list[RoundSummary]):
    """Each leaf's score (its main metric) across rounds, a line a leaf with its 95% interval as error bars.
    None when no round has a score."""
    from matplotlib.figure import Figure

    leaves = sorted({leaf for s in summaries for leaf in s.scores})
    if not leaves:
        return None
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    ax = figure.subplots()
    for leaf in leaves:
        points = [(s.round, s.scores[leaf]) for s in summaries if leaf in s.scores]
        xs = [r for r, _ in points]
        values = [p.value for _, p in points]
        errors = [[max(0.0, p.value - p.low) for _, p in points], [max(0.0, p.high - p.value) for _, p in points]]
        ax.errorbar(xs, values, yerr=errors, marker="o", capsize=3, label=leaf, gid=f"leaf:{leaf}")
    metric = next(s.metric for summary in summaries for s in summary.scores.values())
    ax.set_xticks(sorted({s.round for s in summaries}))
    ax.set_xlabel("round")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_ylim(0, 1)
    ax.set_title(f"{metric.replace('_', ' ')} per leaf across rounds, 95% intervals", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure
