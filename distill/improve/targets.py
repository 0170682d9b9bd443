"""Targeted items: a round's new plan items for a leaf, each carrying a few of the student's failures there.

The failures travel as one more axis of the item, `student_missed`: every task's prompt renders the item's axes
("Student missed: ..."), so the teacher reads what the student got wrong and is asked for something new and
different that teaches it, with no change to any task's templates. Only TRAINING items are ever shown (the
attempts never see the held-out split). Each item's other axes are those of a failed item (else of the leaf's
items), so a classification item keeps a label and the axis balance follows where the student fails.

Ids come from a key no taxonomy plan uses (("improve", taxonomy, leaf, round, k)), so a round's items are new
to run.db: generation asks only for them, and a resumed round finds the same ids already answered.
"""

from __future__ import annotations

import json

from distill.generate.regenerate import new_item_id
from distill.improve.records import Attempt
from distill.records import PlanItem

BRIEF_AXIS = "student_missed"
SHOWN = 3  # failures shown in one item's prompt: enough to name a pattern, short enough to stay a prompt
WIDTH = 160  # characters kept of each prompt, reference and answer


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= WIDTH else text[: WIDTH - 3] + "..."


def _said(message) -> str:
    if message.tool_calls:
        return "; ".join(f"{c.function.name}({json.dumps(c.function.arguments) if isinstance(c.function.arguments, dict) else c.function.arguments})"
                         for c in message.tool_calls)
    return message.content


def failure_brief(failures: list[Attempt]) -> str:
    """The failures as the line the teacher reads under the item's request."""
    cases = []
    for attempt in failures:
        asked = next((m.content for m in reversed(attempt.prompt) if m.role == "user"), "")
        cases.append(f'"{_short(asked)}" (expected "{_short(_said(attempt.reference))}", '
                     f'it answered "{_short(_said(attempt.answer))}")')
    return ("a student model got these wrong: " + "; ".join(cases)
            + ". Write a new item, different from these, that teaches what the student lacks")


def targeted_items(taxonomy: str, round_: int, quotas: dict[str, int], attempts: list[Attempt],
                   leaf_axes: dict[str, list[dict[str, str]]], axes_of: dict[str, dict[str, str]],
                   taken: set[str], top_index: dict[str, int]) -> list[PlanItem]:
    """`quotas[leaf]` new items a leaf. `leaf_axes`: the axes of the leaf's planned items; `axes_of`: a plan
    item's axes by example id; `taken`: ids already in run.db; `top_index`: the highest item index a leaf has."""
    items = []
    taken = set(taken)
    for leaf, quota in sorted(quotas.items()):
        failures = [a for a in attempts if a.leaf == leaf and not a.passed]
        pool = [axes_of[a.example_id] for a in failures if a.example_id in axes_of] or leaf_axes.get(leaf) or [{}]
        index = top_index.get(leaf, -1)
        for k in range(quota):
            axes = {name: value for name, value in pool[k % len(pool)].items() if name != BRIEF_AXIS}
            if failures:  # a different window of failures for each item, so the items do not all read alike
                shown = [failures[(k + j) % len(failures)] for j in range(min(SHOWN, len(failures)))]
                axes[BRIEF_AXIS] = failure_brief(shown)
            item_id = new_item_id(taxonomy, leaf, round_, k, taken, source="improve")
            taken.add(item_id)
            index += 1
            items.append(PlanItem(id=item_id, node_path=leaf, axes=axes, index=index))
    return items
