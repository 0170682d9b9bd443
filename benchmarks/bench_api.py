"""Throughput and CPU cost of API teachers: `distill generate` against the loopback server.

The server (tests/fakeapi) answers every request after a fixed latency. Ideal throughput is
concurrency / latency; we report what the run achieved between its first and last answer (so
start-up and export are excluded) and the CPU time `distill generate` spent per request, in full
and net of a one-item run (Python start-up, imports, export).

    .venv/bin/python benchmarks/bench_api.py [--latency 0.5] [--concurrency 16 64 256]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakeapi import FakeAPI, Faults  # noqa: E402


def taxonomy(folder: Path, per_leaf: int) -> Path:
    shutil.copytree(ROOT / "tests" / "fixtures" / "tiny", folder)
    path = folder / "tickets.yaml"
    path.write_text(path.read_text().replace("per_leaf: 2", f"per_leaf: {per_leaf}"))
    return path


def run_generate(api: FakeAPI, tax: Path, out: Path, concurrency: int, limit: int | None, env: dict) -> float:
    """Runs the CLI; returns the CPU seconds (user + system) it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    args = [sys.executable, "-m", "distill.cli", "generate", "--taxonomy", str(tax), "--teacher",
            "openai:gpt-4o-mini", "--out", str(out), "--base-url", api.url + "/v1", "--concurrency", str(concurrency),
            "--no-preflight", "--no-curate", "--timeout", "30"]
    if limit:
        args += ["--limit", str(limit)]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--seconds", type=float, default=8.0, help="ideal duration of each run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_api_"))
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "DISTILL_CACHE_DIR": str(work / "cache"),
           "PYTHONPATH": str(ROOT)}
    print(f"latency {args.latency}s; CPU/request net of a 1-item run (start-up, imports, export)")
    print(f"{'conc':>5} {'requests':>8} {'req/s':>8} {'ideal':>8} {'% ideal':>8} {'CPU ms/req':>10} {'net ms/req':>10}")
    try:
        with FakeAPI(Faults(latency_s=args.latency)) as api:
            for n, concurrency in enumerate(args.concurrency):
                ideal = concurrency / args.latency
                per_leaf = max(50, int(ideal * args.seconds / 2))  # two leaves
                tax = taxonomy(work / f"tax{n}", per_leaf)
                base_cpu = run_generate(api, tax, work / f"base{n}", concurrency, 1, env)
                api.answered_at.clear()
                paid_before = api.total_paid()
                started = time.monotonic()
                cpu = run_generate(api, tax, work / f"run{n}", concurrency, None, env)
                requests = api.total_paid() - paid_before
                # First answer arrives one latency after the first request went out.
                span = api.answered_at[-1] - api.answered_at[0] + args.latency
                achieved = requests / span
                print(f"{concurrency:>5} {requests:>8} {achieved:>8.1f} {ideal:>8.1f} {100 * achieved / ideal:>7.1f}% "
                      f"{1000 * cpu / requests:>10.2f} {1000 * (cpu - base_cpu) / requests:>10.2f}"
                      f"   (wall {time.monotonic() - started:.1f}s)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
