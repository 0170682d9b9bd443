"""A run's derived files follow its data: a split made before more examples came is extended, not used
forever; split, export and review never work on a run another process is writing; nothing is written
into a run.db that SQLite's integrity check finds damaged."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from pathlib import Path

import pytest

from cli_helpers import cli_env, distill, error_lines
from distill.curate.split import read_split
from distill.store import RunStore
from review_helpers import example_row, make_dataset


def ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def append_examples(run: Path, count: int, leaf: str = "respiratory/asthma") -> list[str]:
    rows = [example_row(f"late-{i:03d}", leaf, f"What about late question {i}?", f"Late answer {i}, in words.")
            for i in range(count)]
    with (run / "dataset.jsonl").open("a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    return [row["id"] for row in rows]


@pytest.mark.slow
def test_examples_generated_after_the_split_reach_the_export_and_held_out_ones_stay_held_out(tmp_path):
    run = make_dataset(tmp_path / "run", per_leaf=10)
    env = cli_env(tmp_path)
    assert distill("split", str(run), cwd=tmp_path, env=env).returncode == 0
    held_out, trained = set(ids(run / "eval.jsonl")), set(ids(run / "train.jsonl"))
    late = append_examples(run, 30)  # a later `distill generate` added these

    done = distill("export", str(run), "--license", "mit", "--out", str(tmp_path / "export"), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "the dataset changed since the split: 30 new example(s)" in done.stdout
    train_now, eval_now = set(ids(run / "train.jsonl")), set(ids(run / "eval.jsonl"))
    assert set(late) <= train_now | eval_now, "examples generated after the split are left out"
    assert held_out <= eval_now and trained <= train_now, "an example changed sides"
    assert set(late) & eval_now, "none of 30 new examples was held out at a 10% split"
    from datasets import load_dataset

    exported = load_dataset(str(tmp_path / "export"))
    assert {r["id"] for r in exported["train"]} | {r["id"] for r in exported["test"]} == train_now | eval_now
    assert held_out <= {r["id"] for r in exported["test"]}


def test_examples_that_left_the_dataset_leave_the_split_and_an_unchanged_dataset_keeps_it_as_is(tmp_path):
    run = make_dataset(tmp_path / "run", per_leaf=10)
    assert distill("split", str(run), cwd=tmp_path, env=cli_env(tmp_path)).returncode == 0
    before = (run / "train.jsonl").read_bytes(), (run / "eval.jsonl").read_bytes()
    train, held_out, update = read_split(run)
    assert update is None and ((run / "train.jsonl").read_bytes(), (run / "eval.jsonl").read_bytes()) == before

    gone = ids(run / "eval.jsonl")[0]
    rows = [line for line in (run / "dataset.jsonl").read_text().splitlines() if json.loads(line)["id"] != gone]
    (run / "dataset.jsonl").write_text("\n".join(rows) + "\n")
    train, held_out, update = read_split(run)
    assert update is not None and update.removed == 1
    assert gone not in {e.id for e in held_out} | {e.id for e in train}
    assert len(held_out) == len(before[1].splitlines()) - 1  # nothing moved over to fill its place


def test_a_split_without_a_recorded_source_is_checked_against_the_dataset(tmp_path):
    """Runs split by an earlier distill have no digest in stats.json: their examples are compared by id."""
    run = make_dataset(tmp_path / "run", per_leaf=10)
    assert distill("split", str(run), cwd=tmp_path, env=cli_env(tmp_path)).returncode == 0
    stats = json.loads((run / "stats.json").read_text())
    del stats["split"]["source_sha256"]
    (run / "stats.json").write_text(json.dumps(stats))
    late = append_examples(run, 12)
    train, held_out, update = read_split(run)
    assert update is not None and update.added_train + update.added_eval == 12
    assert set(late) <= {e.id for e in train} | {e.id for e in held_out}


@pytest.fixture
def held_by_another_process(tmp_path):
    """run.lock held as a running `distill generate` holds it (flock, from another open file)."""
    def hold(run: Path):
        fd = os.open(run / "run.lock", os.O_RDWR | os.O_CREAT, 0o644)
        os.pwrite(fd, b"pid 4242 on elsewhere: distill generate -t medical.yaml\n", 0)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        opened.append(fd)
    opened: list[int] = []
    yield hold
    for fd in opened:
        os.close(fd)


@pytest.mark.slow
@pytest.mark.parametrize("command", [
    ["split", "{run}"],
    ["export", "{run}", "--license", "mit", "--out", "{tmp}/export"],
    ["review", "{run}", "--size", "5"],
    ["review", "status", "{run}"],
])
def test_split_export_and_review_refuse_a_run_another_process_is_writing(tmp_path, held_by_another_process,
                                                                         command):
    run = make_dataset(tmp_path / "run", per_leaf=10)
    if command[:2] == ["review", "status"]:
        assert distill("review", str(run), "--size", "5", cwd=tmp_path, env=cli_env(tmp_path)).returncode == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "run.lock"
              and not p.name.startswith("run.db")}
    held_by_another_process(run)
    args = [part.format(run=run, tmp=tmp_path) for part in command]
    done = distill(*args, cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and "is in use by another run" in lines[0] and "pid 4242" in lines[0], lines
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "run.lock"
             and not p.name.startswith("run.db")}
    assert after == before
    assert not (tmp_path / "export").exists()


def damage(path: Path) -> None:
    """Overwrite the middle of a b-tree page of `path` with garbage, as a bad disk or a torn copy would."""
    with sqlite3.connect(path) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert pages >= 4, "the database is too small to damage a page that is not the header"
    with path.open("r+b") as handle:
        handle.seek(page_size * (pages - 2) + 8)
        handle.write(b"\xff\x00\xfe" * (page_size // 4))


@pytest.mark.slow
def test_nothing_is_written_into_a_run_db_the_integrity_check_finds_damaged(tmp_path):
    run = make_dataset(tmp_path / "run", per_leaf=10, extra=[
        example_row(f"big-{i}", "sentiment", "Q " * 200, "A " * 400) for i in range(40)])
    env = cli_env(tmp_path)
    assert distill("review", str(run), "--size", "30", cwd=tmp_path, env=env).returncode == 0
    damage(run / "run.db")
    damaged = (run / "run.db").read_bytes()
    for args in (["review", str(run), "--more", "5"], ["review", "add-reviewer", str(run), "bob"]):
        done = distill(*args, cwd=tmp_path, env=env)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        lines = error_lines(done.stderr)
        assert len(lines) == 1 and "run.db is corrupt" in lines[0] and "integrity check" in lines[0], lines
        assert (run / "run.db").read_bytes() == damaged


def test_a_sound_run_db_is_checked_once_and_opens(tmp_path):
    store = RunStore(tmp_path / "run.db")
    store.set_info(taxonomy="toy")
    store.close()
    again = RunStore(tmp_path / "run.db")
    assert again.info() == {"taxonomy": "toy"}
    again.close()


@pytest.mark.parametrize("kind", ["file", "link"])
def test_a_users_own_run_lock_is_neither_truncated_nor_followed(tmp_path, kind):
    """The run lock lives in `run.lock`; a user's file of that name (or a link there) is not distill's to empty."""
    run = make_dataset(tmp_path / "run", per_leaf=10)
    precious = tmp_path / "precious.txt"
    precious.write_text("the user's notes\n")
    if kind == "file":
        (run / "run.lock").write_text("the user's notes\n")
    else:
        (run / "run.lock").symlink_to(precious)
    done = distill("split", str(run), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and "run.lock" in lines[0] and "distill did not" in lines[0], lines
    assert precious.read_text() == "the user's notes\n"
    if kind == "file":
        assert (run / "run.lock").read_text() == "the user's notes\n"
    assert not (run / "train.jsonl").exists()


@pytest.mark.parametrize("command", [
    ["curate", "data.jsonl", "--out", "curated", "--heldout", "notes.txt"],
    ["curate", "missing.jsonl", "--out", "curated"],
    ["export", ".", "--license", "mit", "--out", "exported"],
    ["split", "."],
    ["review", "."],
])
def test_a_refused_command_leaves_nothing_in_the_users_folder(tmp_path, command):
    """Inputs are checked before any output folder or run.lock is made: a typo costs the user nothing to tidy."""
    project = tmp_path / "project"
    make_dataset(project, per_leaf=3)
    (project / "dataset.jsonl").rename(project / "data.jsonl")  # the user's own file, not a run's dataset
    (project / "notes.txt").write_text("the user's notes\n")
    before = sorted(p.name for p in project.iterdir())
    done = distill(*command, cwd=project, env=cli_env(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(error_lines(done.stderr)) == 1, done.stderr
    assert sorted(p.name for p in project.iterdir()) == before
