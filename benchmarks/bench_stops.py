"""How fast distill stops when it should: the seconds the tests no longer assert (a loaded machine only
makes them slower; the tests check what happened, in requests, steps and events, and this prints the time).

- pre-flight: `distill generate` against a teacher that only writes prose (40 items planned): seconds until
  it exits 2, having paid for the 5-item sample alone;
- locked run.db: opening a file another process holds locked, with a 0.5 s wait: seconds until the error;
- Ctrl-C (`--ctrl-c`, loads the embedded model): `distill generate` with the local teacher, SIGINT once
  the first answer is in run.db: seconds until the resume hint, and until the process has exited.

    .venv/bin/python benchmarks/bench_stops.py [--repeat 3] [--ctrl-c]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from distill.sqlite_wal import open_wal  # noqa: E402
from fakeapi import FakeAPI, Faults  # noqa: E402

TINY = ROOT / "tests" / "fixtures" / "tiny"


def env_for(work: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "DISTILL_CACHE_DIR": str(work / "cache"),
            "OPENAI_API_KEY": "sk-bench-stops", "OMP_NUM_THREADS": "1"}


def preflight_stop(work: Path) -> float:
    taxonomy = work / "tax" / "tickets.yaml"
    shutil.copytree(TINY, taxonomy.parent)
    taxonomy.write_text(taxonomy.read_text().replace("per_leaf: 2", "per_leaf: 20"))
    with FakeAPI(Faults(content={"prose": 1.0})) as api:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "distill.cli", "generate", "--taxonomy", str(taxonomy),
                               "--teacher", "openai:gpt-4o-mini", "--out", str(work / "run"), "--base-url",
                               api.url + "/v1"], cwd=ROOT, env=env_for(work), capture_output=True, text=True)
        seconds = time.monotonic() - started
    if done.returncode != 2 or "pre-flight failed" not in done.stderr or sum(api.requests.values()) != 5:
        raise SystemExit(f"pre-flight did not stop as expected: exit {done.returncode}: {done.stderr[-500:]}")
    return seconds


HOLD = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("CREATE TABLE IF NOT EXISTS t (x)")
db.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.readline()
"""


def locked_open(work: Path) -> float:
    path = work / "run.db"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        try:
            open_wal(path, wait_s=0.5)
        except sqlite3.OperationalError:
            return time.monotonic() - started
        raise SystemExit("opening a locked run.db did not fail")
    finally:
        holder.stdin.close()
        holder.wait()


def answered(db_path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM teacher_calls WHERE text IS NOT NULL").fetchone()[0]
    except sqlite3.Error:
        return 0


def ctrl_c_stop(work: Path) -> tuple[float, float]:
    out = work / "run"
    proc = subprocess.Popen([sys.executable, "-m", "distill.cli", "generate", "--taxonomy", str(TINY / "qa.yaml"),
                             "--out", str(out), "--no-curate"], cwd=ROOT, env=env_for(work),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.monotonic(), line) for line in proc.stderr))
    reader.start()
    while proc.poll() is None and answered(out / "run.db") < 1:
        time.sleep(0.1)
    if proc.poll() is not None:
        raise SystemExit("the run ended before it could be interrupted")
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait()
    ended = time.monotonic()
    reader.join()
    hint = next((at for at, line in lines if "resume" in line), None)
    if proc.returncode != 130 or hint is None:
        raise SystemExit(f"Ctrl-C did not stop as expected: exit {proc.returncode}")
    return hint - sent, ended - sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ctrl-c", action="store_true", help="also Ctrl-C with the embedded model (slow)")
    args = parser.parse_args()
    figures: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            figures.setdefault("pre-flight: exit after a failed sample (s)", []).append(preflight_stop(Path(tmp)))
        with tempfile.TemporaryDirectory() as tmp:
            figures.setdefault("locked run.db: error after a 0.5 s wait (s)", []).append(locked_open(Path(tmp)))
        if args.ctrl_c:
            with tempfile.TemporaryDirectory() as tmp:
                hint, ended = ctrl_c_stop(Path(tmp))
            figures.setdefault("Ctrl-C, local teacher: resume hint (s)", []).append(hint)
            figures.setdefault("Ctrl-C, local teacher: process exited (s)", []).append(ended)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; medians of {args.repeat}")
    for name, values in figures.items():
        print(f"  {name:<48} {statistics.median(values):7.2f}   (min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    main()
