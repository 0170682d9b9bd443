"""`distill curate --executor ray` against the local path on one planted corpus: the same kept set,
rejects, duplicates, contamination and statistics, from JSONL and Parquet shards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from curate_helpers import PUBMEDQA, needs_data, planted_corpus, pubmedqa

from distill.curate.commands import run_curate
from distill.curate.dataset_io import drop_nulls, load_examples, parquet_row
from distill.curate.heldout import parse_heldout_option
from distill.curate.pipeline import CurateConfig
from distill.records import Example, ExampleMeta, Message, Reject, read_jsonl, write_jsonl

pytestmark = [needs_data, pytest.mark.ray]
LEAVES = ["cardiology/arrhythmias", "cardiology/heart-failure", "oncology/lung"]


def example(i: int, answer: str, node: str | None = None, quality: float | None = None) -> Example:
    meta = ExampleMeta(taxonomy_path=node, **({"quality": quality} if quality is not None else {}))
    return Example(id=f"ex{i:04d}", messages=[Message(role="system", content="You are a careful expert."),
                                              Message(role="user", content=f"Question {i % 13}: what does it show?"),
                                              Message(role="assistant", content=answer)], meta=meta)


def write_corpus(folder: Path) -> tuple[Path, Path]:
    """1,040 rows in three JSONL shards and one Parquet shard, with every kind of reject planted, and
    an earlier run to dedup against. Returns (input folder, --against file)."""
    texts, _ = planted_corpus(900, [0] * 30 + [1] * 40 + [2] * 30 + [4] * 20 + [30] * 10, seed=3)
    rows = [example(i, t, LEAVES[i % 3], quality=(i % 5) / 5 if i % 2 else None) for i, t in enumerate(texts)]
    n = len(rows)
    # Exact copies that differ in case, spacing and punctuation only.
    rows += [example(n + k, "  " + texts[k].upper().replace(" ", "  ") + "!!", LEAVES[k % 3]) for k in range(20)]
    # Check failures: empty, too short, refusal, unfinished.
    rows += [example(n + 20, "", LEAVES[0]), example(n + 21, "Yes.", LEAVES[1]),
             example(n + 22, "I'm sorry, but I can't provide medical advice.", "neurology/stroke"),
             example(n + 23, texts[50][:200], LEAVES[2])]
    # Contaminated: held-out PubMedQA answers, verbatim and inside a longer text.
    held = pubmedqa()[:8]
    rows += [example(n + 30 + k, item["LONG_ANSWER"], LEAVES[k % 3]) for k, item in enumerate(held[:4])]
    rows += [example(n + 40 + k, f"In short, {item['LONG_ANSWER']} That is what we found.", None)
             for k, item in enumerate(held[4:])]
    inputs = folder / "in"
    inputs.mkdir()
    cut = [0, 300, 600, 850, len(rows)]
    for k in range(3):
        write_jsonl(inputs / f"part-{k}.jsonl", rows[cut[k]:cut[k + 1]])
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([parquet_row(r.model_dump()) for r in rows[cut[3]:]]),
                   inputs / "part-3.parquet")
    # An earlier run holding copies of a few rows: they must go, in favour of the earlier run's rows.
    against = folder / "earlier.jsonl"
    write_jsonl(against, [example(5000 + k, texts[100 + k], LEAVES[0]) for k in range(5)]
                + [example(5100 + k, texts[200 + k].replace(" the ", " a ", 1), LEAVES[1]) for k in range(5)])
    return inputs, against


@pytest.fixture(scope="module")
def runs(tmp_path_factory, ray_cluster):
    folder = tmp_path_factory.mktemp("ray-curate")
    inputs, against = write_corpus(folder)
    config = CurateConfig(heldout=[parse_heldout_option(f"{PUBMEDQA}:LONG_ANSWER")], against=[str(against)], workers=1)
    from rich.console import Console

    console = Console(quiet=True)
    local = run_curate(inputs, folder / "local", config, console, show_progress=False)
    # Parts of 300 rows: several tasks write, and reading the folder back must restore the input order.
    run_curate(inputs, folder / "ray", config, console, executor="ray", output_format="parquet", rows_per_part=300)
    return folder, local


def test_ray_keeps_and_rejects_exactly_what_the_local_path_does(runs):
    folder, local = runs
    kept_local = load_examples(folder / "local" / "dataset.jsonl")
    kept_ray = load_examples(folder / "ray")  # the dataset/ Parquet shards, in input order
    assert [e.model_dump() for e in kept_ray] == [e.model_dump() for e in kept_local]
    reasons = {r["reason"] for r in read_jsonl(folder / "local" / "rejected.jsonl")}
    # Every kind of reject happened, so the comparison below covers each step.
    assert reasons >= {"exact_duplicate", "near_duplicate", "contaminated", "empty_output", "too_short", "refusal"}
    assert len(list((folder / "ray" / "dataset").iterdir())) > 2
    # Compared as records: Parquet cannot hold an empty map (`axes: {}`), which reads back as the default.
    rejected_ray = [Reject.model_validate(row).model_dump() for part in sorted((folder / "ray" / "rejected").iterdir())
                    for row in _rows(part)]
    assert rejected_ray == [Reject.model_validate(row).model_dump() for row in read_jsonl(folder / "local" / "rejected.jsonl")]
    for name in ("duplicates.jsonl", "contamination.jsonl"):
        assert read_jsonl(folder / "ray" / name) == read_jsonl(folder / "local" / name), name
    stats = [json.loads((folder / run / "stats.json").read_text())["curate"] for run in ("local", "ray")]
    assert stats[0] == stats[1]
    dedup = stats[1]["dedup"]
    assert dedup["candidate_pairs"] >= dedup["confirmed_pairs"] > 0 and dedup["against_items"] == 10
    removed_for_earlier = [d for d in read_jsonl(folder / "ray" / "duplicates.jsonl") if d.get("source")]
    # Each of the ten rows copied into the earlier run (and a planted copy grouped with one) gave way to it.
    assert len(removed_for_earlier) >= 10 and all(d["duplicate_of"] >= "ex5000" for d in removed_for_earlier)


def _rows(part: Path) -> list[dict]:
    if part.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [drop_nulls(row) for row in pq.read_table(part).to_pylist()]
    return read_jsonl(part)


def test_a_bad_row_found_inside_a_task_is_one_error_naming_file_and_line(tmp_path, ray_cluster):
    from rich.console import Console

    from distill.errors import DistillError

    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps(example(1, "A long enough answer to keep.").model_dump()) + "\n{not json\n")
    with pytest.raises(DistillError, match=r"data.jsonl:2: not valid JSON"):
        run_curate(data, tmp_path / "out", CurateConfig(), Console(quiet=True), executor="ray")


def test_unknown_executor_is_one_line_and_exit_2(tmp_path):
    data = tmp_path / "data.jsonl"
    write_jsonl(data, [example(1, "An answer that is long enough to keep.")])
    done = subprocess.run([sys.executable, "-m", "distill.cli", "curate", str(data), "--executor", "spark"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: unknown executor 'spark'; use one of: local, ray"]


def edited(text: str, every: int = 30) -> str:
    """A lightly edited copy: one word in `every` changed, so no 40-gram of the original is left whole."""
    return " ".join("zzz" + word if k % every == every // 2 else word for k, word in enumerate(text.split()))


@pytest.fixture(scope="module")
def estimated_runs(tmp_path_factory, ray_cluster):
    """The planted corpus plus edited copies of held-out answers, curated with what the Ray executor used to
    refuse: near duplicates confirmed by estimated Jaccard, and MinHash decontamination (at 40-grams, which
    every edited copy breaks, so MinHash alone finds those)."""
    folder = tmp_path_factory.mktemp("ray-curate-estimate")
    inputs, against = write_corpus(folder)
    long_answers = [item["LONG_ANSWER"] for item in pubmedqa()[20:200] if len(item["LONG_ANSWER"].split()) >= 60]
    write_jsonl(inputs / "part-4.jsonl", [example(3000 + k, edited(text), LEAVES[k % 3])
                                          for k, text in enumerate(long_answers[:20])])
    config = CurateConfig(heldout=[parse_heldout_option(f"{PUBMEDQA}:LONG_ANSWER")], against=[str(against)], workers=1,
                          confirm="estimate", ngram=40, report_ngram=40, decontam_minhash_threshold=0.5)
    from rich.console import Console

    console = Console(quiet=True)
    run_curate(inputs, folder / "local", config, console, show_progress=False)
    run_curate(inputs, folder / "ray", config, console, executor="ray", rows_per_part=300)
    return folder


def test_estimated_confirmation_and_minhash_decontamination_on_ray_match_the_local_executor(estimated_runs):
    folder = estimated_runs
    kept = [[e.model_dump() for e in load_examples(path)] for path in (folder / "local" / "dataset.jsonl", folder / "ray")]
    assert kept[0] == kept[1]
    rejected = [Reject.model_validate(row).model_dump() for part in sorted((folder / "ray" / "rejected").iterdir())
                for row in _rows(part)]
    assert rejected == [Reject.model_validate(row).model_dump() for row in read_jsonl(folder / "local" / "rejected.jsonl")]
    for name in ("duplicates.jsonl", "contamination.jsonl"):
        assert read_jsonl(folder / "ray" / name) == read_jsonl(folder / "local" / name), name
    stats = [json.loads((folder / run / "stats.json").read_text())["curate"] for run in ("local", "ray")]
    assert stats[0] == stats[1]
    assert stats[1]["dedup"]["confirm"] == "estimate" and stats[1]["dedup"]["near_removed"] > 0
    by_minhash = {r["id"] for r in rejected if r["reason"] == "contaminated" and "MinHash Jaccard" in r["detail"]}
    assert by_minhash == {f"ex{3000 + k:04d}" for k in range(20)} and stats[1]["decontamination"]["flagged_by_minhash"] == 20
