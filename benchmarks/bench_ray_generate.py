"""Generation on Ray vs in this process: requests/s of `distill generate` against the loopback server.

The server (tests/fakeapi, in a process of its own, as in bench_api.py) answers every request after a fixed
latency (0.5 s). Both executors keep the same number of requests in flight (256: `--concurrency 256` in one
process, or two Ray workers with `--concurrency 128` each) over the same classification taxonomy (one
request an item), without the pre-flight and curation. Reported: requests/s between the first and last
answer (the cluster's start excluded; it is shown apart as the command's whole wall time), the middle 80% of
answers, and their ratio Ray / local. The runs alternate (local, Ray, local, Ray ...) and medians are shown.

    .venv/bin/python benchmarks/bench_ray_generate.py [--in-flight 256] [--seconds 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_api import ServerProcess, run_generate, taxonomy  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0, help="ideal duration of each run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_ray_generate_"))
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "DISTILL_CACHE_DIR": str(work / "cache"),
           "PYTHONPATH": str(ROOT)}
    ideal = args.in_flight / args.latency
    tax = taxonomy(work / "tax", max(300, int(ideal * args.seconds / 2)))  # two leaves
    modes = {
        "local": (args.in_flight, []),
        "ray": (args.in_flight // args.workers, ["--executor", "ray", "--ray-workers", str(args.workers)]),
    }
    print(f"latency {args.latency}s, {args.in_flight} in flight (ideal {ideal:.0f} req/s); "
          f"load average {os.getloadavg()[0]:.1f}")
    server = ServerProcess(args.latency)
    rows: dict[str, list[tuple[float, float, float]]] = {mode: [] for mode in modes}
    try:
        for r in range(args.repeat):
            for mode, (concurrency, extra) in modes.items():
                server.ask("reset")
                began = time.monotonic()
                run_generate(server.url, tax, work / f"{mode}-{r}", concurrency, None, env, extra)
                wall = time.monotonic() - began
                stats = server.ask("stats")
                if stats["asked"] != stats["paid"]:
                    print(f"  {mode} run {r + 1}: {stats['asked'] - stats['paid']} requests were retried")
                achieved = stats["paid"] / (stats["last"] - stats["first"] + args.latency)
                rows[mode].append((achieved, stats["middle"], wall))
                print(f"  run {r + 1} {mode:>5}: {stats['paid']} requests, {achieved:.1f} req/s "
                      f"({100 * achieved / ideal:.1f}% of ideal), middle {stats['middle']:.1f}, command {wall:.1f} s",
                      flush=True)
                shutil.rmtree(work / "cache", ignore_errors=True)  # every run pays for every request
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    medians = {mode: [statistics.median(col) for col in zip(*runs)] for mode, runs in rows.items()}
    print("\n| executor | req/s (first to last answer) | % of ideal | middle 80% req/s | command wall s |\n"
          "|---|---:|---:|---:|---:|")
    for mode, (achieved, middle, wall) in medians.items():
        print(f"| {mode} | {achieved:.1f} | {100 * achieved / ideal:.1f}% | {middle:.1f} | {wall:.1f} |")
    ratio = medians["ray"][0] / medians["local"][0]
    print(f"\nRay / local: {ratio:.3f} (req/s, medians of {args.repeat}); middle 80%: "
          f"{medians['ray'][1] / medians['local'][1]:.3f}")


if __name__ == "__main__":
    main()
