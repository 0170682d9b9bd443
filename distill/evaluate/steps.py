"""What each export step lost: adapter -> merged (16-bit weights) -> GGUF (f16 / q8_0), on the same items.

The forms answer the same held-out items greedily, so a step is compared item by item: how many answers stayed
identical, and how far each task metric fell. A fall beyond `max_drop` (absolute, on a 0-1 metric) is a flag:
a quantized model that lost its output format is a known failure of this step, and it must not ship silently.
Pure: works on the report `build_report` made.
"""

from __future__ import annotations

from typing import Any

from distill.evaluate.forms import ADAPTER_NAME

# Per task, the metrics compared; schema validity, ending the turn and the length are the format a task must keep.
METRICS = ("schema_validity", "ends_turn", "in_length", "accuracy", "macro_f1", "token_f1", "rouge_l", "valid_call",
           "right_tool", "arguments_equal")
DEFAULT_MAX_DROP = 0.05


def step_pairs(systems: list[str]) -> list[tuple[str, str]]:
    """(before, after) for every export step present: adapter -> merged, then merged (or adapter) -> each GGUF."""
    pairs = []
    if ADAPTER_NAME in systems and "merged" in systems:
        pairs.append((ADAPTER_NAME, "merged"))
    source = "merged" if "merged" in systems else ADAPTER_NAME if ADAPTER_NAME in systems else None
    for system in systems:
        if system.startswith("gguf") and source:
            pairs.append((source, system))
    return pairs


def compare_steps(report: dict[str, Any], max_drop: float = DEFAULT_MAX_DROP) -> dict[str, Any]:
    """{"max_drop", "steps": [...], "flags": [...]} for the report's systems; empty steps when there are none."""
    examples = report["examples"]
    steps, flags = [], []
    for before, after in step_pairs(report["systems"]):
        identical = sum(example[before] == example[after] for example in examples)
        changes: dict[str, dict[str, Any]] = {}
        for task, block in report["tasks"].items():
            rows = block["systems"]
            for metric in METRICS:
                if metric in rows.get(before, {}) and metric in rows.get(after, {}):
                    old, new = rows[before][metric]["value"], rows[after][metric]["value"]
                    change = {"before": old, "after": new, "drop": old - new, "flag": old - new > max_drop + 1e-12}
                    changes.setdefault(task, {})[metric] = change
                    if change["flag"]:
                        flags.append({"from": before, "to": after, "task": task, "metric": metric, **change})
        steps.append({"from": before, "to": after, "identical": identical, "n": len(examples), "tasks": changes})
    return {"max_drop": max_drop, "steps": steps, "flags": flags}
