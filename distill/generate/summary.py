"""What the CLI prints about a taxonomy and a finished run."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from distill.generate.export import RunReport
from distill.records import PlanItem
from distill.tally import ALL
from distill.taxonomy import LoadedTaxonomy


def print_report(console: Console, report: RunReport) -> None:
    table = Table(title=f"distill generate: {report.stats['taxonomy']}", show_lines=False)
    for column in ("node", "planned", "generated", "valid", "kept", "top reject reason"):
        table.add_column(column, justify="left" if column in ("node", "top reject reason") else "right")
    for path, row in report.nodes.items():
        depth = 0 if path == ALL else path.count("/") + 1
        name = path if depth == 0 else "  " * (depth - 1) + path.rsplit("/", 1)[-1]
        reason = ", ".join(f"{r} ({n})" for r, n in row.reasons.most_common(1))
        style = "bold" if depth <= 1 else None
        if row.planned and row.generated and not row.kept:
            style = "red"  # a node that keeps nothing needs a look
        table.add_row(name, str(row.planned), str(row.generated), str(row.valid), str(row.kept), reason, style=style)
    console.print(table)
    counts = report.stats["counts"]
    usage = report.stats["usage"]
    console.print(
        f"kept {counts['kept']} of {counts['planned']} planned; rejected {counts['rejected']}, failed "
        f"{counts['failed']}, pending {counts['pending']}; tokens {usage['prompt_tokens']:,} in, "
        f"{usage['completion_tokens']:,} out"
    )
    for kind, file in report.files.items():
        console.print(f"  {kind:9} {escape(str(file))}")  # user text is never markup


def print_taxonomy(console: Console, loaded: LoadedTaxonomy, plan: list[PlanItem]) -> None:
    counts: Counter[str] = Counter()
    for item in plan:
        parts = item.node_path.split("/")
        for i in range(len(parts)):
            counts["/".join(parts[: i + 1])] += 1
    tax = loaded.taxonomy
    root = Tree(f"[bold]{tax.name}[/bold] ({loaded.task.name}): {len(loaded.leaves)} leaves, {len(plan)} planned items")
    branches: dict[str, Tree] = {}
    for node in loaded.nodes:  # a parent before its children
        parent = branches[node.path.rsplit("/", 1)[0]] if "/" in node.path else root
        own = len(node.node.seeds)
        label = f"[bold]{node.path.rsplit('/', 1)[-1]}[/bold] [dim]{escape(node.node.description)}[/dim] ({counts[node.path]} planned"
        label += f", {len(node.seeds)} seeds)" if node.is_leaf or own else ")"
        branches[node.path] = parent.add(label)
    console.print(root)
    axes = Table(title="axes (crossed with every leaf)")
    axes.add_column("axis")
    axes.add_column("values (weight: planned)")
    for name, axis in tax.crossed_axes().items():
        planned = Counter(item.axes[name] for item in plan)
        axes.add_row(escape(name), ", ".join(f"{escape(v)} ({w:g}: {planned[v]})" for v, w in axis.values.items()))
    console.print(axes)
