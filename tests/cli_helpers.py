"""Running `distill` as a user does: the installed console script, in a subprocess."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "tiny"
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
