"""Curation throughput in this process: `distill curate` end to end (read, check, exact and near dedup,
decontaminate, write), this tree against another one (the code before a change), side by side.

The input is `bench_ray_curate.py`'s: `bench_dedup.py`'s corpus (120 words of real PubMedQA vocabulary a record,
10% planted near-duplicates) as 16 JSONL shards of chat records, decontaminated against PubMedQA's answers.
Each run is a process of its own, the trees taking turns (the machine is shared: the ratios to the first tree
are the figures to trust), with the load average printed beside each run and CPU seconds (all threads) beside
wall time. `--profile` runs one tree once under cProfile.

    git archive main distill prompts | tar -x -C /tmp/before
    .venv/bin/python benchmarks/bench_curate.py --tree before=/tmp/before --tree after=. --records 200000
    .venv/bin/python benchmarks/bench_curate.py --profile --records 50000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(tree: Path, folder: Path, profile: bool = False) -> dict:
    sys.path.insert(0, str(tree))  # the `distill` of the tree measured
    import cProfile
    import pstats

    from rich.console import Console

    from distill.curate.commands import run_curate
    from distill.curate.heldout import parse_heldout_option
    from distill.curate.pipeline import CurateConfig

    assert Path(sys.modules["distill"].__file__).resolve().is_relative_to(tree.resolve())
    heldout = ROOT / "tests" / "data" / "heldout" / "pubmedqa_ori_pqal.json"
    config = CurateConfig(heldout=[parse_heldout_option(f"{heldout}:LONG_ANSWER")])
    out = Path(tempfile.mkdtemp(prefix="bench-curate-", dir=folder.parent))
    # CPU time, not wall time: on a shared machine the wall clock counts other jobs' turns on the core
    profiler = cProfile.Profile(time.process_time) if profile else None
    load = os.getloadavg()[0]
    cpu, started = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    result = run_curate(folder, out, config, Console(quiet=True), show_progress=False)
    if profiler:
        profiler.disable()
    seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    if profiler:
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(45)
    return {"seconds": seconds, "cpu_s": cpu_s, "kept": result.total.kept, "generated": result.total.generated,
            "load_before": load, "load_after": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                        help="a folder holding a `distill` package to measure (repeatable; the first is the baseline) "
                             "[default: this tree]")
    parser.add_argument("--profile", action="store_true", help="one run of the (first) tree under cProfile (to stderr)")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: TREE FOLDER
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_once(Path(args.one[0]), Path(args.one[1]), args.profile)), flush=True)
        return
    sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
    from bench_ray_curate import write_input
    from interleaved import run_interleaved

    trees = {name: Path(folder).resolve() for name, _, folder in (t.partition("=") for t in args.tree)} or {"this": ROOT}
    with tempfile.TemporaryDirectory(prefix="bench-curate-") as tmp:
        folder = Path(tmp) / "input"
        folder.mkdir()
        t = time.perf_counter()
        write_input(folder, args.records)
        print(f"{args.records:,} records in 16 JSONL shards (written in {time.perf_counter() - t:.0f} s); "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
        if args.profile:
            subprocess.run([sys.executable, __file__, "--profile", "--one", str(next(iter(trees.values()))), str(folder)],
                           check=True)  # a process of its own: this one imported this tree's `distill`
            return

        def show(r: int, name: str, row: dict) -> None:
            print(f"  run {r} {name:8} {row['generated'] / row['seconds']:9,.0f} records/s ({row['seconds']:.1f} s, "
                  f"{row['generated'] / row['cpu_s']:,.0f} records per CPU-second), kept {row['kept']:,}; "
                  f"load average {row['load_before']:.1f} -> {row['load_after']:.1f}", flush=True)

        runs: dict[str, list[dict]] = {name: [] for name in trees}
        for r in range(args.repeats):  # the trees take turns, one process a run
            for name, tree in trees.items():
                runs[name] += run_interleaved(__file__, [str(tree)], 1, [str(folder)],
                                              lambda _r, _t, row, r=r, name=name: show(r + 1, name, row))[str(tree)]
    kept = {row["kept"] for rows in runs.values() for row in rows}
    assert len(kept) == 1, f"the trees kept different numbers of records: {kept}"
    base = next(iter(runs.values()))
    print(f"\n| {args.records:,} records | records/s | seconds | records per CPU-second | wall x | CPU x | load average |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for name, rows in runs.items():
        m = {k: statistics.median(row[k] for row in rows) for k in ("seconds", "cpu_s")}
        loads = [row[k] for row in rows for k in ("load_before", "load_after")]
        # Ratios to the baseline run of the same round, then their median: each round ran under about one load.
        wall = statistics.median(b["seconds"] / a["seconds"] for a, b in zip(rows, base))
        cpu = statistics.median(b["cpu_s"] / a["cpu_s"] for a, b in zip(rows, base))
        print(f"| {name} | {args.records / m['seconds']:,.0f} | {m['seconds']:.1f} | {args.records / m['cpu_s']:,.0f} | "
              f"{wall:.2f} | {cpu:.2f} | {min(loads):.1f}-{max(loads):.1f} |")
    print(f"\nwall x, CPU x: speed-up over `{next(iter(runs))}`, the median of each round's ratio; kept {kept.pop():,} "
          "everywhere")


if __name__ == "__main__":
    main()
