"""eval.md: the headline table first (base, the student, the teacher's reference), then per taxonomy leaf with
its plot, then the details (confusion matrix, judge verdicts, export steps). Pure: renders the report dict."""

from __future__ import annotations

from typing import Any

from distill.evaluate.metrics import BASE, HEADLINE, LABELS, TEACHER, TOOL_CALLING, calls_tools, leaf_metric

_VERDICT = {"above": "above the base, 95% intervals apart", "below": "below the base, 95% intervals apart",
            "overlap": "95% intervals overlap"}


def _est(value: dict | None) -> str:
    if not value:
        return "-"
    return f"{value['value']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"


def render_markdown(report: dict) -> str:
    """eval.md: header, export-step flags, the headline, the leaves (table and plot), then the details."""
    return "\n".join(_header(report) + _flag_summary(report) + headline(report) + constrained_section(report)
                     + _leaf_section(report) + _details(report, figures=True) + _steps_section(report))


def summary_sections(report: dict) -> list[str]:
    """Flags, the headline, the details and the export steps: what a model card shows of an evaluation."""
    return (_flag_summary(report) + headline(report) + constrained_section(report) + _details(report, figures=False)
            + _steps_section(report))


def constrained_section(report: dict) -> list[str]:
    """`--constrained`: per task, each model free and held to the schema, the same measures side by side."""
    block = report.get("constrained")
    if block is None:
        return []
    lines = ["## Constrained decoding", "",
             "The same held-out items answered again with greedy decoding held to the task's output schema "
             "(`--constrained`); free -> constrained, 95% intervals in brackets.", ""]
    for task, held in block["tasks"].items():
        metrics = [metric for metric in next(iter(held["systems"].values()), {})]
        lines += [f"### {task} (n={held['n']})", "", "| system | " + " | ".join(LABELS.get(c, c) for c in metrics)
                  + " |", "|---|" + "---|" * len(metrics)]
        for system, row in held["systems"].items():
            cells = [f"{_est(row[c]['free'])} -> {_est(row[c]['constrained'])}" if c in row else "-" for c in metrics]
            lines.append(f"| {system} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"Note: {note.removeprefix('--constrained: ')}" for note in block.get("notes", [])]
    return lines + ([""] if block.get("notes") else [])


def _models(report: dict) -> list[str]:
    """The systems that are models (base and the student's forms), not the teacher's references."""
    return [system for system in report.get("systems", []) if system != TEACHER]


def _header(report: dict) -> list[str]:
    adapter = report.get("adapter", {})
    forms = [s for s in _models(report) if s != BASE]
    return [f"# Evaluation: {adapter.get('student', 'student')} ({', '.join(forms) or 'student'}) vs base", "",
            f"{report['n']} held-out examples, greedy answers; 95% intervals in brackets (Wilson for proportions, "
            "bootstrap otherwise). The teacher's answers are the references.", ""]


def headline_columns(task: str, block: dict) -> list[str]:
    """The headline metrics of a task that the report holds (classification: validity, accuracy, macro-F1)."""
    wanted = HEADLINE[TOOL_CALLING] if calls_tools(block) else HEADLINE.get(task, HEADLINE["qa"])
    return [c for c in wanted if any(c in row for row in block["systems"].values())]


def headline(report: dict) -> list[str]:
    lines = ["## Headline", ""]
    band = report.get("length_band") or [0.5, 2.0]
    for task, block in report["tasks"].items():
        columns = headline_columns(task, block)
        lines += [f"### {task} (n={block['n']})", "", "| system | " + " | ".join(LABELS[c] for c in columns) + " |",
                  "|---|" + "---|" * len(columns)]
        for system, row in block["systems"].items():
            name = "teacher (reference)" if system == TEACHER else system
            cells = [_est(row.get(c)) if c in row else "reference" if system == TEACHER else "-" for c in columns]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        versus = block.get("versus_base") or {}
        shown = [c for c in columns if c in versus]
        if shown:
            system = versus[shown[0]]["system"]
            lines += [f"{system} vs base: " + "; ".join(
                f"{LABELS[c]} {versus[c]['difference']:+.3f} ({_VERDICT[versus[c]['intervals']]})" for c in shown), ""]
        if "valid_call" in columns:
            lines += ["Tool calls, per reference turn that calls a tool (the conversation up to it as the prompt): "
                      "valid call: a call to a declared tool whose arguments its schema accepts; right tool: the "
                      "reference's tool; arguments equal: and the reference's arguments.", ""]
        if "in_length" in columns:
            lines += [f"Ends its turn: the end-of-turn token within the token budget. Stays in length: ends its turn "
                      f"at {band[0]:g}-{band[1]:g}x the reference's length in words.", ""]
    return lines


def _leaf_section(report: dict) -> list[str]:
    models = _models(report)
    lines = ["## Per taxonomy leaf", ""]
    figures = report.get("figures") or {}
    if figures.get("leaves"):
        lines += [f"![Per-leaf scores with 95% intervals]({figures['leaves']})", ""]
    elif figures.get("skipped"):
        lines += [f"({figures['skipped']})", ""]
    lines += ["| leaf | task | n | " + " | ".join(models) + " |", "|---|---|---:|" + "---|" * len(models)]
    for leaf, tasks in report["leaves"].items():
        for task, block in tasks.items():
            key = leaf_metric(task, block)
            lines.append(f"| {leaf} | {task} ({key}) | {block['n']} | "
                         + " | ".join(_est(block["systems"].get(system, {}).get(key)) for system in models) + " |")
    return lines + [""]


def _details(report: dict, figures: bool) -> list[str]:
    lines: list[str] = []
    for task, block in report["tasks"].items():
        no_form: dict[str, Any] = {}
        first_name, first = next(((s, row) for s, row in block["systems"].items() if s not in (BASE, TEACHER)),
                                 (None, no_form))
        extra = [c for c in ("schema_validity", "ends_turn") if c in first and c not in headline_columns(task, block)]
        if extra:
            lines += [f"### {task}: format", "", "| system | " + " | ".join(LABELS[c] for c in extra) + " |",
                      "|---|" + "---|" * len(extra)]
            lines += [f"| {s} | " + " | ".join(_est(row.get(c)) for c in extra) + " |"
                      for s, row in block["systems"].items() if s != TEACHER]
            lines.append("")
        if "confusion" in first:
            lines += [f"### {task}: confusion matrix", ""]
            if figures and (report.get("figures") or {}).get("confusion"):
                lines += [f"![Confusion matrices of the base and the student]({report['figures']['confusion']})", ""]
            labels = list(next(iter(first["confusion"].values()), {}).keys())
            lines += [f"{first_name} (rows: gold, columns: predicted):", "",
                      "| gold \\ predicted | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
            for gold, row in first["confusion"].items():
                lines.append(f"| {gold} | " + " | ".join(str(row[label]) for label in labels) + " |")
            lines.append("")
        for name, verdict in block.get("judge", {}).items():
            lines += [f"Judge ({verdict['judge']}), {name.replace('_', ' ')}: win rate "
                      f"{_est(verdict['win_rate'])} ({verdict['wins']} wins, {verdict['ties']} ties, "
                      f"{verdict['losses']} losses, {verdict['failed']} unjudged; positions swapped)", ""]
    return (["## Details", "", *lines] if lines else [])


def red(text: str) -> str:
    """Red where HTML styles render (the Hub), and a red marker where they are stripped (GitHub)."""
    return f'<span style="color:red">\N{LARGE RED CIRCLE} **{text}**</span>'


def _change(task: str, metric: str, change: dict) -> str:
    return f"{task} {metric} {change['before']:.3f} -> {change['after']:.3f} ({-change['drop']:+.3f})"


def _flag_summary(report: dict) -> list[str]:
    flags = report.get("flags") or []
    if not flags:
        return []
    lines = [red(f"{len(flags)} metric(s) fell by more than {report['max_drop']:.2f} after merge or quantization:"),
             ""]
    lines += [f"- {red(flag['from'] + ' -> ' + flag['to'] + ': ' + _change(flag['task'], flag['metric'], flag))}"
              for flag in flags]
    return lines + [""]


def _steps_section(report: dict) -> list[str]:
    steps = report.get("steps") or []
    if not steps:
        return []
    lines = ["## Merge and quantization", "",
             f"Each step answers the same items greedily; a fall of more than {report['max_drop']:.2f} is flagged.",
             "", "| step | identical answers | changes |", "|---|---:|---|"]
    for step in steps:
        changes = [red(_change(task, metric, change)) if change["flag"] else _change(task, metric, change)
                   for task, metrics in step["tasks"].items() for metric, change in metrics.items()
                   if abs(change["drop"]) > 1e-9]
        share = step["identical"] / step["n"] if step["n"] else 0.0
        lines.append(f"| {step['from']} -> {step['to']} | {step['identical']}/{step['n']} ({share:.0%}) | "
                     + ("; ".join(changes) or "no metric changed") + " |")
    return lines + [""]
