"""The names of curation's general checks, the ones a task's `skip_checks` or `--skip-check` can switch off.

They live here, below `tasks` and `curate`, because a task is checked for unknown names when it is compiled
(`tasks/engine.py`), before any check is imported; `curate/checks.py` holds the checks themselves, and
`tests/curate/test_curate_checks.py` holds the two lists equal."""

from __future__ import annotations

from collections.abc import Iterable

# In the order curation runs them (curate/checks.py's CHECKS, less the task's own checks).
GENERAL_CHECKS = ("structure", "tool_names", "tool_arguments", "tool_loop", "schema", "label", "reasoning", "truncated",
                  "length", "refusal", "repeats_question", "repetition", "repeated_turns", "tool_results", "language",
                  "self_contained", "closed_book", "faithful", "off_topic")


def unknown_checks(names: Iterable[str]) -> str | None:
    """A message naming the first of `names` that is not a check, with the known names; None if all are."""
    unknown = [n for n in names if n not in GENERAL_CHECKS]
    return f"unknown check {unknown[0]!r}; known checks: {', '.join(GENERAL_CHECKS)}" if unknown else None
