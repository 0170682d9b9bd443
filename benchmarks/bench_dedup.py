"""Near-duplicate and exact dedup: accuracy against exact Jaccard, and speed / memory at 1M records.

Records are ~120 words drawn from the real PubMedQA abstract vocabulary (word frequencies as in the
abstracts), with near-duplicates planted at known edit counts. Run from the repository root:

    .venv/bin/python benchmarks/bench_dedup.py --quick     # ~1 minute
    .venv/bin/python benchmarks/bench_dedup.py             # full: 1,000,000 records
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
    MinHashConfig, candidate_pairs, detection_probability, estimated_jaccard, exact_jaccard,
    find_near_duplicates, resolve_bands, shingle_sets, sign_all,
)

PUBMEDQA = Path(__file__).resolve().parents[2] / "shared" / "data" / "heldout" / "pubmedqa_ori_pqal.json"


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
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers, once the pool has reaped them
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (peak RSS) to the current RSS


class WorkerMemory:
    """Samples the workers' unique memory (USS): pages they share copy-on-write with the parent
    after fork are the parent's, so RSS would count the texts twice."""

    def __init__(self) -> None:
        import threading

        self.peak_total = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0.0
            for child in me.children():
                try:
                    total += child.memory_full_info().uss / 2**20
                except psutil.Error:
                    pass
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def speed(args, words) -> None:
    n = 100_000 if args.quick else 1_000_000
    repeats = 2 if args.quick else 3
    rng = np.random.default_rng(1)
    t = time.perf_counter()
    texts, _ = corpus(int(n * 0.9), n - int(n * 0.9), 14, rng, words)
    print(f"\n## Speed: {n:,} records of 120 words (generated in {time.perf_counter() - t:.1f} s, "
          f"{sum(not s.isascii() for s in texts[:10000]) / 100:.0f}% non-ASCII)")
    import gc

    gc.collect()
    base_rss = _status_mb("VmRSS")
    config = MinHashConfig()
    for workers in (2, 1):
        times, cpus = [], []
        for _ in range(repeats if workers == 2 else 1):
            reset_peak()
            t, c = time.perf_counter(), cpu_seconds()
            with WorkerMemory() as workers_mem:
                result = find_near_duplicates(texts, config, workers=workers)
            times.append(time.perf_counter() - t)
            cpus.append(cpu_seconds() - c)
            peak = _status_mb("VmHWM")
        med, cpu = statistics.median(times), statistics.median(cpus)
        # CPU seconds (parent + workers) measure the work per core even when others share the machine.
        print(f"near dedup, {workers} process(es): median {med:.1f} s wall over {len(times)} run(s) -> "
              f"{n / med:,.0f} records/s; {cpu:.1f} CPU-s -> {n / cpu:,.0f} records per CPU-second; "
              f"{len(result.duplicates):,} removed, {result.candidates:,} candidates")
        print(f"  memory: the texts themselves {base_rss:,.0f} MB; dedup adds {peak - base_rss:,.0f} MB in the main "
              f"process + {workers_mem.peak_total:,.0f} MB in workers (peak unique memory)")
    times, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), cpu_seconds()
        keys = exact_keys(texts)
        dups = find_exact_duplicates(keys)
        times.append(time.perf_counter() - t)
        cpus.append(cpu_seconds() - c)
    med, cpu = statistics.median(times), statistics.median(cpus)
    print(f"exact dedup (normalise + xxh3 + unique), 1 process: median {med:.2f} s -> {n / med:,.0f} records/s; "
          f"{n / cpu:,.0f} records per CPU-second; {len(dups):,} removed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--only", choices=["accuracy", "speed"])
    args = parser.parse_args()
    words = vocabulary()
    if args.only != "speed":
        accuracy(args, words)
    if args.only != "accuracy":
        speed(args, words)


if __name__ == "__main__":
    main()
