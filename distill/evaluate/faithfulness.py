"""How often a model's answers keep to the passage of the user's documents their question was written from
(docs/documents.md#measuring-faithfulness): the share of answers curation's lexical `faithful` check accepts
against the example's passage (`meta.source`, its text from the run's documents.json), with a Wilson interval.

An answer that says nothing (empty, or only white space) is not counted faithful: the check has no sentence to
fault in it, but it states nothing of the passage either."""

from __future__ import annotations

from collections.abc import Sequence

from distill.curate.faithfulness import passage_text, unsupported
from distill.evaluate.metrics import Estimate, wilson
from distill.records import Example


def faithful(answer: str, passage: str, question: str = "") -> bool:
    """The answer states something, and nothing the passage does not (curation's `faithful` check)."""
    return bool(answer.strip()) and unsupported(answer, passage, question) is None


def faithful_share(examples: Sequence[Example], answers: Sequence[str], passages: dict[str, str]) -> Estimate | None:
    """The share of `answers` faithful to their example's passage, over the examples that have one at hand;
    None where none has."""
    kept = total = 0
    for example, answer in zip(examples, answers):
        passage = passage_text(example, passages)
        if passage is None:
            continue
        question = next((m.content for m in reversed(example.messages) if m.role == "user"), "")
        total += 1
        kept += faithful(answer, passage, question)
    return wilson(kept, total) if total else None
