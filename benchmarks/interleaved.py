"""Interleaved A/B runs for the benchmarks: each mode in a process of its own (a clean heap, its own peak
memory), modes alternating (A, B, A, B ...) so a shared machine's load falls on both alike."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def run_interleaved(script: str, modes: list[str], repeat: int, args: list[str],
                    show: Callable[[int, str, dict], None], env: dict | None = None) -> dict[str, list[dict]]:
    """Run `script --one MODE *args` for every mode, `repeat` rounds; each run prints its figures as one JSON
    line last. `show(round, mode, row)` prints each run as it finishes; a failed run stops the benchmark."""
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    for r in range(repeat):
        for mode in modes:
            done = subprocess.run([sys.executable, script, "--one", mode, *args], capture_output=True, text=True,
                                  cwd=Path(script).resolve().parents[1], env=env)
            if done.returncode != 0:
                raise SystemExit(done.stderr[-3000:])
            row = json.loads(done.stdout.strip().splitlines()[-1])
            runs[mode].append(row)
            show(r + 1, mode, row)
    return runs
