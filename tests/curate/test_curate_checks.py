"""Every content check on real answers: real PubMedQA answers pass, each planted fault is caught."""

from __future__ import annotations

import pytest
from curate_helpers import needs_data, pubmedqa
from pydantic import BaseModel

from cli_helpers import ROOT
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


def medical_index():
    from distill.curate.from_taxonomy import taxonomy_nodes
    from distill.curate.topic import TopicIndex
    from distill.taxonomy import load_taxonomy

    return TopicIndex(taxonomy_nodes(load_taxonomy(ROOT / "taxonomies" / "medical.yaml")))


@pytest.mark.parametrize("question", [
    "What is the mechanism of action?", "What should I do next?", "What's the best way to manage it?",
    "What does this mean?", "Is it serious in children?", "How is it treated?", "What are the side effects?",
    "What is the likely diagnosis, which can be treated?", "Can you explain what my results mean?",
])
def test_questions_that_name_no_subject_are_not_self_contained(question):
    failure = first_failure(ex(question, "A full answer that would otherwise pass every check here."), CheckSettings())
    assert failure is not None and failure.reason == "not_self_contained"
    assert question[:20] in failure.detail


@pytest.mark.parametrize("question", [
    "What is asthma?", "How is it treated in adults with atrial fibrillation?", "Is metformin safe in pregnancy?",
    "What is a Glasgow-Blatchford score?", "A 45-year-old man has crushing chest pain. What should I do next?",
    "Why does my child wheeze at night?", "How do I know if someone is suicidal?",
])
def test_questions_that_name_their_subject_pass(question):
    assert reason(ex(question, "A full answer that would otherwise pass every check here.")) is None


def test_generic_words_extend_per_dataset_and_checks_switch_off_by_name():
    assert reason(ex("What is the procedure?", "A full answer that would otherwise pass every check.")) is None
    assert reason(ex("What is the procedure?", "A full answer that would otherwise pass every check."),
                  generic_words=frozenset({"procedure"})) == "not_self_contained"
    assert reason(ex("What should I do next?", "A full answer that would otherwise pass every check."),
                  skip=frozenset({"self_contained"})) is None


HIV = ("The mechanism of action is that HIV infects cells throughout the body, but it primarily targets immune "
       "cells. The virus binds to proteins on the surface of CD4 cells and uses them as a host to copy itself; "
       "antiretroviral therapy stops it copying, and an undetectable viral load means it cannot be passed on.")
PNEUMONIA = ("Community-acquired pneumonia in an adult who is otherwise well is usually treated with oral "
             "amoxicillin for five days; the CRB-65 score guides whether hospital care is needed. Influenza "
             "antivirals help only early, and most acute bronchitis and sinusitis needs no antibiotic.")


def test_an_answer_about_another_leaf_is_off_topic():
    topics = medical_index()
    settings = dict(topics=topics, skip=frozenset({"self_contained"}))
    leaf = "infectious-disease/respiratory-infections"
    off = ex("What is the mechanism of action?", HIV, taxonomy_path=leaf)
    failure = first_failure(off, CheckSettings(**settings))
    assert failure.reason == "off_topic" and "closer to infectious-disease/hiv-and-viral-hepatitis" in failure.detail
    on = ex("How is community-acquired pneumonia treated in adults?", PNEUMONIA, taxonomy_path=leaf)
    assert first_failure(on, CheckSettings(**settings)) is None
    # The same HIV answer filed under the HIV leaf is on topic.
    assert first_failure(ex("How does HIV treatment work?", HIV, taxonomy_path="infectious-disease/hiv-and-viral-hepatitis"),
                         CheckSettings(**settings)) is None
    # Without a taxonomy, or with the check switched off, or a judge deciding: not the lexical check's call.
    assert first_failure(off, CheckSettings(skip=frozenset({"self_contained"}))) is None
    assert first_failure(off, CheckSettings(**{**settings, "skip": frozenset({"self_contained", "off_topic"})})) is None
    assert first_failure(off, CheckSettings(**settings, topic_judge=True)) is None
    # A looser ratio keeps it.
    assert first_failure(off, CheckSettings(**settings, min_topic_ratio=0.05)) is None


@needs_data
def test_real_questions_written_by_people_name_their_subject():
    """Precision on human-written questions: MMLU's medical subjects and every seed of this repository."""
    import glob
    import json as json_module

    from curate_helpers import MMLU, mmlu

    questions = [row[0] for path in sorted(MMLU.glob("*_test.csv")) for row in mmlu(path.name.removesuffix("_test.csv"))]
    for path in glob.glob(str(ROOT / "seeds" / "*" / "*.jsonl")):
        # (seeds of conversation tasks hold a situation for the simulated user, not a question: not read here)
        rows = [json_module.loads(line) for line in open(path)]
        questions += [text for row in rows if (text := row.get("question") or row.get("text") or row.get("note"))]
    assert len(questions) > 1100
    flagged = [q for q in questions if reason(ex(q, "A full answer that would otherwise pass every check here.")) is not None]
    assert flagged == []


def test_the_two_checks_on_items_the_embedded_teacher_wrote():
    """The 24 items `distill generate --limit 24` made on the medical taxonomy with the embedded teacher, all 24
    kept by every other step of curation; each removal below was read and judged by hand."""
    from distill.curate.from_taxonomy import taxonomy_config
    from distill.curate.pipeline import CurateConfig
    from distill.executors.local import curate
    from distill.records import read_jsonl
    from distill.taxonomy import load_taxonomy

    examples = [Example.model_validate(row) for row in read_jsonl(ROOT / "tests" / "fixtures" / "medical-limit24.jsonl")]
    settings = taxonomy_config(load_taxonomy(ROOT / "taxonomies" / "medical.yaml"))
    without = curate(examples, CurateConfig(**{**settings, "skip_checks": ["self_contained", "off_topic"]}, workers=1))
    assert len(without.kept) == 24
    result = curate(examples, CurateConfig(**settings, workers=1))
    removed = {r.id: r.reason for r in result.rejects}
    assert removed == {
        "ec9800eeaa9eee1f": "not_self_contained",  # "What is the mechanism of action?" (respiratory infections; about HIV)
        "f956ced980c0fab6": "not_self_contained",  # "What should I do next?"
        "c6f07f2f2b1163d1": "not_self_contained",  # "What is the likely diagnosis, which can be treated?"
        "67a3f9406a88a4c2": "not_self_contained",  # "What's the best way to manage it?" (allergy; about vaccines)
        "e599eb99c0a16cc1": "not_self_contained",  # "What does this mean?"
        "645036fcdc8cbf3f": "off_topic",  # "I've just been told I have a leaky gut ..." filed under heart failure
    }
    # What stays: on topic though often medically wrong (the embedded teacher is demo-grade), e.g. the
    # potassium question under electrolyte disorders that a looser ratio (0.5) would have thrown away.
    kept = {e.id: e.prompt for e in result.kept}
    assert kept["cdf6bdfb06b1f5d8"] == "What is the normal range of potassium in a healthy adult?"
    loose = curate(examples, CurateConfig(**settings, min_topic_ratio=0.5, workers=1))
    assert "cdf6bdfb06b1f5d8" in {r.id for r in loose.rejects if r.reason == "off_topic"}


def test_labelled_data_is_not_judged_off_topic():
    """Labels are crossed with leaves: a login ticket planned in the billing leaf talks about accounts."""
    from distill.curate.from_taxonomy import taxonomy_nodes
    from distill.curate.topic import TopicIndex
    from distill.taxonomy import load_taxonomy

    topics = TopicIndex(taxonomy_nodes(load_taxonomy(ROOT / "tests" / "fixtures" / "tiny" / "tickets.yaml")))
    login = ex("I cannot sign in: the site says my password is wrong after every reset of my account.",
               '{"label": "login_problem", "rationale": "The customer cannot sign in to their account."}',
               output={"label": "login_problem", "rationale": "The customer cannot sign in."}, taxonomy_path="billing")
    assert reason(login, topics=topics) == "off_topic"  # what the lexical check would say
    assert reason(login, topics=topics, labels=["login_problem", "refund_request"]) is None


def test_the_names_a_task_may_switch_off_are_the_checks_curation_runs():
    """`skip_checks` is checked against check_names.GENERAL_CHECKS when a task compiles (before curation is
    imported); a check added to CHECKS without its name there could never be switched off."""
    from distill.check_names import GENERAL_CHECKS
    from distill.curate.checks import CHECKS, check_name, check_task

    assert [check_name(check) for check in CHECKS if check is not check_task] == list(GENERAL_CHECKS)
