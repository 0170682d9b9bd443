"""Which sentences of a passage support an answer, for the review to highlight beside it.

The same lexical reading as the `faithful` check (distill/curate/faithfulness.py): its sentences and its folded
content words. For each sentence of the answer, the passage sentences that share the most content words with it,
when they share at least `MIN_SHARED` and at least `MIN_SHARE` of the answer sentence's words. A highlight to
guide the reviewer's eye, not a verdict: the check has already decided.
"""

from __future__ import annotations

from pydantic import BaseModel

from distill.curate.faithfulness import sentence_spans
from distill.curate.vocabulary import content_words

MIN_SHARED = 2  # one shared word ("vaccine") is a topic, not a claim
MIN_SHARE = 0.3  # of the answer sentence's content words


class Span(BaseModel):
    """Characters `start` to `end` of the passage's text."""

    start: int
    end: int


def supporting_spans(answer: str, passage: str) -> list[Span]:
    """The spans of the passage sentences that support the answer's sentences, in passage order, each once."""
    sentences = [(start, end, set(content_words(passage[start:end])))
                 for start, end in sentence_spans(passage, wrapped=True)]
    chosen: set[tuple[int, int]] = set()
    for start, end in sentence_spans(answer):
        claimed = set(content_words(answer[start:end]))
        if not claimed:
            continue
        shared = [len(claimed & words) for _, _, words in sentences]
        best = max(shared, default=0)
        if best >= MIN_SHARED and best >= MIN_SHARE * len(claimed):
            chosen |= {(s, e) for (s, e, _), n in zip(sentences, shared) if n == best}
    return [Span(start=s, end=e) for s, e in sorted(chosen)]
