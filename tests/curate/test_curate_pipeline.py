"""The whole curation stage: per-node yield, stats.json, the `curate` and `split` commands."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import typer
from curate_helpers import PUBMEDQA, needs_data, pubmedqa
from typer.testing import CliRunner

from distill.curate.commands import register
from distill.curate.pipeline import CurateConfig
from distill.curate.split import stratified_split
from distill.errors import DistillError
from distill.executors.local import curate
from distill.records import Example, ExampleMeta, Message
from distill.tally import node_chain

LEAVES = ["cardiology/arrhythmias", "cardiology/heart_failure", "oncology/breast", "oncology/lung"]


def qa(i: int, node: str | None, answer: str, prompt: str | None = None) -> Example:
    return Example(
        id=f"ex{i}",
        messages=[Message(role="system", content="You are a careful medical expert."),
                  Message(role="user", content=prompt or f"Question {i}: summarise the evidence."),
                  Message(role="assistant", content=answer)],
        meta=ExampleMeta(taxonomy_path=node),
    )


@pytest.fixture(scope="module")
def dataset() -> list[Example]:
    """80 real answers over four leaves, plus duplicates, refusals and a leaf that keeps nothing."""
    items = pubmedqa()
    examples = [qa(k, LEAVES[k % 4], items[k]["LONG_ANSWER"], items[k]["QUESTION"]) for k in range(80)]
    examples += [qa(100 + k, LEAVES[k % 4], items[k]["LONG_ANSWER"].upper(), items[k]["QUESTION"]) for k in range(8)]
    examples += [qa(200 + k, "neurology/stroke", "I'm sorry, but I can't provide medical advice.") for k in range(3)]
    examples += [qa(300, "neurology/stroke", "")]
    examples += [qa(400, None, items[90]["LONG_ANSWER"], items[90]["QUESTION"])]
    return examples


@needs_data
def test_yield_per_node_counts_every_stage_and_ancestor(dataset):
    result = curate(dataset, CurateConfig(workers=1))
    nodes = result.node_stats
    assert set(nodes) >= {"(all)", "(none)", "cardiology", "oncology", "neurology", "neurology/stroke", *LEAVES}
    assert nodes["(all)"].generated == len(dataset)
    assert nodes["cardiology"].generated == nodes["cardiology/arrhythmias"].generated + nodes["cardiology/heart_failure"].generated
    for stats in nodes.values():
        assert stats.generated >= stats.valid >= stats.unique >= stats.clean >= stats.kept
        assert stats.generated - stats.kept == sum(stats.reasons.values())
    assert nodes["(all)"].reasons == Counter({"exact_duplicate": 8, "refusal": 3, "empty_output": 1})
    assert len(result.kept) == 81 and {e.id for e in result.kept} >= {"ex0", "ex400"}
    assert result.empty_nodes() == [("neurology", "refusal"), ("neurology/stroke", "refusal")]
    stats = json.loads(json.dumps(result.to_stats()))
    assert stats["curate"]["nodes"]["neurology/stroke"]["reasons"] == {"refusal": 3, "empty_output": 1}
    assert stats["curate"]["empty_nodes"][0] == {"node": "neurology", "top_reason": "refusal"}


def test_node_chain():
    assert node_chain("a/b/c") == ["a", "a/b", "a/b/c"]
    assert node_chain(None) == ["(none)"]


@needs_data
def test_stratified_split_is_deterministic_and_pools_small_leaves(dataset):
    result = stratified_split(dataset, fraction=0.15, seed=1)
    train, evaluation = result.train, result.eval
    assert len(train) + len(evaluation) == len(dataset)
    assert not {e.id for e in train} & {e.id for e in evaluation}
    per_leaf = Counter(e.meta.taxonomy_path or "(none)" for e in dataset)
    in_eval = Counter(e.meta.taxonomy_path or "(none)" for e in evaluation)
    for leaf in LEAVES:  # 22 examples each: a stratum of its own
        assert in_eval[leaf] == round(per_leaf[leaf] * 0.15)
    # neurology/stroke (4) and the unplaced item (1) are under the 7 a stratum needs at 15%: pooled at the root.
    assert [(s.node, s.pooled) for s in result.pooled] == [("(all)", {"neurology/stroke": 4, "(none)": 1})]
    again = stratified_split(list(reversed(dataset)), fraction=0.15, seed=1).eval
    assert {e.id for e in again} == {e.id for e in evaluation}  # independent of file order
    assert {e.id for e in stratified_split(dataset, 0.15, seed=2).eval} != {e.id for e in evaluation}


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def write(path, examples):
    path.write_text("".join(e.model_dump_json() + "\n" for e in examples))


@needs_data
def test_curate_command_writes_every_output(tmp_path, dataset):
    run = tmp_path / "run"
    run.mkdir()
    write(run / "dataset.jsonl", dataset)
    out = tmp_path / "curated"
    result = CliRunner().invoke(cli(), ["curate", str(run), "--out", str(out), "--heldout", f"{PUBMEDQA}:QUESTION,LONG_ANSWER", "--workers", "1"])
    assert result.exit_code == 0, result.output
    for name in ("dataset.jsonl", "rejected.jsonl", "stats.json", "contamination.jsonl", "report.md"):
        assert (out / name).exists(), name
    stats = json.loads((out / "stats.json").read_text())["curate"]
    # Every answer is a real PubMedQA answer and PubMedQA is the held-out set: none may survive.
    assert stats["decontamination"]["flagged"] == 81
    assert stats["kept"] == 0 and stats["reasons"]["contaminated"] == 81
    rows = [json.loads(line) for line in (out / "contamination.jsonl").read_text().splitlines()]
    assert len(rows) == 81 and all(r["heldout_id"].startswith("pubmedqa_ori_pqal:") and r["ngram"] for r in rows)
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == len(dataset) and all(r["reason"] and r["detail"] for r in rejected)
    assert "kept nothing" in result.output and "neurology/stroke" in (out / "report.md").read_text()


@needs_data
def test_curate_command_on_an_alpaca_file_then_split(tmp_path):
    items = pubmedqa()[:40]
    rows = [{"instruction": i["QUESTION"], "input": "", "output": i["LONG_ANSWER"]} for i in items]
    rows.append(rows[0])
    source = tmp_path / "alpaca.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(cli(), ["curate", str(source), "--workers", "1"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "alpaca_curated"
    kept = (out / "dataset.jsonl").read_text().splitlines()
    assert len(kept) == 40
    split = CliRunner().invoke(cli(), ["split", str(out), "--fraction", "0.2"])
    assert split.exit_code == 0, split.output
    assert len((out / "eval.jsonl").read_text().splitlines()) == 8
    assert len((out / "train.jsonl").read_text().splitlines()) == 32


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a", "messages": []}\n{"id": "b", "messages": [\n', "bad.jsonl:2: not valid JSON"),
        ('{"id": "a", "text": "hello"}\n', "bad.jsonl:1: no known row format (its fields: id, text); distill reads"),
        ('{"id": "a", "messages": [{"role": "robot", "content": "x"}]}\n', "bad.jsonl:1: field messages.0.role"),
    ],
)
def test_bad_input_files_name_the_line_and_the_fix(tmp_path, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    result = CliRunner().invoke(cli(), ["curate", str(bad)])
    assert isinstance(result.exception, DistillError)
    assert message in str(result.exception)


def test_missing_input_and_missing_run_dataset(tmp_path):
    result = CliRunner().invoke(cli(), ["curate", str(tmp_path / "nope.jsonl")])
    assert isinstance(result.exception, DistillError) and "file not found" in str(result.exception)
    result = CliRunner().invoke(cli(), ["curate", str(tmp_path)])
    assert isinstance(result.exception, DistillError) and "no dataset.jsonl" in str(result.exception)
