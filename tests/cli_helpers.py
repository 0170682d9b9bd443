"""Running `distill` as a user does: the installed console script, in a subprocess."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The one place paths are computed from a file's location: test files sit at different depths under tests/.
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
TINY = TESTS / "fixtures" / "tiny"
HELDOUT = TESTS / "data" / "heldout"
SCRIPT = Path(sys.executable).with_name("distill")


def distill_command(*args: str) -> list[str]:
    """The console script beside this Python (what `pip install` made), or the module where there is none."""
    if SCRIPT.is_file():
        return [str(SCRIPT), *args]
    return [sys.executable, "-m", "distill.cli", *args]


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("OPENAI_BASE_URL", "DISTILL_DEBUG")}
    return {**env, "PYTHONPATH": str(ROOT), "DISTILL_CACHE_DIR": str(tmp_path / "cache"),
            "OPENAI_API_KEY": "sk-test-cli-NEVER-WRITE", "COLUMNS": "200", **extra}


def distill(*args: str, cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(distill_command(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def tiny_copy(tmp_path: Path, per_leaf: int | None = None) -> Path:
    """A writable copy of the tiny fixtures; returns its folder."""
    folder = tmp_path / "tiny"
    if not folder.exists():
        shutil.copytree(TINY, folder)
    if per_leaf is not None:
        for name in ("qa.yaml", "tickets.yaml"):
            path = folder / name
            path.write_text(path.read_text().replace("per_leaf: 2", f"per_leaf: {per_leaf}"))
    return folder


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def answers_in(out: Path) -> int:
    """Answers `out`/run.db holds now, read without creating or migrating it (the run may not have made it yet)."""
    try:
        with sqlite3.connect(f"file:{out / 'run.db'}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM teacher_calls WHERE error IS NULL").fetchone()[0]
    except sqlite3.Error:
        return 0


def wait_for(condition, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert condition(), "the run ended or stalled first"


def in_own_mount(tmp_path: Path, script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`script` (sh) in a mount namespace of its own, where it may mount a small or read-only tmpfs."""
    if shutil.which("unshare") is None:
        pytest.fail("this test needs util-linux's unshare (Debian: apt-get install util-linux)")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"cannot make a mount namespace here (unshare -rm: {probe.stderr.strip()})")
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)
