"""Yield reports: a rich table for the terminal and a Markdown page with a bar chart per node."""

from __future__ import annotations

from rich.table import Table

from distill.curate.result import FUNNEL as STAGES, CurateResult
from distill.tally import NodeTally


def _top_reasons(stats: NodeTally, k: int = 3) -> str:
    return ", ".join(f"{r} {c}" for r, c in stats.reasons.most_common(k)) or "-"


def yield_table(result: CurateResult, title: str = "Curation yield per taxonomy node") -> Table:
    table = Table(title=title)
    table.add_column("node")
    for stage in STAGES:
        table.add_column(stage, justify="right")
    table.add_column("top reject reasons")
    for node, stats in sorted(result.node_stats.items(), key=lambda kv: (kv[0] != "(all)", kv[0])):
        style = "bold red" if stats.generated and not stats.kept else ("bold" if node == "(all)" else None)
        table.add_row(node, *(str(getattr(stats, s)) for s in STAGES), _top_reasons(stats), style=style)
    return table


def _bar(value: int, top: int, width: int = 30) -> str:
    filled = round(width * value / top) if top else 0
    return "█" * filled + "·" * (width - filled)


def markdown_report(result: CurateResult) -> str:
    """The yield funnel per node, reject reasons, empty nodes, duplicates and contamination."""
    total = result.total
    lines = ["# Curation report", ""]
    lines += [f"Kept **{total.kept}** of **{total.generated}** examples "
              f"({total.kept / total.generated:.0%})." if total.generated else "No examples.", ""]
    empty = result.empty_nodes()
    if empty:
        lines += ["## Nodes that kept nothing", ""]
        lines += [f"- `{node}`: most common reason `{reason}`" for node, reason in empty]
        lines.append("")
    lines += ["## Yield per node", "", "| node | " + " | ".join(STAGES) + " | top reasons |",
              "|---|" + "---:|" * len(STAGES) + "---|"]
    ordered = sorted(result.node_stats.items(), key=lambda kv: (kv[0] != "(all)", kv[0]))
    for node, s in ordered:
        lines.append(f"| `{node}` | " + " | ".join(str(getattr(s, st)) for st in STAGES) + f" | {_top_reasons(s)} |")
    lines += ["", "## Funnel per node", ""]
    for node, s in ordered:
        lines += [f"### `{node}`", "", "```"]
        lines += [f"{stage:>9} {_bar(getattr(s, stage), s.generated)} {getattr(s, stage)}" for stage in STAGES]
        lines += ["```", ""]
    if total.reasons:
        lines += ["## Reject reasons", "", "| reason | count |", "|---|---:|"]
        lines += [f"| `{r}` | {c} |" for r, c in total.reasons.most_common()]
        lines.append("")
    if result.dedup_info:
        info = result.dedup_info
        lines += ["## Deduplication", "",
                  f"Exact duplicates removed: {info.get('exact_removed', 0)}; near duplicates removed: "
                  f"{info.get('near_removed', 0)} (MinHash {info.get('num_perm')} permutations, {info.get('bands')} bands x "
                  f"{info.get('rows')} rows, word {info.get('shingle_size')}-grams, Jaccard >= {info.get('threshold')}, "
                  f"{info.get('candidate_pairs', 0)} candidate pairs, {info.get('confirmed_pairs', 0)} confirmed).", ""]
    judged = {step: stats for step, stats in result.judge_info.items() if isinstance(stats, dict)}
    if judged:
        lines += ["## Judged checks", "", "| check | teacher | checked | agreed | removed | unclear | failed |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        lines += [f"| `{step}` | `{s['teacher']}` | {s['checked']} | {s['agreed']} | {s['removed']} | {s['unclear']} | "
                  f"{s['failed']} |" for step, s in judged.items()]
        lines.append("")
    if result.notes:
        lines += ["## Notes", "", *(f"- {note}" for note in result.notes), ""]
    if result.contamination:
        lines += ["## Contamination", "", "| id | held-out item | matching n-gram |", "|---|---|---|"]
        for row in result.contamination[:200]:
            match = row.ngram.replace("|", "\\|") if row.method == "ngram" else f"MinHash {row.similarity}"
            lines.append(f"| `{row.id}` | `{row.heldout_id}` | {match} |")
        if len(result.contamination) > 200:
            lines.append(f"\n... and {len(result.contamination) - 200} more in contamination.jsonl")
        lines.append("")
    return "\n".join(lines)
