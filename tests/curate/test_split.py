"""The one split: small leaves pooled up the tree, about the asked fraction held out, loud when too small."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from distill.curate.split import ROOT, stratified_split
from distill.records import Example, ExampleMeta, Message
from distill.train.data import load_splits

DISTILL = [sys.executable, "-m", "distill.cli"]


def example(i: int, leaf: str | None) -> Example:
    return Example(id=f"e{i}", meta=ExampleMeta(taxonomy_path=leaf),
                   messages=[Message(role="user", content=f"Question {i} about {leaf}?"),
                             Message(role="assistant", content=f"Answer {i}.")])


def dataset(sizes: dict[str, int]) -> list[Example]:
    out = []
    for leaf, n in sizes.items():
        out += [example(len(out), leaf) for _ in range(n)]
    return out


def medical_like(per_leaf: int) -> dict[str, int]:
    """24 leaves under 4 branches, like `--limit 24` on the medical taxonomy (one item a leaf)."""
    branches = {"cardiology": 6, "respiratory": 7, "endocrinology": 5, "infectious": 6}
    return {f"{b}/leaf-{k}": per_leaf for b, n in branches.items() for k in range(n)}


def test_leaves_of_one_are_pooled_and_eval_gets_the_fraction():
    examples = dataset(medical_like(1))
    result = stratified_split(examples, fraction=0.1, seed=0)
    # 24 leaves of 1: the old per-leaf split held out nothing; pooled, 2.4 rounds to 2.
    assert len(result.eval) == 2 and len(result.train) == 22
    assert not {e.id for e in result.train} & {e.id for e in result.eval}
    assert sum(s.examples for s in result.strata) == 24
    # No branch has the 10 a stratum needs at 10%, so everything pools at the root, and says so.
    assert [(s.node, s.examples, len(s.pooled)) for s in result.strata] == [(ROOT, 24, 24)]
    assert result.note is None
    lines = result.describe()
    assert lines[0].startswith("train 22, eval 2") and "pooled 24 small leaves under (all)" in lines[1]
    summary = json.loads(json.dumps(result.summary()))
    assert summary["eval"] == 2 and summary["strata"][0]["pooled"]["cardiology/leaf-0"] == 1


def test_leaves_of_two_pool_at_the_nearest_ancestor_with_enough():
    examples = dataset(medical_like(2))
    result = stratified_split(examples, fraction=0.2, seed=0)  # a stratum needs 5 examples
    strata = {s.node: s for s in result.strata}
    # Each branch holds 10-14 examples in leaves of 2: pooled at the branch, never higher.
    assert set(strata) == {"cardiology", "respiratory", "endocrinology", "infectious"}
    assert strata["respiratory"].examples == 14 and strata["respiratory"].eval == 3
    assert all(len(s.pooled) == s.examples // 2 for s in strata.values())
    assert len(result.eval) == sum(s.eval for s in strata.values()) == 2 + 3 + 2 + 2  # 20% of 12, 14, 10, 12


def test_big_leaves_stand_alone_and_only_small_siblings_pool():
    sizes = {"a/big": 50, "a/small-1": 3, "a/small-2": 4, "a/small-3": 4, "b/x/deep": 2, "b/y": 1, "c": 30}
    examples = dataset(sizes)
    result = stratified_split(examples, fraction=0.1, seed=3)
    strata = {s.node: s for s in result.strata}
    assert strata["a/big"].eval == 5 and not strata["a/big"].pooled
    assert strata["c"].eval == 3
    assert strata["a"].pooled == {"a/small-1": 3, "a/small-2": 4, "a/small-3": 4} and strata["a"].eval == 1
    # b's 3 examples find no pool with 10 below the root: they stay one stratum at the root, too small to give one.
    assert strata[ROOT].pooled == {"b/x/deep": 2, "b/y": 1} and strata[ROOT].eval == 0
    in_eval = Counter(e.meta.taxonomy_path for e in result.eval)
    assert in_eval["a/big"] == 5 and sum(in_eval[leaf] for leaf in strata["a"].pooled) == 1
    assert len(result.eval) == 9  # of 94: about 10%


def test_the_split_depends_on_seed_and_id_not_on_file_order():
    examples = dataset(medical_like(3))
    first = stratified_split(examples, fraction=0.1, seed=1)
    again = stratified_split(list(reversed(examples)), fraction=0.1, seed=1)
    assert {e.id for e in again.eval} == {e.id for e in first.eval}
    assert {e.id for e in stratified_split(examples, 0.1, seed=2).eval} != {e.id for e in first.eval}
    # Adding examples to another stratum never moves one of a stratum of its own.
    big = dataset({"a/big": 40, "b/big": 40})
    before = {e.id for e in stratified_split(big, 0.1, seed=0).eval if e.meta.taxonomy_path == "a/big"}
    more = big + [example(1000 + k, "b/big") for k in range(25)]
    after = {e.id for e in stratified_split(more, 0.1, seed=0).eval if e.meta.taxonomy_path == "a/big"}
    assert before == after


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.3])
def test_whenever_there_are_ten_or_more_eval_gets_about_the_fraction(fraction):
    rng = random.Random(7)
    for trial in range(300):
        # Random trees: 1-30 leaves in 1-5 branches, 1-40 examples a leaf, most of them small.
        leaves = {f"b{rng.randrange(5)}/l{k}": min(40, int(rng.expovariate(1 / 4)) + 1) for k in range(rng.randint(1, 30))}
        examples = dataset(leaves)
        n = len(examples)
        if n < 10:
            continue
        result = stratified_split(examples, fraction=fraction, seed=trial)
        assert len(result.train) + len(result.eval) == n
        assert 0.5 * n * fraction <= len(result.eval) <= 1.5 * n * fraction + 1, (leaves, len(result.eval))
        assert result.note is None


def test_fewer_than_ten_still_hold_one_out_and_say_so():
    result = stratified_split(dataset({"a": 2, "b": 3, "c": 1}), fraction=0.1)
    assert len(result.eval) == 1 and "only 6 examples" in result.note and "--limit" in result.note
    alone = stratified_split(dataset({"a": 1}), fraction=0.1)
    assert alone.eval == [] and "eval split is empty" in alone.note


def write_run(directory: Path, examples: list[Example]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "dataset.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in examples))
    (directory / "stats.json").write_text(json.dumps({"counts": {"kept": len(examples)}}))
    return directory


def distill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*DISTILL, *args], capture_output=True, text=True, timeout=120)


def test_split_command_prints_what_it_pooled_and_records_it(tmp_path):
    run = write_run(tmp_path / "run", dataset(medical_like(1)))
    done = distill("split", str(run))
    assert done.returncode == 0, done.stderr
    assert "train 22, eval 2" in done.stdout and "pooled 24 small leaves under (all)" in done.stdout
    assert "[cardiology/leaf-0 (1), cardiology/leaf-1 (1)," in done.stdout  # which leaves, with their counts
    stats = json.loads((run / "stats.json").read_text())
    assert stats["counts"] == {"kept": 24}  # the run's own stats stay
    assert stats["split"]["eval"] == 2 and stats["split"]["strata"][0]["node"] == ROOT
    assert len((run / "eval.jsonl").read_text().splitlines()) == 2


def test_split_command_on_too_few_warns_or_refuses(tmp_path):
    run = write_run(tmp_path / "six", dataset({"a": 2, "b": 3, "c": 1}))
    done = distill("split", str(run))
    assert done.returncode == 0 and "note: only 6 examples, so eval gets 1" in " ".join(done.stdout.split())
    one = write_run(tmp_path / "one", dataset({"a": 1}))
    done = distill("split", str(one))
    assert done.returncode == 2 and not (one / "eval.jsonl").exists()
    assert "error:" in done.stderr and "the eval split is empty: 1 example(s)" in done.stderr
    assert "Traceback" not in done.stderr


def test_train_time_split_reports_pooling_and_small_sets(tmp_path):
    said: list[str] = []
    train, held_out = load_splits(write_run(tmp_path / "run", dataset(medical_like(1))), say=said.append)
    assert (len(train), len(held_out)) == (22, 2) and any("pooled 24 small leaves" in line for line in said)
    said.clear()
    load_splits(write_run(tmp_path / "six", dataset({"a": 2, "b": 3, "c": 1})), say=said.append)
    assert any("only 6 examples" in line for line in said)
    # An eval.jsonl already there and empty (a split made elsewhere): said at train time too.
    said.clear()
    run = write_run(tmp_path / "empty", dataset({"a": 12}))
    (run / "train.jsonl").write_text((run / "dataset.jsonl").read_text())
    (run / "eval.jsonl").write_text("")
    load_splits(run, say=said.append)
    assert any("eval.jsonl is empty" in line for line in said)


def test_eval_names_why_its_split_is_empty(tmp_path):
    run = write_run(tmp_path / "run", dataset({"a": 1}))
    said: list[str] = []
    load_splits(run, say=said.append)  # one example: trains on it, eval.jsonl empty, the cause recorded
    assert (run / "eval.jsonl").read_text() == ""
    done = distill("eval", str(run), "--student", str(tmp_path / "no-adapter"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    message = " ".join(done.stderr.split())
    assert "the eval split is empty: the split had 1 example(s) in all" in message and "--limit" in message
