"""The evaluation's plots, as PNG files beside eval.md: per-leaf scores with their 95% intervals, and for
classification the confusion matrices of the base and the student.

Drawn from the report dict alone (what eval.json holds), with matplotlib's Agg canvas (no display, no pyplot
state), so a figure can be redrawn from eval.json and compared with the file pixel for pixel
(tests/evaluate/test_eval_figures.py does). The figure builders return matplotlib Figures whose artists carry the
numbers: each bar container is labelled with its system, each interval line collection has the gid
"interval:SYSTEM", each axes has its task or system as gid.
"""

from __future__ import annotations

from pathlib import Path

from distill.evaluate.metrics import TEACHER, calls_tools, leaf_metric
from distill.owned import OwnedFolder, atomic_write
from distill.rundir import EVAL_CONFUSION_PNG as CONFUSION_PNG, EVAL_LEAVES_PNG as LEAVES_PNG

MISSING = "matplotlib is not installed, so no plots were drawn: pip install 'distill[report]'"
DPI = 100


def write_figures(report: dict, out: Path | OwnedFolder) -> dict[str, str]:
    """Draw the plots into OUT; {"leaves": file, "confusion": file} for those drawn (paths relative to
    OUT, as eval.md links them), or {"skipped": why}. A plot this report has no data for is removed (when
    distill drew it), so an earlier evaluation's picture never sits beside these numbers."""
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        return {"skipped": MISSING}
    folder = out if isinstance(out, OwnedFolder) else OwnedFolder.in_place(out)
    written = {}
    for key, name, build in (("leaves", LEAVES_PNG, leaf_figure), ("confusion", CONFUSION_PNG, confusion_figure)):
        figure = build(report)
        if figure is None:
            folder.remove(name)
            continue
        with folder.replacing(name) as tmp:
            _draw(figure, tmp)
        written[key] = name
    return written


def save(figure, path: Path) -> None:
    """One figure as a PNG file at `path`."""
    atomic_write(Path(path), lambda tmp: _draw(figure, tmp))


def _draw(figure, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    # No Software tag: the same numbers give the same bytes whatever matplotlib wrote them.
    figure.savefig(path, format="png", dpi=DPI, metadata={"Software": None})


def _models(report: dict) -> list[str]:
    return [system for system in report["systems"] if system != TEACHER]


def leaf_figure(report: dict):
    """One panel per task: a horizontal bar per leaf and model (base, then the student's forms) at the leaf's
    score, with its 95% interval as a line across it. None when no leaf has a score."""
    from matplotlib.figure import Figure

    tasks = sorted({task for tasks in report["leaves"].values() for task in tasks})
    if not tasks:
        return None
    models = _models(report)
    # A task's panel shows one metric: where some of its leaves call tools, the leaves that do.
    metrics = {task: leaf_metric(task, next((blocks[task] for blocks in report["leaves"].values()
                                              if task in blocks and calls_tools(blocks[task])), None))
               for task in tasks}
    rows = {task: [leaf for leaf, blocks in report["leaves"].items() if task in blocks
                   and (metrics[task] != "valid_call" or calls_tools(blocks[task]))] for task in tasks}
    heights = [max(1.5, 0.28 * len(rows[task]) * max(1, len(models)) + 0.8) for task in tasks]
    figure = Figure(figsize=(9, sum(heights) + 0.6), layout="constrained")
    axes = figure.subplots(len(tasks), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    width = 0.8 / max(1, len(models))
    for ax, task in zip(axes, tasks):
        metric = metrics[task]
        leaves = rows[task]
        for j, system in enumerate(models):
            values = [report["leaves"][leaf][task]["systems"][system][metric] for leaf in leaves]
            centres = [i + (j - (len(models) - 1) / 2) * width for i in range(len(leaves))]
            ax.barh(centres, [v["value"] for v in values], height=width, label=system)
            # The interval as its own segment: a bootstrap interval need not contain its point estimate,
            # which error bars (offsets from the value) could not draw.
            ax.hlines(centres, [v["low"] for v in values], [v["high"] for v in values], colors="0.2",
                      linewidth=1.2, label=f"{system} 95% interval", gid=f"interval:{system}")
        ax.set_yticks(range(len(leaves)),
                      [f"{leaf} (n={report['leaves'][leaf][task]['n']})" for leaf in leaves], fontsize=8)
        ax.invert_yaxis()  # the first leaf on top, as in eval.md's table
        ax.set_xlim(0, 1)
        ax.set_xlabel(metric.replace("_", " "))
        ax.set_title(f"{task}: {metric.replace('_', ' ')} per leaf, 95% intervals", fontsize=10)
        ax.set_gid(task)
        ax.grid(axis="x", alpha=0.3)
        bars = [c for c in ax.containers]
        ax.legend(bars, [c.get_label() for c in bars], fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def confusion_figure(report: dict):
    """The confusion matrix (counts; rows gold, columns predicted) of the base and of each student form, side
    by side, for the classification task. None without one."""
    from matplotlib.figure import Figure

    block = report["tasks"].get("classification")
    if not block:
        return None
    systems = [s for s in _models(report) if "confusion" in block["systems"].get(s, {})]
    if not systems:
        return None
    labels = block["systems"][systems[0]]["labels"]
    size = 1.2 + 0.45 * (len(labels) + 1)
    figure = Figure(figsize=(size * len(systems) + 1, size + 0.4), layout="constrained")
    axes = figure.subplots(1, len(systems), squeeze=False)[0]
    for ax, system in zip(axes, systems):
        matrix = block["systems"][system]["confusion"]
        gold = list(matrix)
        predicted = list(next(iter(matrix.values())))
        counts = [[matrix[g][p] for p in predicted] for g in gold]
        ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(1, max(max(row) for row in counts)))
        peak = max(1, max(max(row) for row in counts))
        for i, row in enumerate(counts):
            for k, count in enumerate(row):
                if count:
                    ax.text(k, i, str(count), ha="center", va="center", fontsize=7,
                            color="white" if count > peak / 2 else "black")
        ax.set_xticks(range(len(predicted)), predicted, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(gold)), gold, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        accuracy = block["systems"][system]["accuracy"]["value"]
        ax.set_title(f"{system} (accuracy {accuracy:.2f})", fontsize=10)
        ax.set_gid(system)
    return figure
