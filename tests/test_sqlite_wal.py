"""Opening run.db or the response cache while another process holds the file's lock."""

import sqlite3
import subprocess
import sys
import time

import pytest

from distill.sqlite_wal import open_wal
from distill.teachers.cache import ResponseCache

HOLD = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("CREATE TABLE IF NOT EXISTS t (x)")
db.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


def hold_lock(path, seconds: float) -> subprocess.Popen:
    """Another process with an exclusive lock on a fresh (rollback-journal) file, as a run creating it has."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_opening_waits_for_another_process_to_release_the_file(tmp_path):
    path = tmp_path / "responses.sqlite"
    holder = hold_lock(path, 1.0)
    started = time.monotonic()
    cache = ResponseCache(path)  # switching to WAL needs the lock the other process holds
    waited = time.monotonic() - started
    holder.wait()
    assert waited >= 0.5
    assert cache.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cache.close()


def test_a_lock_held_past_the_wait_is_an_error_not_a_hang(tmp_path):
    path = tmp_path / "run.db"
    holder = hold_lock(path, 5.0)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        open_wal(path, wait_s=0.5)
    assert time.monotonic() - started < 4.0
    holder.kill()
    holder.wait()
