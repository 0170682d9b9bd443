"""Throughput and CPU cost of API teachers: `distill generate` against the loopback server.

The server (tests/fakeapi) answers every request after a fixed latency. It runs in a process of its
own, so its CPU is not taken from the benchmark's clock or from `distill generate`'s GIL. Ideal
throughput is concurrency / latency; we report what the run achieved between its first and last
answer (so start-up and export are excluded), the rate over the middle 80% of answers (what a long
run keeps up once the first requests are all out), and the CPU time `distill generate` spent per
request (its sender process included), in full and net of a one-item run (Python start-up, imports,
export). Each concurrency runs `--repeat` times; the table shows medians (CPU ms/request is the
steadier figure on a busy machine). `--sender` picks where the SDK sends from (see
distill/teachers/wrappers/sender.py); `auto` is distill's default.

    .venv/bin/python benchmarks/bench_api.py [--latency 0.5] [--concurrency 16 64 256] [--repeat 3]
                                             [--sender auto|process|inline]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The server process: prints its port, then answers "stats" (and "reset") on stdin, one JSON line each.
SERVER = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from fakeapi import FakeAPI, Faults
api = FakeAPI(Faults(latency_s=float(sys.argv[2]))).start()
print(api.port, flush=True)
for line in sys.stdin:
    if line.strip() == "reset":
        api.answered_at.clear()
        api.paid.clear()
        api.requests.clear()
    use = resource.getrusage(resource.RUSAGE_SELF)
    times = sorted(api.answered_at)
    tenth = len(times) // 10
    print(json.dumps({"paid": api.total_paid(), "asked": sum(api.requests.values()), "first": times[0] if times else None,
                      "last": times[-1] if times else None, "cpu": use.ru_utime + use.ru_stime,
                      # the middle 80% of answers: the rate a long run keeps up, without start-up's ramp
                      "middle": (len(times) - 2 * tenth) / (times[-tenth] - times[tenth]) if tenth else None}),
          flush=True)
api.stop()
"""


class ServerProcess:
    def __init__(self, latency: float):
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(ROOT / "tests"), str(latency)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def taxonomy(folder: Path, per_leaf: int) -> Path:
    shutil.copytree(ROOT / "tests" / "fixtures" / "tiny", folder)
    path = folder / "tickets.yaml"
    path.write_text(path.read_text().replace("per_leaf: 2", f"per_leaf: {per_leaf}"))
    return path


def run_generate(url: str, tax: Path, out: Path, concurrency: int, limit: int | None, env: dict,
                 extra: list[str]) -> float:
    """Runs the CLI; returns the CPU seconds (user + system) it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    args = [sys.executable, "-m", "distill.cli", "generate", "--taxonomy", str(tax), "--teacher",
            "openai:gpt-4o-mini", "--out", str(out), "--base-url", url + "/v1", "--concurrency", str(concurrency),
            "--no-preflight", "--no-curate", "--timeout", "30", *extra]
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
    parser.add_argument("--repeat", type=int, default=3, help="runs per concurrency; medians are shown")
    parser.add_argument("--sender", choices=["auto", "process", "inline"], default="auto",
                        help="where the SDK sends from: a child process, the run's own loop, or distill's default")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_api_"))
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "DISTILL_CACHE_DIR": str(work / "cache"),
           "PYTHONPATH": str(ROOT)}
    print(f"latency {args.latency}s; medians of {args.repeat} runs; % ideal = whole run (first to last answer), "
          f"middle = its middle 80% of answers (no start-up ramp); net = CPU/request less a 1-item run (start-up, "
          f"imports, export); server = the fake server's own CPU/request; sender: {args.sender}")
    print(f"{'conc':>5} {'requests':>8} {'req/s':>8} {'ideal':>8} {'% ideal':>8} {'middle':>8} {'CPU ms/req':>10} "
          f"{'net ms/req':>10} {'server ms':>9}  runs (% ideal whole/middle)")
    extra = {"auto": [], "process": ["--sender-process"], "inline": ["--no-sender-process"]}[args.sender]
    server = ServerProcess(args.latency)
    try:
        for n, concurrency in enumerate(args.concurrency):
            ideal = concurrency / args.latency
            # Two leaves; 600 requests at least, so start-up (subtracted for "net") is a small share.
            per_leaf = max(300, int(ideal * args.seconds / 2))
            tax = taxonomy(work / f"tax{n}", per_leaf)
            rows = []
            for r in range(args.repeat):
                base_cpu = run_generate(server.url, tax, work / f"base{n}-{r}", concurrency, 1, env, extra)
                start = server.ask("reset")
                cpu = run_generate(server.url, tax, work / f"run{n}-{r}", concurrency, None, env, extra)
                stats = server.ask("stats")
                requests = stats["paid"]
                # The first answer arrives one latency after the first request went out.
                achieved = requests / (stats["last"] - stats["first"] + args.latency)
                rows.append((achieved, stats["middle"], 1000 * cpu / requests, 1000 * (cpu - base_cpu) / requests,
                             1000 * (stats["cpu"] - start["cpu"]) / requests))
                if stats["asked"] != requests:  # a retry (timeout, dropped connection) skews the run: say so
                    print(f"  run {r + 1} at {concurrency}: {stats['asked'] - requests} requests were retried")
                shutil.rmtree(work / "cache", ignore_errors=True)  # every run pays for every request
            achieved, middle, cpu_ms, net_ms, server_ms = (statistics.median(col) for col in zip(*rows))
            runs = " ".join(f"{100 * row[0] / ideal:.0f}/{100 * row[1] / ideal:.0f}" for row in rows)
            print(f"{concurrency:>5} {requests:>8} {achieved:>8.1f} {ideal:>8.1f} {100 * achieved / ideal:>7.1f}% "
                  f"{100 * middle / ideal:>7.1f}% {cpu_ms:>10.2f} {net_ms:>10.2f} {server_ms:>9.2f}  {runs}", flush=True)
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
