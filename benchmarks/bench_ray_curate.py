"""Curation on Ray vs in this process: records/s and peak memory of `distill curate` on the same input.

The input is `bench_dedup.py`'s corpus (records of 120 words of real PubMedQA vocabulary, 10% planted
near-duplicates) written as 16 JSONL shards, each record a chat example with a taxonomy node; both
executors run every step (checks, exact and near dedup, decontamination against PubMedQA's answers)
and must keep the same number of records. Each run is a process of its own, local and Ray interleaved
(the machine is shared and noisy). Ray's figures are given without the cluster's start (the cost of
`ray.init`, shown apart) and memory is the peak RSS summed over the run's whole process tree (driver,
raylet, workers, object store pages; statm once a second, benchmarks/memory.py), an upper bound: a page two
processes share counts twice.

    .venv/bin/python benchmarks/bench_ray_curate.py                     # 1,000,000 records
    .venv/bin/python benchmarks/bench_ray_curate.py --records 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_dedup import PUBMEDQA, corpus, vocabulary  # noqa: E402
from interleaved import run_interleaved  # noqa: E402
from memory import PeakMemory  # noqa: E402

LEAVES = ["cardiology/arrhythmias", "cardiology/heart-failure", "oncology/breast", "oncology/lung",
          "neurology/stroke", "endocrinology/diabetes", "infectious/sepsis", "renal/ckd"]
SHARDS = 16


def write_input(folder: Path, n: int) -> None:
    texts, _ = corpus(int(n * 0.9), n - int(n * 0.9), 14, np.random.default_rng(1), vocabulary())
    per_shard = -(-n // SHARDS)
    for shard in range(SHARDS):
        with (folder / f"part-{shard:02d}.jsonl").open("w", encoding="utf-8") as handle:
            for i in range(shard * per_shard, min(n, (shard + 1) * per_shard)):
                row = {"id": f"r{i:07d}", "messages": [
                    {"role": "user", "content": f"What does study {i % 997} show?"},
                    {"role": "assistant", "content": texts[i] + "."}], "meta": {"taxonomy_path": LEAVES[i % 8]}}
                handle.write(json.dumps(row) + "\n")


def run_once(executor: str, folder: Path) -> dict:
    from rich.console import Console

    from distill.curate.commands import run_curate
    from distill.curate.heldout import parse_heldout_option
    from distill.curate.pipeline import CurateConfig

    config = CurateConfig(heldout=[parse_heldout_option(f"{PUBMEDQA}:LONG_ANSWER")])
    with PeakMemory() as memory:
        started = time.perf_counter()
        if executor == "ray":
            from distill.executors.ray_cluster import ensure_ray

            ensure_ray()
        ready = time.perf_counter()
        time.sleep(1.0)  # one sample of the started cluster, whose start-up CPU is not the curation's
        cpu_at_start = memory.cpu_s
        out = Path(tempfile.mkdtemp(prefix=f"bench-{executor}-", dir=folder.parent))
        result = run_curate(folder, out, config, Console(quiet=True), show_progress=False, executor=executor)
        ended = time.perf_counter()
    return {"executor": executor, "start_s": ready - started, "seconds": ended - ready - 1.0,
            "cpu_s": memory.cpu_s - cpu_at_start,
            "kept": result.total.kept, "generated": result.total.generated, "peak_mb": memory.peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: EXECUTOR FOLDER
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_once(args.one[0], Path(args.one[1]))), flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="bench-ray-curate-") as tmp:
        folder = Path(tmp) / "input"
        folder.mkdir()
        t = time.perf_counter()
        write_input(folder, args.records)
        print(f"{args.records:,} records in {SHARDS} JSONL shards (written in {time.perf_counter() - t:.0f} s); "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
        def show(r: int, executor: str, row: dict) -> None:
            print(f"  run {r} {executor:5} {row['generated'] / row['seconds']:9,.0f} records/s "
                  f"({row['seconds']:.0f} s, cluster start {row['start_s']:.1f} s), "
                  f"{row['generated'] / row['cpu_s']:,.0f} records per CPU-second, peak {row['peak_mb']:,.0f} MB, "
                  f"kept {row['kept']:,}; load average {os.getloadavg()[0]:.1f}", flush=True)

        runs = run_interleaved(__file__, ["local", "ray"], args.repeats, [str(folder)], show)
    kept = {row["kept"] for rows in runs.values() for row in rows}
    assert len(kept) == 1, f"the executors kept different numbers of records: {kept}"
    print("\n| executor | records/s | seconds | records per CPU-second | cluster start s | peak memory (RSS, MB) |\n"
          "|---|---:|---:|---:|---:|---:|")
    for executor, rows in runs.items():
        m = {k: statistics.median(row[k] for row in rows) for k in ("seconds", "cpu_s", "start_s", "peak_mb")}
        print(f"| {executor} | {args.records / m['seconds']:,.0f} | {m['seconds']:.0f} | {args.records / m['cpu_s']:,.0f} | "
              f"{m['start_s']:.1f} | {m['peak_mb']:,.0f} |")
    pairs = list(zip(runs["local"], runs["ray"]))
    print(f"\nRay / local: wall time x{statistics.median(b['seconds'] / a['seconds'] for a, b in pairs):.2f}, "
          f"CPU seconds x{statistics.median(b['cpu_s'] / a['cpu_s'] for a, b in pairs):.2f}, "
          f"peak memory x{statistics.median(b['peak_mb'] / a['peak_mb'] for a, b in pairs):.2f} "
          f"(medians of the pairs' ratios); both kept {kept.pop():,} records")


if __name__ == "__main__":
    main()
