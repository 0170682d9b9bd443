"""Ctrl-C during `distill generate` with the real embedded teacher: it stops mid-batch, keeps every answer
already given, says how to resume and exits 130. (How many seconds the stop takes: benchmarks/bench_stops.py.)"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli_helpers import ROOT as REPO, TINY as FIXTURES


def answered(db: Path) -> set[str]:
    try:
        with sqlite3.connect(db) as conn:
            return {row[0] for row in conn.execute("SELECT fingerprint FROM teacher_calls WHERE text IS NOT NULL")}
    except sqlite3.OperationalError:  # not created yet
        return set()


@pytest.mark.model
def test_ctrl_c_mid_batch_stops_the_batch_and_keeps_what_was_answered(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "distill.cli", "generate", "--taxonomy", str(FIXTURES / "qa.yaml"), "--out", str(out),
         "--no-curate"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr))
    reader.start()
    deadline = time.monotonic() + 600
    before: set[str] = set()
    while time.monotonic() < deadline and process.poll() is None and not before:
        time.sleep(0.2)
        before = answered(out / "run.db")
    assert process.poll() is None and before, "the run ended before it could be interrupted"
    # One answer is in; the other items' requests are decoding in the same batch.
    process.send_signal(signal.SIGINT)
    # The teacher stops between two decoding steps (test_local_teacher.py counts them); what is left is
    # exporting and the interpreter's exit. Waited for, not timed: benchmarks/bench_stops.py gives the seconds.
    process.wait(timeout=300)
    reader.join(timeout=60)

    said = "".join(lines)
    assert process.returncode == 130, said[-2000:]
    assert "resume" in said, said[-2000:]
    after = answered(out / "run.db")
    assert before <= after  # nothing answered is lost
    with sqlite3.connect(out / "run.db") as conn:
        cut_short = conn.execute("SELECT COUNT(*) FROM teacher_calls WHERE text IS NULL").fetchone()[0]
        pending = conn.execute("SELECT COUNT(*) FROM plan_items WHERE status = 'pending'").fetchone()[0]
    assert cut_short == 0  # requests stopped mid-decoding are not answers: they are asked again on resume
    assert pending >= 1
