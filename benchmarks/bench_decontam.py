"""Decontamination: catch rates for planted copies of real held-out items, and throughput.

The held-out index is 10,000 real items: MMLU medical questions with their options, PubMedQA
questions with long answers, and PubMedQA abstract sentences. The generated set mixes verbatim,
5%-edited and partial copies with innocent items that start with real MMLU question stems.

    .venv/bin/python benchmarks/bench_decontam.py --quick
    .venv/bin/python benchmarks/bench_decontam.py          # full: 200,000 generated items
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.curate.decontaminate import DecontamConfig, build_index, find_contamination  # noqa: E402
from distill.curate.heldout import HeldoutItem  # noqa: E402

HELDOUT = Path(__file__).resolve().parents[2] / "shared" / "data" / "heldout"
STEMS = [
    "Which of the following is the most appropriate next step in management?",
    "Which of the following is the most likely diagnosis?",
    "Which of the following is the most likely cause of this patient's symptoms?",
    "A 45-year-old woman comes to the physician because of",
]


def heldout_items(size: int = 10_000) -> list[HeldoutItem]:
    items: list[HeldoutItem] = []
    for path in sorted((HELDOUT / "mmlu_medical").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for k, row in enumerate(csv.reader(handle)):
                items.append(HeldoutItem(id=f"{path.stem}:{k}", text=" ".join(row[:5]), source=str(path)))
    pubmed = json.loads((HELDOUT / "pubmedqa_ori_pqal.json").read_text(encoding="utf-8"))
    for pmid, item in pubmed.items():
        items.append(HeldoutItem(id=f"pubmedqa:{pmid}", text=item["QUESTION"] + " " + item["LONG_ANSWER"], source="pubmedqa"))
    for pmid, item in pubmed.items():
        for k, sentence in enumerate(re.split(r"(?<=[.!?])\s+", " ".join(item["CONTEXTS"]))):
            if len(items) < size and len(sentence.split()) >= 6:
                items.append(HeldoutItem(id=f"pubmedqa:{pmid}:s{k}", text=sentence, source="pubmedqa"))
    return items[:size]


def edit(text: str, rate: float, rng: np.random.Generator) -> str:
    words = text.split()
    for pos in rng.choice(len(words), max(1, round(rate * len(words))), replace=False):
        words[pos] = "edited" + str(rng.integers(1000))
    return " ".join(words)


def generated_set(items: list[HeldoutItem], n: int, rng: np.random.Generator):
    vocab = " ".join(i.text for i in items).split()
    n_planted = max(300, n // 100)
    picks = rng.choice(len(items), 3 * n_planted, replace=False).tolist()
    texts, kinds = [], []
    for k, i in enumerate(picks):
        source = items[i].text
        if k < n_planted:
            texts.append(f"Question: {source}\nAnswer: see the explanation below.")
            kinds.append("verbatim")
        elif k < 2 * n_planted:
            texts.append(edit(source, 0.05, rng))
            kinds.append("edited 5%")
        else:
            words = source.split()
            texts.append("Consider: " + " ".join(words[: max(8, len(words) // 2)]))
            kinds.append("partial (half)")
    for k in range(n - len(texts)):
        body = " ".join(vocab[j] for j in rng.integers(0, len(vocab), 60).tolist())
        texts.append(f"{STEMS[k % len(STEMS)]} {body}")
        kinds.append("innocent, shares a stem")
    order = rng.permutation(len(texts))
    return [texts[i] for i in order], np.array(kinds)[order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 20_000 if args.quick else 200_000
    rng = np.random.default_rng(0)
    items = heldout_items()
    config = DecontamConfig()
    t = time.perf_counter()
    index = build_index(items, config)
    print(f"held-out index: {len(items):,} items, {len(index.indexes[8].hashes):,} distinct 8-grams, built in {time.perf_counter() - t:.2f} s")
    texts, kinds = generated_set(items, n, rng)
    times = []
    for _ in range(2 if args.quick else 3):
        t = time.perf_counter()
        hits = find_contamination(texts, index, config)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    flagged = np.zeros(len(texts), bool)
    flagged[[h.index for h in hits]] = True
    at13 = np.zeros(len(texts), bool)
    at13[[h.index for h in hits if h.also_at_report_ngram]] = True
    print(f"\n{len(texts):,} generated items: median {med:.2f} s over {len(times)} runs -> {len(texts) / med:,.0f} items/s (1 process)")
    print("\n| planted | items | flagged (8-gram) | also at 13-gram |\n|---|---:|---:|---:|")
    for kind in ("verbatim", "edited 5%", "partial (half)", "innocent, shares a stem"):
        m = kinds == kind
        print(f"| {kind} | {m.sum():,} | {flagged[m].mean():.2%} | {at13[m].mean():.2%} |")


if __name__ == "__main__":
    main()
