"""Diversity per leaf (`distill.curate.diversity.leaf_diversity`): time on a large planted set, how the time
grows with one leaf's size, and the sampled self-similarity against the exact mean over all pairs.

Records are 20 words drawn from the real PubMedQA abstract vocabulary; a fifth of the leaves are near-copies of
one record each (2 of 20 words changed), the rest varied. Run from the repository root:

    .venv/bin/python benchmarks/bench_diversity.py                    # 200,000 records over 50 leaves
    .venv/bin/python benchmarks/bench_diversity.py --records 20000    # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distill.curate.diversity import DiversitySettings, leaf_diversity  # noqa: E402
from distill.curate.minhash import exact_jaccard, shingle_sets  # noqa: E402
from distill.records import Example, ExampleMeta, Message  # noqa: E402

PUBMEDQA = ROOT / "tests" / "data" / "heldout" / "pubmedqa_ori_pqal.json"
WORDS = 20


def vocabulary() -> list[str]:
    data = json.loads(PUBMEDQA.read_text(encoding="utf-8"))
    return " ".join(" ".join(v["CONTEXTS"]) for v in data.values()).split()


def leaf_texts(n: int, copies: bool, rng: np.random.Generator, words: list[str]) -> list[str]:
    """n texts: varied (every word drawn), or copies of one text with 2 words changed each."""
    if copies:
        idx = np.broadcast_to(rng.integers(0, len(words), WORDS), (n, WORDS)).copy()
        rows = np.arange(n)[:, None]
        idx[rows, rng.integers(0, WORDS, (n, 2))] = rng.integers(0, len(words), (n, 2))
    else:
        idx = rng.integers(0, len(words), (n, WORDS))
    return [" ".join(words[i] for i in row) for row in idx.tolist()]


def examples(texts_by_leaf: dict[str, list[str]]) -> list[Example]:
    return [Example(id=f"{leaf}-{k}", messages=[Message(role="user", content="Q?"), Message(role="assistant",
                                                                                            content=text)],
                    meta=ExampleMeta(taxonomy_path=leaf))
            for leaf, texts in texts_by_leaf.items() for k, text in enumerate(texts)]


def whole_set(records: int, leaves: int, words: list[str]) -> None:
    rng = np.random.default_rng(0)
    per_leaf = records // leaves
    data = {f"topic-{k // 10}/leaf-{k}": leaf_texts(per_leaf, k % 5 == 0, rng, words) for k in range(leaves)}
    items = examples(data)
    start = time.perf_counter()
    figures = leaf_diversity(items, leaves=[*data, "topic-x/empty"])
    took = time.perf_counter() - start
    copies = [f.self_similarity or 0 for leaf, f in figures.items() if int(leaf.rsplit("-", 1)[1] if
                                                                          "leaf-" in leaf else 1) % 5 == 0]
    varied = [f.self_similarity or 0 for leaf, f in figures.items() if "leaf-" in leaf and
              int(leaf.rsplit("-", 1)[1]) % 5]
    print(f"\n## {len(items):,} records over {leaves} leaves ({per_leaf:,} a leaf), load {os.getloadavg()[0]:.1f}")
    print(f"leaf_diversity: {took:.2f} s, {len(items) / took:,.0f} records/s")
    print(f"self-similarity: near-copy leaves {min(copies):.3f}..{max(copies):.3f}, varied leaves "
          f"{min(varied):.3f}..{max(varied):.3f}; saturated {sum(f.saturated for f in figures.values())}, "
          f"empty {sum(f.empty for f in figures.values())}")


def command(records: int, leaves: int, words: list[str]) -> None:
    """`distill taxonomy diversity` end to end on the same set written as a run's dataset.jsonl: reading and
    validating the rows, the figures, diversity.json."""
    rng = np.random.default_rng(0)
    per_leaf = records // leaves
    data = {f"topic-{k // 10}/leaf-{k}": leaf_texts(per_leaf, k % 5 == 0, rng, words) for k in range(leaves)}
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        run.mkdir()
        with (run / "dataset.jsonl").open("w", encoding="utf-8") as out:
            for example in examples(data):
                out.write(example.model_dump_json() + "\n")
        script = Path(sys.executable).with_name("distill")
        start = time.perf_counter()
        done = subprocess.run([str(script), "taxonomy", "diversity", str(run)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        took = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    print(f"\n## `distill taxonomy diversity` on the same set as dataset.jsonl: {took:.1f} s, load "
          f"{os.getloadavg()[0]:.1f}")


def growth(words: list[str]) -> None:
    print("\n## One leaf, growing\n| examples | seconds | µs an example |\n|---:|---:|---:|")
    rng = np.random.default_rng(1)
    for n in (10_000, 40_000, 160_000):
        items = examples({"one": leaf_texts(n, False, rng, words)})
        start = time.perf_counter()
        leaf_diversity(items)
        took = time.perf_counter() - start
        print(f"| {n:,} | {took:.2f} | {took / n * 1e6:.1f} |")


def accuracy(words: list[str]) -> None:
    """The sampled MinHash estimate against the exact mean Jaccard over every pair of a 300-example leaf."""
    print("\n## Sampled estimate vs exact mean over all pairs (300 examples, 44,850 pairs)")
    print("| leaf | exact | estimate (2,000 pairs) |\n|---|---:|---:|")
    rng = np.random.default_rng(2)
    settings = DiversitySettings()
    for name, copies in (("near-copies", True), ("varied", False)):
        texts = leaf_texts(300, copies, rng, words)
        sets = shingle_sets(texts, settings.shingle_size)
        exact = np.mean([exact_jaccard(sets[i], sets[j]) for i in range(300) for j in range(i + 1, 300)])
        estimate = leaf_diversity(examples({name: texts}), settings=settings)[name].self_similarity
        print(f"| {name} | {exact:.4f} | {estimate:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--leaves", type=int, default=50)
    args = parser.parse_args()
    words = vocabulary()
    whole_set(args.records, args.leaves, words)
    command(args.records, args.leaves, words)
    growth(words)
    accuracy(words)


if __name__ == "__main__":
    main()
