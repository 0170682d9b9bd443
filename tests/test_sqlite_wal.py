"""Opening run.db or the response cache while another process holds the file's lock.

Event-ordered, not timed: the other process holds the lock until the test tells it to let go, so a
loaded machine only makes the tests slower, never wrong.
"""

import sqlite3
import subprocess
import sys
import threading

from distill.sqlite_wal import open_wal
from distill.teachers.wrappers.cache import ResponseCache

HOLD = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("CREATE TABLE IF NOT EXISTS t (x)")
db.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.readline()  # until the test says so
db.execute("COMMIT")
"""


def hold_lock(path) -> subprocess.Popen:
    """Another process with an exclusive lock on a fresh (rollback-journal) file, as a run creating it has;
    it lets go when a line is written to its stdin."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def let_go(holder: subprocess.Popen) -> None:
    holder.stdin.write("go\n")
    holder.stdin.close()
    assert holder.wait(timeout=60) == 0


def test_opening_waits_for_another_process_to_release_the_file(tmp_path):
    path = tmp_path / "responses.sqlite"
    holder = hold_lock(path)
    released = threading.Event()
    opened: list = []

    def open_cache() -> None:
        cache = ResponseCache(path)  # switching to WAL needs the lock the other process holds
        opened.append((cache, released.is_set()))

    opener = threading.Thread(target=open_cache)
    opener.start()
    opener.join(0.5)  # a head start; on a slow machine it may not even have tried yet (then this proves less)
    released.set()
    let_go(holder)
    opener.join(60)
    assert opened, "opening failed while another process held the file"
    cache, after_release = opened[0]
    assert after_release  # it waited for the other process instead of failing or going round the lock
    assert cache.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cache.close()


def test_a_lock_held_past_the_wait_is_an_error_not_a_hang(tmp_path):
    path = tmp_path / "run.db"
    holder = hold_lock(path)  # held until let go: longer than any wait
    outcome: list[BaseException] = []

    def open_run_db() -> None:
        try:
            open_wal(path, wait_s=0.5)
        except sqlite3.OperationalError as exc:
            outcome.append(exc)

    opener = threading.Thread(target=open_run_db, daemon=True)
    opener.start()
    opener.join(60)  # 0.5 s of waiting; a minute for a loaded machine to get through it
    try:
        assert not opener.is_alive(), "opening still waits for a lock that is never released"
        assert outcome and "locked" in str(outcome[0])
    finally:
        let_go(holder)
