"""What the run.db integrity check costs at open: `PRAGMA quick_check` on a run.db of a given size.

    python benchmarks/bench_integrity.py --mb 100 200 --rounds 3

Builds a store with the real schema (RunStore) and teacher calls of ~2 KB each, like a long run's, then
times a fresh connection's quick_check (the page cache is the OS's, warm after the build: the figure is
the CPU cost, which is what a second command on the same machine pays).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from distill.store import RunStore


def build(path: Path, megabytes: int) -> None:
    store = RunStore(path)
    body = "x" * 2000
    rows = megabytes * 1024 * 1024 // 2200
    with store.transaction():
        store.db.executemany(
            "INSERT INTO teacher_calls (plan_item_id, step, fingerprint, teacher, request, text, created_at) "
            "VALUES (?, 'answer', ?, 'local', '{}', ?, 0)",
            ((f"item-{i}", f"{i:064x}", body) for i in range(rows)))
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, nargs="+", default=[100])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for megabytes in args.mb:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "run.db"
            build(path, megabytes)
            times = []
            for _ in range(args.rounds):
                db = sqlite3.connect(path)
                started = time.perf_counter()
                assert db.execute("PRAGMA quick_check(1)").fetchone()[0] == "ok"
                times.append(time.perf_counter() - started)
                db.close()
            print(json.dumps({"mb": round(path.stat().st_size / 2**20), "quick_check_s_median": round(statistics.median(times), 3),
                              "rounds": args.rounds, "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
