"""Near-duplicate and exact dedup: accuracy against exact Jaccard, and speed / memory at 1M records.

Records are ~120 words drawn from the real PubMedQA abstract vocabulary (word frequencies as in the
abstracts), with near-duplicates planted at known edit counts. Run from the repository root:

    .venv/bin/python benchmarks/bench_dedup.py --quick     # 100,000 records, ~1 minute
    .venv/bin/python benchmarks/bench_dedup.py             # full: 1,000,000 records, ~10 minutes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.curate.exact import exact_keys, find_exact_duplicates  # noqa: E402
from distill.curate.minhash import (  # noqa: E402
    MinHashConfig,
    candidate_pairs,
    detection_probability,
    estimated_jaccard,
    exact_jaccard,
    find_near_duplicates,
    resolve_bands,
    shingle_sets,
    sign_all,
)

PUBMEDQA = Path(__file__).resolve().parents[1] / "tests" / "data" / "heldout" / "pubmedqa_ori_pqal.json"


def vocabulary() -> list[str]:
    data = json.loads(PUBMEDQA.read_text(encoding="utf-8"))
    return " ".join(" ".join(v["CONTEXTS"]) for v in data.values()).split()


def corpus(n_base: int, n_copies: int, max_edits: int, rng: np.random.Generator, words: list[str]):
    """Base records plus copies with 0..max_edits substituted words; returns texts and (src, copy) pairs."""
    idx = rng.integers(0, len(words), size=(n_base + n_copies, 120), dtype=np.int32)
    src = rng.integers(0, n_base, n_copies)
    edits = rng.integers(0, max_edits + 1, n_copies)
    for k in range(n_copies):
        row = idx[src[k]].copy()
        pos = rng.choice(120, edits[k], replace=False)
        row[pos] = rng.integers(0, len(words), edits[k])
        idx[n_base + k] = row
    texts = []
    for start in range(0, len(idx), 20_000):  # in slices: a 1M x 120 list of ints would take GBs
        texts.extend(" ".join([words[i] for i in row]) for row in idx[start : start + 20_000].tolist())
    pairs = np.stack([src, np.arange(n_base, n_base + n_copies)], axis=1)
    return texts, pairs


def accuracy(args, words) -> None:
    rng = np.random.default_rng(0)
    n_base, n_copies = (5_000, 3_000) if args.quick else (50_000, 20_000)
    texts, pairs = corpus(n_base, n_copies, 14, rng, words)
    config = MinHashConfig()
    bands, rows = resolve_bands(config)
    signed = sign_all(texts, config, workers=2)
    sets = shingle_sets(texts, config.shingle_size)
    truth = np.array([exact_jaccard(sets[a], sets[b]) for a, b in pairs.tolist()])
    candidates = {tuple(p) for p in candidate_pairs(signed.keys).tolist()}
    detected = np.array([tuple(p) in candidates for p in pairs.tolist()])
    print(f"\n## Accuracy: {len(texts):,} records, {len(pairs):,} planted pairs, {bands} bands x {rows} rows")
    print("| Jaccard bin | pairs | detected | S-curve | deviation |\n|---|---:|---:|---:|---:|")
    worst = 0.0
    for lo in np.arange(0.3, 1.0, 0.1):
        hi = lo + 0.1 + (1e-9 if lo > 0.85 else 0)
        m = (truth >= lo) & (truth < hi)
        if m.sum() < 20:
            continue
        exp = detection_probability(truth[m], bands, rows).mean()
        dev = detected[m].mean() - exp
        worst = max(worst, abs(dev))
        print(f"| {lo:.1f}-{min(lo + 0.1, 1.0):.1f} | {m.sum()} | {detected[m].mean():.3f} | {exp:.3f} | {dev:+.3f} |")
    print(f"max |deviation| from 1-(1-s^r)^b: {worst:.3f}")
    for confirm in ("exact", "estimate"):
        result = find_near_duplicates(texts, MinHashConfig(confirm=confirm), signed=signed)
        found = {tuple(p) for p in result.pairs.tolist()}
        high = truth >= 0.8
        recall = np.mean([tuple(p) in found for p in pairs[high].tolist()])
        true_sim = np.array([exact_jaccard(sets[i], sets[j]) for i, j in result.pairs.tolist()])
        precision = float(np.mean(true_sim >= config.threshold)) if len(true_sim) else 1.0
        print(f"confirm={confirm}: recall (Jaccard>=0.8) {recall:.4f}, precision (true Jaccard>={config.threshold}) "
              f"{precision:.4f}, {result.candidates:,} candidates -> {result.confirmed:,} confirmed")
    est = estimated_jaccard(signed.signatures, pairs)
    print(f"estimate error vs exact Jaccard: mean {np.mean(est - truth):+.4f}, std {np.std(est - truth):.4f}")


def cpu_seconds() -> float:
    """CPU time of this process, all its threads (the workers are threads), user + system."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (peak RSS) to the current RSS


def timed(fn, repeats: int) -> tuple[float, float, float, object]:
    """Median wall seconds, median CPU seconds and peak RSS (MB) over `repeats` runs of fn()."""
    import gc

    walls, cpus, peaks = [], [], []
    for _ in range(repeats):
        gc.collect()
        reset_peak()
        t, c = time.perf_counter(), cpu_seconds()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(cpu_seconds() - c)
        peaks.append(_status_mb("VmHWM"))
    return statistics.median(walls), statistics.median(cpus), max(peaks), out


def speed(args, words) -> None:
    n = 100_000 if args.quick else 1_000_000
    repeats = args.repeats
    rng = np.random.default_rng(1)
    t = time.perf_counter()
    texts, _ = corpus(int(n * 0.9), n - int(n * 0.9), 14, rng, words)
    print(f"\n## Speed: {n:,} records of 120 words (generated in {time.perf_counter() - t:.1f} s, "
          f"{sum(not s.isascii() for s in texts[:10000]) / 100:.0f}% non-ASCII), median of {repeats} runs each")
    import gc
    import os

    gc.collect()
    base_rss = _status_mb("VmRSS")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start; the texts themselves "
          f"take {base_rss:,.0f} MB. Records per CPU-second (all threads, user + system) measure the work per core "
          "even when other processes share the machine; wall time does not.")
    config = MinHashConfig()
    print("\n| step | workers | wall s | records/s | CPU s | records per CPU-second | added peak memory |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    walls = {}
    for workers in (1, 2):
        wall, cpu, peak, result = timed(lambda: find_near_duplicates(texts, config, workers=workers), repeats)
        walls[workers] = wall
        print(f"| near dedup (normalise, shingle, sign, band, confirm, group) | {workers} | {wall:.2f} | {n / wall:,.0f} | "
              f"{cpu:.2f} | {n / cpu:,.0f} | {peak - base_rss:,.0f} MB |")
    near_removed, near_candidates = len(result.duplicates), result.candidates
    for workers in (1, 2):
        wall, cpu, peak, dups = timed(lambda: find_exact_duplicates(exact_keys(texts, workers=workers)), repeats)
        print(f"| exact dedup (normalise, xxh3, first occurrence) | {workers} | {wall:.2f} | {n / wall:,.0f} | "
              f"{cpu:.2f} | {n / cpu:,.0f} | {peak - base_rss:,.0f} MB |")
    print(f"\nnear dedup: {near_removed:,} removed, {near_candidates:,} candidate pairs; exact dedup: {len(dups):,} removed. "
          f"2 workers vs 1: wall x{walls[1] / walls[2]:.2f} for near dedup (load average now {os.getloadavg()[0]:.1f}).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--only", choices=["accuracy", "speed"])
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing; the median is printed")
    args = parser.parse_args()
    words = vocabulary()
    if args.only != "speed":
        accuracy(args, words)
    if args.only != "accuracy":
        speed(args, words)


if __name__ == "__main__":
    main()
