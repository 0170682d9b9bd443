"""The run folder has one owner, `distill.rundir.RunDir`: every file name in it is spelled there and nowhere else,
every write goes through the folder's ownership record, a folder an earlier distill wrote still opens, and the
review's decisions reach every file rebuilt from them, the split included."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from cli_helpers import ROOT, cli_env, distill, tiny_copy
from distill import rundir
from distill.errors import DistillError
from distill.owned import MANIFEST
from distill.records import Example, read_jsonl
from distill.rundir import RunDir
from fakeapi import FakeAPI
from review_helpers import decide, make_dataset

PACKAGE = ROOT / "distill"

# The names the issue counted, spelled in 9 files before (kept here too, so that one dropped from
# rundir.ARTIFACTS is still looked for).
NAMES = {"dataset.jsonl", "run.db", "rejected.jsonl", "stats.json", "train.jsonl", "eval.jsonl", "taxonomy.json",
         "pipeline.json", "contamination.jsonl", "duplicates.jsonl", "report.md", "eval.json", "eval.md",
         "run.lock", "judge.db", "eval_leaves.png", "eval_confusion.png", "dataset/", "rejected/"}
ALLOWED = {
    # owned.py is the record of what distill wrote in a folder. It sits below rundir.py (RunDir writes through it,
    # so importing rundir's names would be a cycle), and it recognises a folder an earlier distill wrote, before
    # .distill-owned.json existed, by the names that distill wrote then: a record of the past, not a spelling
    # of what distill writes now.
    "owned.py": NAMES,
    # errors.py sits below every module, rundir.py included; it tells a corrupt run store by its name, to say
    # that the exports beside it are untouched.
    "errors.py": {"run.db"},
}


def _literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant in a module (f-string pieces included; docstrings are prose and
    never equal a bare file name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_no_file_of_the_run_folder_is_named_outside_rundir():
    names = NAMES | set(rundir.ARTIFACTS)
    found = [f"{path.relative_to(PACKAGE)}:{line}: {text!r}"
             for path in sorted(PACKAGE.rglob("*.py")) if path.name != "rundir.py"
             for line, text in _literals(path)
             if text in names and text not in ALLOWED.get(path.relative_to(PACKAGE).as_posix(), set())]
    assert not found, "spell these through distill.rundir:\n" + "\n".join(found)
    assert {text for _, text in _literals(PACKAGE / "rundir.py")} >= NAMES  # and rundir.py names them all


def _example(item_id: str, leaf: str = "a/b") -> Example:
    return Example.model_validate({"id": item_id, "meta": {"taxonomy_path": leaf}, "messages": [
        {"role": "user", "content": f"question {item_id}"}, {"role": "assistant", "content": f"answer {item_id}"}]})


def test_a_run_dirs_files_go_through_its_ownership_record(tmp_path):
    run_dir = RunDir(tmp_path / "run")
    (tmp_path / "run").mkdir()
    files = run_dir.write_exports([_example("a"), _example("b")], [], {"counts": {"kept": 2}})
    assert files["dataset"] == tmp_path / "run" / "dataset.jsonl" and files["run_db"] == run_dir.run_db
    assert [row["id"] for row in read_jsonl(run_dir.dataset)] == ["a", "b"] == run_dir.read_dataset_ids()
    run_dir.update_stats(split={"train": 1})  # a stage's key added, the others kept
    assert run_dir.read_stats() == {"counts": {"kept": 2}, "split": {"train": 1}}
    assert run_dir.recorded_split() == {"train": 1}
    recorded = json.loads((tmp_path / "run" / MANIFEST).read_text())["files"]
    assert {"dataset.jsonl", "rejected.jsonl", "stats.json"} <= set(recorded)
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".distill-tmp")]

    # A file of the user's named like one of the split's stops the split before either side is written.
    (tmp_path / "run" / "eval.jsonl").write_text("the user's own\n")
    with pytest.raises(DistillError, match="eval.jsonl exists and distill did not write it"):
        run_dir.write_split([_example("a")], [_example("b")])
    assert not run_dir.train.exists() and run_dir.eval.read_text() == "the user's own\n"
    (tmp_path / "run" / "eval.jsonl").unlink()
    run_dir.write_split([_example("a")], [_example("b")])
    assert [[e.id for e in side] for side in run_dir.read_split()] == [["a"], ["b"]]

    # A stats.json that cannot be read is a report that says less, never a crash; pipeline.json is state.
    run_dir.stats.write_text("{not json")
    assert run_dir.read_stats() == {} and run_dir.recorded_split() is None
    (tmp_path / "run" / "pipeline.json").write_text("{not json")
    with pytest.raises(DistillError, match="pipeline.json is damaged"):
        run_dir.read_pipeline()


@pytest.mark.slow
def test_a_run_folder_an_earlier_distill_wrote_still_opens(tmp_path):
    """A run made before `.distill-owned.json` and `taxonomy.json` existed: split, review and its status work on
    it, take it for a run (by its run.db), and never touch a file of the user's beside it."""
    tiny_copy(tmp_path, per_leaf=3)
    env = cli_env(tmp_path)
    out = tmp_path / "run"
    with FakeAPI() as api:
        made = distill("generate", "-t", str(tmp_path / "tiny" / "qa.yaml"), "--teacher", "openai:gpt-4o-mini",
                       "--base-url", api.url + "/v1", "--out", str(out), "--no-curate", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    (out / MANIFEST).unlink()
    (out / "taxonomy.json").unlink()
    (out / "notes.txt").write_text("mine\n")
    kept = RunDir(out).read_stats()["counts"]["kept"]
    assert kept == len(RunDir(out).read_dataset_ids()) >= 4

    split = distill("split", str(out), "--fraction", "0.3", cwd=tmp_path, env=env)
    assert split.returncode == 0, split.stderr
    record = json.loads((out / MANIFEST).read_text())
    assert record["kind"] == "run" and {"run.db", "dataset.jsonl", "train.jsonl", "eval.jsonl"} <= set(record["files"])
    train, held_out = RunDir(out).read_split()
    assert len(train) + len(held_out) == kept and held_out

    queued = distill("review", str(out), "--size", str(kept), cwd=tmp_path, env=env)
    assert queued.returncode == 0, queued.stderr
    rejected = held_out[0].id
    decide(out, rejected, "reject", reasons=["wrong"])
    status = distill("review", "status", str(out), cwd=tmp_path, env=env)
    assert status.returncode == 0, status.stderr
    assert rejected not in RunDir(out).read_dataset_ids()
    assert (out / "notes.txt").read_text() == "mine\n"


@pytest.mark.slow
@pytest.mark.parametrize("users_dataset", [False, True], ids=["distills-dataset", "users-dataset"])
def test_the_review_rebuilds_the_split_with_the_other_files(tmp_path, users_dataset):
    """`distill review status` applies the decisions to every file built from the data, the split too: a split
    carved before the review loses its rejected items and takes the edits at once, not only when training next
    reads it; where dataset.jsonl is the user's (left as written), the split, which is distill's, still does."""
    folder = tmp_path / "data"
    make_dataset(folder, per_leaf=10)
    if users_dataset:  # the same rows, but the user's file: distill never rewrites it
        text = (folder / "dataset.jsonl").read_text()
        (folder / MANIFEST).unlink()
        (folder / "dataset.jsonl").write_text(text)
    env = cli_env(tmp_path)
    assert distill("split", str(folder), "--fraction", "0.2", cwd=tmp_path, env=env).returncode == 0
    assert distill("review", str(folder), "--size", "40", cwd=tmp_path, env=env).returncode == 0
    train, held_out = RunDir(folder).read_split()
    dropped, fixed = train[0].id, held_out[0].id
    decide(folder, dropped, "reject", reasons=["wrong"])
    messages = [m.model_dump() for m in held_out[0].messages]
    messages[-1]["content"] = "The reviewer's answer."
    decide(folder, fixed, "edit", messages=messages)
    dataset_before = (folder / "dataset.jsonl").read_bytes()

    status = distill("review", "status", str(folder), cwd=tmp_path, env=env)
    assert status.returncode == 0, status.stderr
    train, held_out = RunDir(folder).read_split()
    assert dropped not in {e.id for e in train + held_out}
    assert {e.id: e.response for e in held_out}[fixed] == "The reviewer's answer."
    assert fixed not in {e.id for e in train}  # an edit keeps its side of the split
    if users_dataset:
        assert (folder / "dataset.jsonl").read_bytes() == dataset_before
        assert "not distill's: left as written" in status.stdout
    else:
        assert dropped not in RunDir(folder).read_dataset_ids()
