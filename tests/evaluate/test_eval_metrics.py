"""Metrics against hand-computed values, and the position-swapped judge with fake judges."""

from __future__ import annotations

import pytest

from distill.evaluate import metrics as m
from distill.evaluate.report import EvalConfig, _judge_pairs
from distill.records import Example
from distill.teachers.base import GenerationResult, Teacher


def test_wilson_interval_known_values():
    est = m.wilson(8, 10)
    assert est.value == 0.8 and est.low == pytest.approx(0.4902, abs=1e-3) and est.high == pytest.approx(0.9433, abs=1e-3)
    assert m.wilson(0, 5).low == 0.0 and m.wilson(5, 5).high == 1.0


def test_macro_f1_and_confusion():
    golds = ["a", "a", "b", "b", "c"]
    preds = ["a", "b", "b", "b", "x"]
    # F1(a)=2/3, F1(b)=4/5, F1(c)=0 -> mean 0.4889
    assert m.macro_f1_value(golds, preds, ["a", "b", "c"]) == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    matrix = m.confusion_matrix(golds, preds, ["a", "b", "c"])
    assert matrix["a"] == {"a": 1, "b": 1, "c": 0, m.NO_LABEL: 0}
    assert matrix["c"][m.NO_LABEL] == 1
    est = m.macro_f1(golds, preds, ["a", "b", "c"], resamples=200)
    assert est.low <= est.value <= est.high


def test_overlap_metrics():
    assert m.token_f1("Snow is white.", "snow is white") == 1.0
    assert m.token_f1("the sky", "sky blue") == pytest.approx(0.5)
    assert m.rouge_l("white is snow", "snow is white") == pytest.approx(1 / 3)
    assert m.rouge_l("", "x") == 0.0


def test_json_label_and_schema():
    text = 'Sure! ```json\n{"label": "negative", "why": "a {brace} in a string"}\n```'
    assert m.parse_json_object(text) == {"label": "negative", "why": "a {brace} in a string"}
    assert m.extract_label(text, ["positive", "negative"]) == "negative"
    assert m.extract_label("It is very negative, not positive", ["negative", "very negative", "positive"]) == "very negative"
    assert m.extract_label("no idea", ["positive"]) == m.NO_LABEL
    assert m.schema_valid('{"label": "x", "score": 1}', {"label": "y", "score": 0.5})
    assert not m.schema_valid('{"label": 3}', {"label": "y"})
    assert not m.schema_valid("label: positive", {"label": "positive"})
    labels = {"label": ["negative", "positive"]}
    assert m.schema_valid('{"label": " positive", "score": 1}', {"label": "y", "score": 0.5}, labels)
    assert not m.schema_valid('{"label": "neutral", "score": 1}', {"label": "y", "score": 0.5}, labels)  # not in the set
    assert not m.schema_valid('{"score": 1}', {"label": "y", "score": 0.5}, labels)


class FakeJudge(Teacher):
    """Answers A/B from a rule over the two answers shown; `position_biased` always says A."""

    spec = "fake"
    batch_size = 4
    concurrency = 1

    def __init__(self, rule):
        self.rule = rule

    async def generate(self, requests):
        out = []
        for request in requests:
            text = request.messages[0].content
            a = text.split("Answer A:\n", 1)[1].split("\n\nAnswer B:", 1)[0]
            b = text.split("Answer B:\n", 1)[1].split("\n\nReply", 1)[0]
            out.append(GenerationResult(key=request.key, text=self.rule(a, b)))
        return out

    def close(self):
        pass


def _examples(n):
    return [Example(id=str(i), messages=[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "r"}])
            for i in range(n)]


def test_judge_swaps_positions():
    config = EvalConfig(resamples=100)
    good, bad = ["a long careful answer"] * 6, ["meh"] * 6
    prefers_long = FakeJudge(lambda a, b: "A" if len(a) > len(b) else "B")
    verdict = _judge_pairs(prefers_long, _examples(6), good, bad, config)
    assert verdict["wins"] == 6 and verdict["win_rate"]["value"] == 1.0
    position_biased = FakeJudge(lambda a, b: "A")
    verdict = _judge_pairs(position_biased, _examples(6), good, bad, config)
    assert verdict["ties"] == 6 and verdict["win_rate"]["value"] == 0.5


def test_a_judge_that_answers_nothing_fails_the_eval():
    from distill.errors import RunFailed

    class Unreachable(FakeJudge):
        async def generate(self, requests):
            return [GenerationResult(key=r.key, error="connection refused: nothing is listening") for r in requests]

    with pytest.raises(RunFailed, match="none of 4 judge requests succeeded; e.g. connection refused"):
        _judge_pairs(Unreachable(None), _examples(2), ["a", "b"], ["c", "d"], EvalConfig(resamples=10))


def test_bootstrap_interval_of_a_mean_matches_its_standard_error():
    """The interval says how far the mean could move on another sample: for 100 scores of 0 and 1 (sd 0.5)
    the standard error is 0.05, so a 95% interval is about 0.5 +/- 0.1; identical scores leave no doubt."""
    est = m.mean_estimate([0.0, 1.0] * 50, resamples=2000)
    assert est.value == 0.5
    assert 0.38 <= est.low <= 0.43 and 0.57 <= est.high <= 0.62, est
    flat = m.mean_estimate([0.7] * 20, resamples=200)
    assert flat.low == flat.value == flat.high == pytest.approx(0.7)
