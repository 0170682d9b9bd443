"""What an example made from a passage of the user's documents (`meta.source`) must keep to: its answer says
what the passage says (`unsupported`), and a closed-book question does not lean on a passage the student will
not see (`leaning_phrase`). Lexical, so they run the same in this process and on Ray workers."""

from __future__ import annotations

import re
from typing import Any

from distill.curate.vocabulary import content_words, fold, words
from distill.records import Example

# A number as written: 1,500 / 2.5 / 30 (a trailing % or unit is another token).
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])")
# A word that starts with a capital letter (or is an acronym), letters, digits and hyphens after it.
_CAPITALISED = re.compile(r"\b[A-Z][A-Za-z0-9-]*[A-Za-z0-9]\b|\b[A-Z]\b")
# Sentences end at . ! ? followed by white space, or at a line break (list items are their own sentences); a
# colon before a capital starts one too ("Note: Always ..."), so its first word is not taken for a name.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=:)\s+(?=[A-Z])|\n+")
# In a passage a line break before a lower-case letter does not end a sentence: a PDF page's text breaks its
# sentences where the page's lines end ("The\nvaccine refrigerator log ..."), which is layout, not the author's.
_WRAPPED_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=:)\s+(?=[A-Z])|\n\s*\n\s*|\n+(?![a-z\n])")
# A list marker at the start of a line ("1.", "2)", "-"): a count of the answer's own, not a claim.
_LIST_MARKER = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s+")

MIN_SENTENCE_WORDS = 4  # a sentence with fewer content words is not judged on overlap ("Yes, it does.")
MIN_OVERLAP = 0.5  # the share of a sentence's content words the passage must hold

_REFERENCE = r"(?:passage|excerpt|text|document|section|paragraph|context|article|extract|protocol|procedure|policy)"
LEANING = re.compile(
    r"\b(?:according to|based on|as (?:stated|described|mentioned|outlined|explained|shown|given) in|in light of)"
    rf" (?:the|this|that) (?:above |given |provided |following )?{_REFERENCE}s?\b"
    rf"|\b(?:this|that|the above|the following|the provided|the given) {_REFERENCE}\b"
    r"|\bthe (?:passage|excerpt|text above)\b"
    r"|\b(?:described|mentioned|stated|outlined|given|shown|quoted) (?:above|here|below)\b"
    rf"|\bin the {_REFERENCE} (?:described|above|provided|given|shown)\b",
    re.IGNORECASE,
)


def passage_text(example: Example, passages: dict[str, str]) -> str | None:
    """The text of the passage the example was made from (by `meta.source.id`); None without one, or where the
    passage's text is not at hand (curating a file without the run's documents)."""
    source = source_of(example)
    return passages.get(str(source.get("id"))) if source else None


def closed_book(example: Example, passage: str) -> bool:
    """The student will not see the passage: its text is in none of the example's user or system turns (an
    open-book task such as `grounded-qa` puts it in the user turn)."""
    needle = " ".join(passage.split())[:200]
    return not any(needle in " ".join(m.content.split()) for m in example.messages if m.role in ("user", "system"))


def leaning_phrase(question: str) -> str | None:
    """The first phrase of `question` that points at a passage instead of naming its subject; None if none."""
    found = LEANING.search(question)
    return found.group(0) if found else None


def unsupported(answer: str, passage: str, question: str = "") -> str | None:
    """Why the answer says what the passage does not, naming the first sentence that fails; None if supported.

    Each sentence of the answer in turn: every number in it must be in the passage; every capitalised term not
    at the sentence's start must be a word of the passage or the question; and, where the sentence has
    `MIN_SENTENCE_WORDS` content words or more, at least `MIN_OVERLAP` of them must be in the passage (words
    compared lower-cased with a light suffix fold)."""
    numbers = {_plain_number(n) for n in _NUMBER.findall(passage)}
    known_words = set(words(passage)) | set(words(question))
    passage_words = set(content_words(passage)) | {fold(w) for w in words(passage)}
    for sentence in _sentences(answer):
        shown = sentence if len(sentence) <= 100 else sentence[:97] + "..."
        for number in _NUMBER.findall(sentence):
            if _plain_number(number) not in numbers:
                return f"the number {number} is not in the passage: {shown!r}"
        for term in _CAPITALISED.findall(sentence)[1:] if sentence[:1].isupper() else _CAPITALISED.findall(sentence):
            if term not in ("I",) and not set(words(term)) <= known_words:
                return f"{term!r} is not in the passage: {shown!r}"
        claimed = content_words(sentence)
        if len(claimed) >= MIN_SENTENCE_WORDS:
            share = sum(w in passage_words for w in claimed) / len(claimed)
            if share < MIN_OVERLAP:
                return f"{share:.0%} of its words are in the passage (under {MIN_OVERLAP:.0%}): {shown!r}"
    return None


def sentence_spans(text: str, wrapped: bool = False) -> list[tuple[int, int]]:
    """The character spans of `text`'s sentences, as the `faithful` check cuts an answer: at . ! ? and white space,
    a colon before a capital, a line break; a list marker and the white space around a sentence left out.
    `wrapped`: the text is a passage whose lines may break a sentence (see `_WRAPPED_SENTENCE_END`)."""
    spans = []
    start = 0
    for end in [*(m for m in (_WRAPPED_SENTENCE_END if wrapped else _SENTENCE_END).finditer(text)), None]:
        stop = end.start() if end is not None else len(text)
        marker = _LIST_MARKER.match(text[start:stop])  # sliced: "^" holds at the string's start only
        first = start + marker.end() if marker else start
        piece = text[first:stop]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            spans.append((first + lead, first + len(piece.rstrip())))
        start = end.end() if end is not None else stop
    return spans


def _sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in sentence_spans(text)]


def _plain_number(number: str) -> str:
    """"1,500" and "1500" are the same number; "2.50" and "2.5" too."""
    plain = number.replace(",", "")
    return plain.rstrip("0").rstrip(".") if "." in plain else plain


def source_of(example: Example) -> dict[str, Any] | None:
    """The `meta.source` of an example made from a passage of the user's documents; None for any other."""
    extra = example.meta.model_extra or {}
    source = extra.get("source")
    return source if isinstance(source, dict) else None
