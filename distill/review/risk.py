"""What a reviewer should see first: items that passed curation only just, or stand out.

Signals, each a plain function of the example (and its neighbours) with a cut-off; the score is how
far past the cut-off an item is (1.0 at it), so the risk slice takes the strongest first:
- near_neighbour: the most similar other kept item has word-shingle Jaccard >= 0.5 (curation
  removes >= 0.7, so these are the near-duplicates it let through);
- repetition: >= 15% of the answer's word 3-grams repeat (curation rejects above 30%);
- unfinished: the answer's last line ends without a sentence stop (curation rejects that only for
  lines of 8+ words);
- json_repaired: the teacher's JSON needed json_repair to parse;
- length_outlier: the answer's length is > 2.5 robust standard deviations (median absolute
  deviation of log word counts) from its leaf's, or the whole set's when the leaf has < 8 items.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from statistics import median

from distill.curate.checks import repeated_ngram_ratio
from distill.curate.normalize import normalize_text
from distill.records import Example
from distill.review.model import Neighbour, Signal

NEAR_NEIGHBOUR = 0.5
REPETITION = 0.15
LENGTH_Z = 2.5
MIN_LEAF_FOR_LENGTH = 8
_STOP = re.compile(r"""[.!?:;)\]}"'`*>|%]\s*$|```\s*$""")


def near_neighbour(example: Example, neighbour: Neighbour | None) -> Signal | None:
    if neighbour is None or neighbour.similarity < NEAR_NEIGHBOUR:
        return None
    return Signal(name="near_neighbour", score=neighbour.similarity / NEAR_NEIGHBOUR,
                  detail=f"Jaccard {neighbour.similarity:.2f} with kept item {neighbour.id}")


def repetition(example: Example) -> Signal | None:
    words = normalize_text(example.response).split()
    if len(words) < 12:
        return None
    ratio = repeated_ngram_ratio(words, 3)
    if ratio < REPETITION:
        return None
    return Signal(name="repetition", score=ratio / REPETITION, detail=f"{ratio:.0%} of word 3-grams repeat")


def unfinished(example: Example) -> Signal | None:
    if example.output is not None:  # structured answers end with their JSON
        return None
    text = example.response.rstrip()
    if not text or _STOP.search(text):
        return None
    return Signal(name="unfinished", score=1.0, detail=f"ends without a stop: ...{text[-40:]!r}")


def json_repaired(example: Example) -> Signal | None:
    if not (example.meta.model_extra or {}).get("json_repaired"):
        return None
    return Signal(name="json_repaired", score=1.5, detail="the teacher's JSON needed repair to parse")


def length_outliers(examples: list[Example]) -> dict[str, Signal]:
    """id -> signal for answers whose log length is far from their leaf's (robust z-score)."""
    logs = {e.id: math.log1p(len(e.response.split())) for e in examples}
    by_leaf: dict[str, list[str]] = defaultdict(list)
    for e in examples:
        by_leaf[e.meta.taxonomy_path or ""].append(e.id)
    everyone = list(logs)
    out = {}
    for ids in by_leaf.values():
        group = ids if len(ids) >= MIN_LEAF_FOR_LENGTH else everyone
        centre = median(logs[i] for i in group)
        spread = 1.4826 * median(abs(logs[i] - centre) for i in group)
        if spread == 0:
            continue
        for item_id in ids:
            z = (logs[item_id] - centre) / spread
            if abs(z) >= LENGTH_Z:
                words = round(math.expm1(logs[item_id]))
                side = "long" if z > 0 else "short"
                out[item_id] = Signal(name="length_outlier", score=abs(z) / LENGTH_Z,
                                      detail=f"{words} words: unusually {side} (robust z {z:+.1f})")
    return out


def signals(examples: list[Example], neighbours: dict[str, Neighbour]) -> dict[str, list[Signal]]:
    """id -> every signal that fires for it, strongest first."""
    lengths = length_outliers(examples)
    out = {}
    for example in examples:
        found = [near_neighbour(example, neighbours.get(example.id)), repetition(example), unfinished(example),
                 json_repaired(example), lengths.get(example.id)]
        out[example.id] = sorted((s for s in found if s is not None), key=lambda s: -s.score)
    return out
