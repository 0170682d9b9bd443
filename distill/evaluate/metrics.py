"""Task metrics with confidence intervals: small held-out sets make point estimates misleading.

Proportions get Wilson intervals (sane at 0/n and n/n); everything else a seeded percentile bootstrap.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from typing import Any, Callable, Sequence

from pydantic import BaseModel

NO_LABEL = "(none)"
BASE, TEACHER = "base", "teacher"  # the systems a report compares besides the student's forms
# The metrics a task's table shows first, and how eval.md names them.
# A task whose references call tools is headlined by its tool calls (distill/evaluate/tool_scores.py), whatever
# its name: then the final answer's overlap follows.
TOOL_CALLING = "tool_calling"
HEADLINE = {"classification": ("schema_validity", "accuracy", "macro_f1"),
            "qa": ("token_f1", "rouge_l", "faithful", "ends_turn", "in_length"),
            TOOL_CALLING: ("valid_call", "right_tool", "arguments_equal", "token_f1", "ends_turn")}
LABELS = {"schema_validity": "schema validity", "accuracy": "accuracy", "macro_f1": "macro-F1",
          "token_f1": "token-F1", "rouge_l": "ROUGE-L", "ends_turn": "ends its turn", "in_length": "stays in length",
          "valid_call": "valid call", "right_tool": "right tool", "arguments_equal": "arguments equal",
          "faithful": "faithful to its passage"}


def calls_tools(block: dict | None) -> bool:
    """Whether a task's (or a leaf's) block holds tool-call scores."""
    return block is not None and any("valid_call" in row for row in block["systems"].values())


def leaf_metric(task: str, block: dict | None = None) -> str:
    """The one score a leaf is shown by (table and plot): the valid-call rate where the leaf's references call
    tools, accuracy for classification, token-F1 for open QA."""
    if calls_tools(block):
        return "valid_call"
    return "accuracy" if task == "classification" else "token_f1"


class Estimate(BaseModel):
    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def wilson(successes: float, n: int, z: float = 1.96) -> Estimate:
    if n == 0:
        return Estimate(value=0.0, low=0.0, high=0.0, n=0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Estimate(value=p, low=max(0.0, centre - half), high=min(1.0, centre + half), n=n)


def bootstrap(statistic: Callable[[list[int]], float], n: int, resamples: int = 1000, seed: int = 0) -> Estimate:
    """Percentile interval of `statistic(indices)` over resampled index lists."""
    if n == 0:
        return Estimate(value=0.0, low=0.0, high=0.0, n=0)
    rng = random.Random(seed)
    full = statistic(list(range(n)))
    samples = sorted(statistic([rng.randrange(n) for _ in range(n)]) for _ in range(resamples))
    return Estimate(value=full, low=samples[int(0.025 * (resamples - 1))], high=samples[int(0.975 * (resamples - 1))],
                    n=n)


def mean_estimate(values: Sequence[float], resamples: int = 1000, seed: int = 0) -> Estimate:
    return bootstrap(lambda idx: sum(values[i] for i in idx) / len(idx), len(values), resamples, seed)


def accuracy(golds: Sequence[str], preds: Sequence[str]) -> Estimate:
    return wilson(sum(g == p for g, p in zip(golds, preds)), len(golds))


def macro_f1_value(golds: Sequence[str], preds: Sequence[str], labels: Sequence[str]) -> float:
    """Mean over the gold label set of per-label F1 (a prediction outside it only costs recall)."""
    if not labels:
        return 0.0
    scores = []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(golds, preds))
        fp = sum(g != label and p == label for g, p in zip(golds, preds))
        fn = sum(g == label and p != label for g, p in zip(golds, preds))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def macro_f1(golds: Sequence[str], preds: Sequence[str], labels: Sequence[str], resamples: int = 1000,
             seed: int = 0) -> Estimate:
    return bootstrap(lambda idx: macro_f1_value([golds[i] for i in idx], [preds[i] for i in idx], labels),
                     len(golds), resamples, seed)


def confusion_matrix(golds: Sequence[str], preds: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, int]]:
    """gold -> predicted -> count; predictions outside the label set land in NO_LABEL."""
    columns = list(labels) + [NO_LABEL]
    matrix = {gold: dict.fromkeys(columns, 0) for gold in labels}
    for gold, pred in zip(golds, preds):
        matrix.setdefault(gold, dict.fromkeys(columns, 0))
        matrix[gold][pred if pred in columns else NO_LABEL] += 1
    return matrix


_WORD = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style bag-of-words F1."""
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure: longest common subsequence of words, so word order counts."""
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    previous = [0] * (len(ref) + 1)
    for word in pred:
        current = [0]
        for j, other in enumerate(ref):
            current.append(previous[j] + 1 if word == other else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


# An open answer "stays in length" at half to twice the reference's words: the student was trained to answer
# as the teacher did, so one that rambles on or stops at a sentence is off format whatever its overlap.
LENGTH_BAND = (0.5, 2.0)


def in_length(prediction: str, reference: str, band: tuple[float, float] = LENGTH_BAND) -> bool:
    ref = len(tokens(reference))
    if not ref:
        return not tokens(prediction)
    return band[0] <= len(tokens(prediction)) / ref <= band[1]


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in the text (models wrap JSON in prose or code fences), or None."""
    start = text.find("{")
    while start != -1:
        depth = 0
        in_string = escaped = False
        for i in range(start, len(text)):
            char = text[i]
            if in_string:
                escaped = char == "\\" and not escaped
                if char == '"' and not escaped:
                    in_string = False
                continue
            if char == '"':
                in_string = True
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    try:
                        value = json.loads(text[start : i + 1])
                    except json.JSONDecodeError:
                        break
                    return value if isinstance(value, dict) else None
        start = text.find("{", start + 1)
    return None


def schema_valid(text: str, reference: dict[str, Any], choices: dict[str, Sequence[str]] | None = None) -> bool:
    """A JSON object carrying every field of the reference output, each of the same JSON type, and a value
    among `choices[field]` where the field has a closed set (a classification's label)."""
    parsed = parse_json_object(text)
    if parsed is None:
        return False
    for key, allowed in (choices or {}).items():
        if key in reference and (not isinstance(parsed.get(key), str) or parsed[key].strip() not in allowed):
            return False
    for key, value in reference.items():
        if key not in parsed:
            return False
        if value is not None and parsed[key] is not None and type(parsed[key]) is not type(value):
            if not (isinstance(value, (int, float)) and isinstance(parsed[key], (int, float))):
                return False
    return True


def extract_label(text: str, labels: Sequence[str]) -> str:
    """The predicted label: the JSON `label` field when there is one, else the first label named in the text."""
    parsed = parse_json_object(text)
    if parsed is not None and isinstance(parsed.get("label"), str):
        return parsed["label"].strip()
    lowered = text.lower()
    found = []
    for label in sorted(labels, key=len, reverse=True):  # longest first: "very negative" before "negative"
        match = re.search(r"(?<!\w)" + re.escape(label.lower()) + r"(?!\w)", lowered)
        if match:
            found.append((match.start(), label))
    return min(found)[1] if found else NO_LABEL
