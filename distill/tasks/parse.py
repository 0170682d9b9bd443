"""Turning teacher text into typed values. Whatever does not parse raises `Rejected` with a reason."""

from __future__ import annotations

import json
import re
from typing import Any

import json_repair

from distill.teachers.base import GenerationResult

FENCE = re.compile(r"```(?:json)?\s*(.*?)(?:```|$)", re.DOTALL)
REFUSAL = re.compile(
    r"^\s*(i'?m sorry|i am sorry|i cannot|i can'?t (help|assist|provide)|as an ai\b|i am unable|i'm unable)",
    re.IGNORECASE,
)
QUESTION = re.compile(r"[A-Z][^?!.]*\?")
LEADING_LABEL = re.compile(r"^\s*(\*\*)?(new )?question(\s*\d+)?\s*:?\s*(\*\*)?\s*", re.IGNORECASE)


class Rejected(Exception):
    def __init__(self, reason: str, detail: str, raw: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.raw = reason, detail, raw


def usable_text(result: GenerationResult, step: str) -> str:
    """The text of a finished call, or `Rejected` for empty, truncated, filtered or refused output."""
    text = (result.text or "").strip()
    if result.finish_reason == "length":
        raise Rejected("truncated", f"{step}: the teacher hit max_tokens before finishing", result.text)
    if result.finish_reason in ("content_filter", "refusal"):
        raise Rejected(result.finish_reason, f"{step}: the teacher's output was withheld ({result.finish_reason})", result.text)
    if not text:
        raise Rejected("empty_output", f"{step}: the teacher returned no text", result.text)
    if REFUSAL.match(text):
        raise Rejected("refusal", f"{step}: the teacher refused: {text[:80]!r}", result.text)
    return text


def extract_question(text: str, avoid: set[str] | frozenset[str] = frozenset()) -> str:
    """The first new question in a reply that may carry a label, a preamble, a list, or an answer.

    The text may have been cut at max_tokens: a complete question before the cut is still usable.
    Questions that repeat a few-shot seed (`avoid`, normalised) are skipped.
    """
    for line in text.splitlines():
        line = LEADING_LABEL.sub("", line.strip().lstrip("-*0123456789.) ").strip()).strip('"“”').strip()
        for sentence in QUESTION.findall(line):
            question = " ".join(sentence.split())
            if len(question.split()) >= 4 and normalize_question(question) not in avoid:
                return question
    if text.strip() and "?" not in text and len(text.split()) <= 60:
        raise Rejected("no_question", f"instruction: the reply asks nothing: {text.strip()[:80]!r}", text)
    raise Rejected("no_question", f"instruction: no new question in {text.strip()[:80]!r}", text)


def normalize_question(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def extract_json(text: str) -> tuple[dict[str, Any], bool]:
    """The first JSON object in the text (fenced or bare), and whether it needed repair."""
    fenced = FENCE.search(text)
    candidate = fenced.group(1) if fenced else text
    start = candidate.find("{")
    if start == -1:
        raise Rejected("unparseable_json", f"no JSON object in {text[:80]!r}", text)
    candidate = candidate[start:]
    try:
        value, _ = json.JSONDecoder().raw_decode(candidate)
        repaired = False
    except json.JSONDecodeError:
        value = json_repair.loads(candidate)
        repaired = True
    if not isinstance(value, dict) or not value:
        raise Rejected("unparseable_json", f"not a JSON object: {text[:80]!r}", text)
    return value, repaired
