"""Every content check on real answers: real PubMedQA answers pass, each planted fault is caught."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from test_curate_helpers import needs_data, pubmedqa
from distill.curate.checks import CheckSettings, first_failure, repeated_ngram_ratio
from distill.curate.language import detect_language
from distill.records import Example, ExampleMeta, Message


def ex(prompt: str, response: str, output=None, **meta) -> Example:
    return Example(
        id="x",
        messages=[Message(role="user", content=prompt), Message(role="assistant", content=response)],
        output=output,
        meta=ExampleMeta(**meta),
    )


def reason(example: Example, **settings) -> str | None:
    failure = first_failure(example, CheckSettings(**settings))
    return failure.reason if failure else None


@needs_data
def test_real_pubmedqa_answers_pass_the_checks():
    failures = [first_failure(ex(i["QUESTION"], i["LONG_ANSWER"]), CheckSettings()) for i in pubmedqa()]
    failed = [(f.reason, f.detail) for f in failures if f is not None]
    # One of the 1,000 real answers ends without a full stop and reads as cut off; nothing else may fail.
    assert len(failed) <= 1, failed
    assert all(reason == "truncated" for reason, _ in failed)


@needs_data
def test_faults_planted_in_real_answers_get_their_reason():
    item = pubmedqa()[0]
    q, a = item["QUESTION"], item["LONG_ANSWER"]
    words = a.split()
    assert reason(ex(q, "   ")) == "empty_output"
    assert reason(ex("", a)) == "missing_prompt"
    assert reason(ex(q, " ".join(words[: len(words) * 2 // 3]))) == "truncated"
    assert reason(ex(q, a, finish_reason="length")) == "truncated"
    assert reason(ex(q, "Here:\n```python\nprint(1)\n")) == "truncated"
    assert reason(ex(q, "Yes.")) == "too_short"
    assert reason(ex(q, a, ), max_words=10) == "too_long"
    assert reason(ex(q, "I'm sorry, but I can't help with that request.")) == "refusal"
    assert reason(ex(q, "As an AI language model, " + a)) == "ai_boilerplate"
    assert reason(ex(q, q)) == "repeats_question"
    assert reason(ex(q, "Good question. " + q)) == "repeats_question"
    assert reason(ex(q, " ".join(words[:12] * 5) + ".")) == "repetitive"


def test_wrong_language_is_caught_and_terse_answers_are_not_guessed():
    spanish = "La fibrilación auricular es una arritmia que aumenta el riesgo de ictus y se trata con anticoagulantes."
    french = "La fibrillation auriculaire est un trouble du rythme qui augmente le risque d'accident vasculaire."
    russian = "Фибрилляция предсердий — это нарушение ритма сердца, которое повышает риск инсульта."
    for text, code in ((spanish, "es"), (french, "fr"), (russian, "ru")):
        assert detect_language(text) == code
        assert reason(ex("What is atrial fibrillation?", text)) == "wrong_language"
    assert reason(ex("What is AF?", spanish), language="es") is None
    assert detect_language("Metformin 500 mg.") is None  # too short to call


def test_label_outside_the_set_and_schema():
    class Ticket(BaseModel):
        label: str
        confidence: float

    labels = ["billing", "shipping", "returns"]
    assert reason(ex("Where is my parcel?", "Shipping."), labels=labels) is None
    assert reason(ex("Where is my parcel?", "logistics"), labels=labels) == "label_not_in_set"
    assert reason(ex("Where is my parcel?", "{}", output={"label": "refund"}), labels=labels) == "label_not_in_set"
    ok = ex("Where is my parcel?", '{"label": "shipping", "confidence": 0.9}')
    assert reason(ok, output_schema=Ticket) is None  # parsed from the response when `output` is absent
    bad = ex("Where is my parcel?", "{}", output={"label": "shipping", "confidence": "high"})
    failure = first_failure(bad, CheckSettings(output_schema=Ticket))
    assert failure.reason == "schema_invalid" and "confidence" in failure.detail
    assert reason(ex("Where is my parcel?", "not json at all"), output_schema=Ticket) == "schema_invalid"


@pytest.mark.parametrize(("words", "expected"), [("a b c a b c a b c".split(), 4 / 7), ("a b c d e".split(), 0.0)])
def test_repeated_ngram_ratio(words, expected):
    assert repeated_ngram_ratio(words, 3) == pytest.approx(expected)


def test_an_assistant_turn_before_any_user_turn_is_rejected():
    from distill.curate.checks import CheckSettings, first_failure
    from distill.records import Example

    backwards = Example.model_validate({"id": "x", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "Paris is the capital."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris is the capital of France."}]})
    failure = first_failure(backwards, CheckSettings(language=None))
    assert (failure.reason, failure.detail) == ("turn_order", "an assistant turn comes before any user turn")
    forwards = backwards.model_copy(update={"messages": backwards.messages[:1] + backwards.messages[2:]})
    assert first_failure(forwards, CheckSettings(language=None)) is None
