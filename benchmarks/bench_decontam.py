"""Decontamination: catch rates for planted copies of real held-out items, and throughput.

The held-out index holds 10,000 items: every MMLU medical question with its options, PubMedQA's
official test set (question + long answer, and each abstract paragraph), and filler of shuffled real
words up to 10,000. The generated set mixes verbatim, 5%-edited and partial copies of real items with
innocent items: a real MMLU question stem followed by prose from the PubMedQA abstracts that are not
held out.

    .venv/bin/python benchmarks/bench_decontam.py --quick
    .venv/bin/python benchmarks/bench_decontam.py          # full: 200,000 generated items
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.curate.decontaminate import DecontamConfig, build_index, find_contamination  # noqa: E402
from distill.curate.heldout import HeldoutItem  # noqa: E402

HELDOUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "heldout"
STEMS = [
    "Which of the following is the most appropriate next step in management?",
    "Which of the following is the most likely diagnosis?",
    "Which of the following is the most likely cause of this patient's symptoms?",
    "A 45-year-old woman comes to the physician because of",
]


def pubmed_split() -> tuple[dict, dict]:
    """PubMedQA's official test PMIDs (held out) and the other 500 (free prose for innocent items)."""
    pubmed = json.loads((HELDOUT / "pubmedqa_ori_pqal.json").read_text(encoding="utf-8"))
    test = set(json.loads((HELDOUT / "pubmedqa_test_ground_truth.json").read_text(encoding="utf-8")))
    return {k: v for k, v in pubmed.items() if k in test}, {k: v for k, v in pubmed.items() if k not in test}


def heldout_items(size: int = 10_000) -> tuple[list[HeldoutItem], int]:
    """Real items first (returned count), then filler made of shuffled real words up to `size`."""
    items: list[HeldoutItem] = []
    for path in sorted((HELDOUT / "mmlu_medical").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for k, row in enumerate(csv.reader(handle)):
                items.append(HeldoutItem(id=f"{path.stem}:{k}", text=" ".join(row[:5]), source=str(path)))
    test, _ = pubmed_split()
    for pmid, item in test.items():
        items.append(HeldoutItem(id=f"pubmedqa:{pmid}", text=item["QUESTION"] + " " + item["LONG_ANSWER"], source="pubmedqa"))
        for k, paragraph in enumerate(item["CONTEXTS"]):
            items.append(HeldoutItem(id=f"pubmedqa:{pmid}:c{k}", text=paragraph, source="pubmedqa"))
    real = len(items)
    rng = np.random.default_rng(42)
    words = " ".join(i.text for i in items).split()
    while len(items) < size:
        filler = " ".join(words[j] for j in rng.integers(0, len(words), 80).tolist())
        items.append(HeldoutItem(id=f"filler:{len(items)}", text=filler, source="filler"))
    return items[:size], real


def edit(text: str, rate: float, rng: np.random.Generator) -> str:
    words = text.split()
    for pos in rng.choice(len(words), max(1, round(rate * len(words))), replace=False):
        words[pos] = "edited" + str(rng.integers(1000))
    return " ".join(words)


def generated_set(items: list[HeldoutItem], real: int, n: int, rng: np.random.Generator):
    """Copies of real held-out items, and innocent items: a real MMLU stem + a 60-word window of a
    PubMedQA abstract that is not in the held-out set."""
    _, free = pubmed_split()
    prose = " ".join(" ".join(v["CONTEXTS"]) for v in free.values()).split()
    # Items under 4 words ("Observational study.") are not indexed (DecontamConfig.min_item_words);
    # partial copies take half an item, so those come from items of 16+ words (half >= one 8-gram).
    usable = [i for i in range(real) if len(items[i].text.split()) >= 4]
    long_enough = [i for i in usable if len(items[i].text.split()) >= 16]
    n_planted = min(max(300, n // 100), len(usable) // 3)
    picks = rng.choice(usable, 2 * n_planted, replace=False).tolist()
    picks += rng.choice(long_enough, n_planted, replace=False).tolist()
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
            texts.append("Consider: " + " ".join(words[: len(words) // 2]))
            kinds.append("partial (half)")
    starts = rng.integers(0, len(prose) - 60, n - len(texts))
    for k, start in enumerate(starts.tolist()):
        texts.append(f"{STEMS[k % len(STEMS)]} {' '.join(prose[start : start + 60])}")
        kinds.append("innocent, shares a stem")
    order = rng.permutation(len(texts))
    return [texts[i] for i in order], np.array(kinds)[order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing; the median is printed")
    args = parser.parse_args()
    n = 20_000 if args.quick else 200_000
    rng = np.random.default_rng(0)
    items, real = heldout_items()
    config = DecontamConfig()
    t = time.perf_counter()
    index = build_index(items, config)
    print(f"held-out index: {len(items):,} items ({real:,} real MMLU medical + PubMedQA test items, the rest filler), "
          f"{len(index.indexes[8].hashes):,} distinct 8-grams, built in {time.perf_counter() - t:.2f} s")
    texts, kinds = generated_set(items, real, n, rng)

    def cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)  # all threads
        return own.ru_utime + own.ru_stime

    print(f"\nmachine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; median of {args.repeats} runs each\n")
    print("| workers | wall s | items/s | CPU s | items per CPU-second |\n|---:|---:|---:|---:|---:|")
    walls = {}
    for workers in (1, 2):
        times, cpus = [], []
        for _ in range(args.repeats):
            t, c = time.perf_counter(), cpu()
            hits = find_contamination(texts, index, config, workers=workers)
            times.append(time.perf_counter() - t)
            cpus.append(cpu() - c)
        med, cpu_med = statistics.median(times), statistics.median(cpus)
        walls[workers] = med
        print(f"| {workers} | {med:.2f} | {len(texts) / med:,.0f} | {cpu_med:.2f} | {len(texts) / cpu_med:,.0f} |")
    print(f"\n{len(texts):,} generated items against {len(items):,} held-out items; 2 workers vs 1: wall x{walls[1] / walls[2]:.2f}")
    flagged = np.zeros(len(texts), bool)
    flagged[[h.index for h in hits]] = True
    at13 = np.zeros(len(texts), bool)
    at13[[h.index for h in hits if h.also_at_report_ngram]] = True
    print("\n| planted | items | flagged (8-gram) | also at 13-gram |\n|---|---:|---:|---:|")
    for kind in ("verbatim", "edited 5%", "partial (half)", "innocent, shares a stem"):
        m = kinds == kind
        print(f"| {kind} | {m.sum():,} | {flagged[m].mean():.2%} | {at13[m].mean():.2%} |")


if __name__ == "__main__":
    main()
