"""Real held-out data for the curation tests: tests/data/heldout (PubMedQA and MMLU's medical subjects, both
MIT; their licences and provenance are in that folder). Tests that read it carry `needs_data`, so
`pytest -m needs_data` selects them."""

from __future__ import annotations

import csv
import json
from functools import lru_cache

import pytest

from cli_helpers import HELDOUT

MMLU = HELDOUT / "mmlu_medical"
PUBMEDQA = HELDOUT / "pubmedqa_ori_pqal.json"

needs_data = pytest.mark.needs_data


@lru_cache
def pubmedqa() -> list[dict]:
    data = json.loads(PUBMEDQA.read_text(encoding="utf-8"))
    return [{"pmid": k, **v} for k, v in data.items()]


@lru_cache
def mmlu(subject: str = "professional_medicine") -> list[list[str]]:
    with (MMLU / f"{subject}_test.csv").open(encoding="utf-8", newline="") as handle:
        return [row for row in csv.reader(handle) if row]


def abstract_words() -> list[list[str]]:
    """Each PubMedQA abstract as a list of words (real biomedical prose)."""
    return [" ".join(item["CONTEXTS"]).split() for item in pubmedqa()]


def planted_corpus(n_base: int, copies: list[int], seed: int = 0, words_per_doc: int = 120):
    """`n_base` texts of real abstract words, then one copy of a distinct base text for each entry
    of `copies`, with that many of its words replaced. Returns (texts, [(base, copy), ...])."""
    import numpy as np

    rng = np.random.default_rng(seed)
    vocabulary = [w for words in abstract_words() for w in words]
    idx = rng.integers(0, len(vocabulary), size=(n_base, words_per_doc))
    texts = [" ".join(vocabulary[i] for i in row) + "." for row in idx.tolist()]
    sources = rng.choice(n_base, size=len(copies), replace=False)
    pairs = []
    for src, edits in zip(sources.tolist(), copies):
        row = idx[src].copy()
        at = rng.choice(words_per_doc, size=edits, replace=False)
        row[at] = rng.integers(0, len(vocabulary), size=edits)
        pairs.append((src, len(texts)))
        texts.append(" ".join(vocabulary[i] for i in row.tolist()) + ".")
    return texts, pairs
