"""A strong teacher for the shipped clinic documents, faked at the network boundary: it writes questions the
passage answers and answers them from the passage, as a capable model would, but from an answer key.

The answer key (clinic_facts.json, written by scripts/make_documents.py beside the documents) holds facts: a
sentence that appears word for word in the documents, two or three standalone questions it answers and a short
answer drawn from it. Asked for a question about a passage (the `qa` task's first step with `--documents`), the
teacher picks one of the questions of the facts whose sentence is in that passage: by a stable hash of the
request, moved on by one each time the same request comes again (plan items of one leaf that share a passage
send the same request, and a sampling teacher answers each differently); asked to answer (the second step, or a
question without a passage), it returns that fact's answer. A leaf without
documents gets the key's facts that have no sentence: what the teacher knows beyond the documents.

Deterministic and right by construction: it is the teacher of a measured recipe
(benchmarks/bench_document_recipe.py), so it must stay right, not clever. `Faults(teacher=ExtractiveTeacher())`
puts it in the loopback server.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ANSWER_KEY = Path(__file__).with_name("clinic_facts.json")
QUESTION_ASK = "Write one new question about"  # distill/tasks/builtin/prompts/qa_instruction.j2
PASSAGE_LEAD = "Passage from "
ANSWER_LEAD = "Answer from this passage of "  # distill/tasks/builtin/qa.yaml, the response step with a passage
QUESTION_MARK = "\n\nQuestion: "


class Fact(BaseModel):
    sentence: str | None  # None: the teacher's own knowledge, for a leaf no document is about
    answer: str
    questions: list[str]


def load_facts(path: Path = ANSWER_KEY) -> list[Fact]:
    return [Fact.model_validate(each) for each in json.loads(path.read_text(encoding="utf-8"))["facts"]]


def squash(text: str) -> str:
    """Whitespace made single spaces: a PDF's extracted text breaks lines where the page did."""
    return " ".join(text.split())


def last_user(request: dict[str, Any]) -> str:
    users = [m for m in request.get("messages", []) if m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    return content if isinstance(content, str) else " ".join(part.get("text", "") for part in content)


def request_hash(request: dict[str, Any]) -> int:
    """A number from the whole request (its messages, sampling settings ...), the same in every process."""
    return int.from_bytes(hashlib.sha256(json.dumps(request, sort_keys=True).encode()).digest()[:8], "big")


class ExtractiveTeacher:
    """`Faults.teacher`: the question or answer text for a `qa` request, or None for any other request."""

    def __init__(self, facts: list[Fact] | None = None):
        self.facts = load_facts() if facts is None else facts
        self.answers = {question: fact.answer for fact in self.facts for question in fact.questions}
        self.asked: Counter[int] = Counter()  # how often each question request came

    def __call__(self, request: dict[str, Any]) -> str | None:
        ask = last_user(request)
        if ask.startswith(ANSWER_LEAD) and QUESTION_MARK in ask:
            passage, question = ask.split("\n", 1)[1].rsplit(QUESTION_MARK, 1)
            return self.answer(question.strip(), passage)
        if QUESTION_ASK in ask:
            passage = ask.split("\n", 1)[1].split("\n\n" + QUESTION_ASK)[0] if ask.startswith(PASSAGE_LEAD) else None
            return self.question(request, passage)
        return self.answers.get(ask.strip())  # a question asked without a passage (a leaf without documents)

    def question(self, request: dict[str, Any], passage: str | None) -> str | None:
        if passage is None:
            facts = [fact for fact in self.facts if fact.sentence is None]
        else:
            facts = [fact for fact in self.facts if fact.sentence and squash(fact.sentence) in squash(passage)]
        choices = [question for fact in facts for question in fact.questions]
        if not choices:
            return None
        key = request_hash(request)
        self.asked[key] += 1
        return choices[(key + self.asked[key] - 1) % len(choices)]

    def answer(self, question: str, passage: str) -> str:
        """The fact's answer; a question the key does not hold is answered with the passage's first sentence."""
        if question in self.answers:
            return self.answers[question]
        return squash(passage).split(". ")[0].rstrip(".") + "."
