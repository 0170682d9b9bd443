"""`distill export`: a run's split as a dataset folder that `datasets` loads as it is, with a card that validates."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from distill.errors import DistillError
from distill.export.dataset import DatasetExportOptions, export_dataset
from distill.export.dataset_card import check_dataset_card
from distill.records import Example, read_examples
from distill.review.figures import NO_REVIEW, review_lines
from train_helpers import conversation_rows, make_run, toy_rows

# The shape `distill review` writes into stats.json (distill.review.feedback.summary).
REVIEW = {"queued": 48, "reviewed": 40, "accepted": 35, "rejected": 4, "edited": 1, "skipped": 2, "open_reviews": 0,
          "items_judged": 40, "reject_rate": 0.1, "reject_rate_ci": [0.04, 0.23], "interval": "95% wilson",
          "gate": {"verdict": "pass", "threshold": 0.2, "message": "upper bound 23.0% ... under 20%?",
                   "min_reviews_per_branch": 10, "reviews_to_decide": None},
          "top_reasons": {"wrong_fact": 3, "tone": 1},
          "agreement": {"method": "cohen", "kappa": 0.71, "items": 12, "reviewers": 2, "percent_agreement": 0.92},
          "reviewers": {"ann": 30, "bob": 22}, "median_seconds_per_item": 14.5, "overall": {"items": 48},
          "branches": {"colours": {"items": 24, "reviewed": 20, "rejected": 1, "edited": 0, "accepted": 19,
                                   "reject_rate": 0.05, "ci": [0.01, 0.24], "judged": 20, "verdict": "pass"},
                       "sentiment": {"items": 24, "reviewed": 0}}}


def stats(review: dict | None = None) -> dict:
    data = {"taxonomy": "toy", "task": "qa", "run": {"teacher": "local", "seed": 0},
            "counts": {"planned": 44, "generated": 42, "valid": 41, "kept": 40, "rejected": 2, "failed": 2},
            "reject_reasons": {"too_short": 1, "near_duplicate": 1},
            "nodes": {"(all)": {"planned": 44, "kept": 40}, "colours": {"planned": 24},
                      "colours/fruit": {"planned": 12, "generated": 12, "kept": 11, "rejects": {"too_short": 1}},
                      "colours/nature": {"planned": 12, "generated": 11, "kept": 10}},
            "curation": {"curate": {"generated": 42, "valid": 41, "unique": 40, "clean": 40, "kept": 40,
                                    "dedup": {"exact_removed": 0, "near_removed": 1, "threshold": 0.7,
                                              "num_perm": 128, "bands": 18, "rows": 7, "shingle_size": 5},
                                    "decontamination": {"heldout": ["/data/pubmedqa.json"], "heldout_items": 1000,
                                                        "ngram": 8, "flagged": 0, "flagged_at_13": 0}}}}
    if review is not None:
        data["review"] = review
    return data


def rows_with_provenance() -> list[dict]:
    rows = toy_rows()
    for i, row in enumerate(rows):
        row["meta"].update(axes={"difficulty": ["easy", "hard"][i % 2]}, seed_ids=[f"seed-{i % 3}"],
                           sampling={"temperature": 0.8, "top_p": 0.95, "max_tokens": 64, "seed": i},
                           usage={"prompt_tokens": 10 + i, "completion_tokens": 5, "cost_usd": 0.001},
                           plan_item_id=f"p{i}", prompt_sha256="ab" * 32, quality=0.5)
    rows[0]["meta"]["axes"]["audience"] = "patient"  # an axis only one (training) example has
    return rows


@pytest.fixture
def exported(tmp_path):
    run = make_run(tmp_path / "run", rows_with_provenance(), stats(REVIEW))
    result = export_dataset(run, DatasetExportOptions(out=tmp_path / "ds", license="cc-by-4.0"))
    return run, result


def test_datasets_loads_the_folder_as_it_is(exported):
    from datasets import load_dataset

    run, result = exported
    loaded = load_dataset(str(result.folder))
    train = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    held_out = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert set(loaded) == {"train", "test"}
    assert (loaded["train"].num_rows, loaded["test"].num_rows) == (len(train), len(held_out))
    assert len(train) + len(held_out) == 40 and held_out  # every example, and a held-out part to test on
    assert loaded["train"].column_names[:5] == ["id", "messages", "task", "taxonomy", "taxonomy_path"]
    assert {"axis_audience", "axis_difficulty", "seed_ids", "teacher", "prompt_tokens", "cost_usd", "output",
            "meta_extra"} <= set(loaded["test"].column_names)
    first = loaded["train"][0]
    assert first["id"] == train[0]["id"] and first["messages"] == train[0]["messages"]
    assert first["axis_audience"] == "patient" and first["seed_ids"] == ["seed-0"] and first["sampling_seed"] == 0
    assert json.loads(first["meta_extra"]) == {"quality": 0.5}
    by_id = {row["id"]: row for row in loaded["test"]}
    for row in held_out:  # the held-out split carries every column, empty where its examples lack a value
        assert by_id[row["id"]]["axis_audience"] is None
        assert (json.loads(by_id[row["id"]]["output"]) if by_id[row["id"]]["output"] else None) == row.get("output")


def test_card_validates_and_tells_where_the_data_came_from(exported):
    from huggingface_hub import DatasetCard

    _, result = exported
    assert check_dataset_card(result.card) == []
    card = DatasetCard.load(result.card)
    assert card.data.license == "cc-by-4.0" and card.data.language == ["en"]
    assert card.data.size_categories == ["n<1K"]
    assert {"question-answering", "text-classification", "text-generation"} == set(card.data.task_categories)
    assert [c["split"] for c in card.data.configs[0]["data_files"]] == ["train", "test"]
    text = card.text
    for expected in ("`local`", "| colours/fruit | 12 | 12 | 11 | 3 | 0 | too_short 1 |", "| too_short | 1 |",
                     "near duplicates removed: 1", "pubmedqa.json",
                     "Read 40 of 48 queued items: 35 accepted, 1 edited (the edits are used), 4 rejected (left out), 2 skipped",
                     "Reject rate 10.0% (95% wilson interval 4.0% to 23.0%) over 40 items judged",
                     "Gate: **pass**, threshold 20.0%", "wrong_fact (3)",
                     "Cohen's kappa 0.71, 92% agree", "ann (30)", "14.5 s of reading",
                     "| colours | 20 of 24 | 1 | 5.0% (1.0% to 24.0%) | pass |"):
        assert expected in text, expected


def test_card_checks_catch_a_broken_card(exported):
    _, result = exported
    text = result.card.read_text()
    broken = result.card.with_name("broken.md")
    broken.write_text(text.replace("path: data/test-*.parquet", "path: data/missing-*.parquet")
                      .replace("- n<1K", "- tiny").replace("- en\n", "- english\n"))
    problems = check_dataset_card(broken)
    assert any("split test: no file matches" in p for p in problems)
    assert any("size category 'tiny'" in p for p in problems) and any("'english'" in p for p in problems)
    broken.write_text(text.replace("  data_files:\n  - split: train", "  data_files:\n  - split: tr-ain"))
    assert any("refused by datasets" in p for p in check_dataset_card(broken))


def test_no_review_is_said_plainly(tmp_path):
    run = make_run(tmp_path / "run", stats=stats())
    result = export_dataset(run, DatasetExportOptions(out=tmp_path / "ds", license="mit"))
    assert NO_REVIEW in result.card.read_text()


def test_review_figures_in_other_shapes_still_render():
    lines = review_lines({"review": {"approved": 30, "rejected": 2, "reject_rate": {"value": 0.0625, "low": 0.02,
                                                                                    "high": 0.2},
                                     "top_reasons": [["off_topic", 2]], "kappa": 0.4, "sampled_from": "stratified"}})
    text = "\n".join(lines)
    assert "- Items: 30 approved, 2 rejected (left out)" in text and "6.2% (95% interval 2.0% to 20.0%)" in text
    assert "off-topic (2)" in text and "kappa 0.4" in text and "Sampled from: stratified" in text
    assert review_lines({}) == [NO_REVIEW] and review_lines({"review": {}}) == [NO_REVIEW]


def test_a_run_without_split_gets_the_curate_stage_split(tmp_path):
    from distill.curate.split import stratified_split

    rows = toy_rows()
    run = make_run(tmp_path / "run", rows)
    export_dataset(run, DatasetExportOptions(out=tmp_path / "ds", license="mit", split_fraction=0.2, seed=3))
    expected = stratified_split([Example.model_validate(r) for r in rows], fraction=0.2, seed=3).eval
    written = [json.loads(line)["id"] for line in (run / "eval.jsonl").read_text().splitlines()]
    assert written == [e.id for e in expected]


def test_shards_follow_the_size_limit_and_a_re_export_leaves_no_stale_shard(tmp_path):
    from datasets import load_dataset

    run = make_run(tmp_path / "run")
    out = tmp_path / "ds"
    many = export_dataset(run, DatasetExportOptions(out=out, license="mit", max_shard_bytes=2000))
    shards = many.files["train"]
    assert len(shards) > 3 and shards[0].name.endswith(f"-of-{len(shards):05d}.parquet")
    trained_on = len((run / "train.jsonl").read_text().splitlines())
    assert load_dataset(str(out))["train"].num_rows == trained_on
    export_dataset(run, DatasetExportOptions(out=out, license="mit"))
    assert sorted(p.name for p in (out / "data").iterdir()) == ["test-00000-of-00001.parquet",
                                                                "train-00000-of-00001.parquet"]
    assert load_dataset(str(out))["train"].num_rows == trained_on


@pytest.mark.parametrize("license_id", ["Apache 2.0", ""])
def test_bad_license_is_refused(tmp_path, license_id):
    with pytest.raises(DistillError, match="license"):
        export_dataset(make_run(tmp_path / "run"), DatasetExportOptions(out=tmp_path / "ds", license=license_id))


# --- as a user meets it: the console script ----------------------------------------------------------------

def distill(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distill.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_cli_writes_the_folder(tmp_path):
    run = make_run(tmp_path / "run", stats=stats(REVIEW))
    done = distill("export", str(run), "--out", str(tmp_path / "ds"), "--license", "apache-2.0")
    assert done.returncode == 0, done.stderr
    trained_on = len((run / "train.jsonl").read_text().splitlines())
    assert f"train: {trained_on} rows" in done.stdout and (tmp_path / "ds" / "README.md").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    ([], "choose the dataset's license with --license"),
    (["--license", "apache-2.0", "--language", "english"], "--language english: not an ISO 639 code"),
    (["--license", "apache-2.0", "--push-to-hub", "not a repo"], "is not a Hub repo id"),
    (["--license", "apache-2.0", "--push-to-hub", "just-a-name"], "give the owner too"),
])
def test_cli_mistakes_are_one_line(tmp_path, args, message):
    run = make_run(tmp_path / "run")
    done = distill("export", str(run), "--out", str(tmp_path / "ds"), *args)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


@pytest.mark.slow
def test_push_without_token_says_how_to_get_one(tmp_path):
    run = make_run(tmp_path / "run")
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": "", "HF_HUB_OFFLINE": "0"}
    done = distill("export", str(run), "--out", str(tmp_path / "ds"), "--license", "mit", "--push-to-hub", "me/toy",
                   env=env)
    assert done.returncode == 2 and "no Hugging Face token: set HF_TOKEN" in done.stderr
    assert "hf upload me/toy" in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "ds" / "README.md").is_file()  # written before the upload was tried


@pytest.mark.slow
def test_push_with_token_and_no_network_is_one_line(tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on: the connection is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = make_run(tmp_path / "run")
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": "hf_" + "x" * 30, "HF_HUB_OFFLINE": "0",
           "HF_ENDPOINT": f"http://127.0.0.1:{port}"}
    done = distill("export", str(run), "--out", str(tmp_path / "ds"), "--license", "mit", "--push-to-hub", "me/toy",
                   env=env)
    assert done.returncode == 2 and "cannot reach the Hugging Face Hub at http://127.0.0.1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "x" * 30 not in done.stderr + done.stdout  # the token is never printed


def test_conversations_export_their_tool_calls_and_tools(tmp_path):
    """Tool calls, tool results, reasoning and the tools column come back from the Parquet as they were written
    (arguments and tools as JSON text: one Arrow type a column); the card lists the tools."""
    from datasets import load_dataset

    run = make_run(tmp_path / "run", conversation_rows(6) + toy_rows(14), stats())
    result = export_dataset(run, DatasetExportOptions(out=tmp_path / "ds", license="mit"))
    records = {e.id: e for e in read_examples(run / "train.jsonl") + read_examples(run / "eval.jsonl")}
    loaded = load_dataset("parquet", data_files={split: [str(p) for p in paths]
                                                 for split, paths in result.files.items()})
    assert load_dataset(str(result.folder))["train"].features == loaded["train"].features
    rows = [row for split in loaded.values() for row in split]
    assert {row["id"] for row in rows} == set(records) and len(rows) == 20
    for row in rows:
        example = records[row["id"]]
        assert (json.loads(row["tools"]) if row["tools"] else None) == example.tools
        messages = []
        for turn in row["messages"]:
            for call in turn["tool_calls"] or []:
                call["function"]["arguments"] = json.loads(call["function"]["arguments"])
            messages.append({key: value for key, value in turn.items() if value is not None})
        assert messages == [m.model_dump() for m in example.messages]
    conversation = next(row for row in rows if row["id"] == "conv0")
    assert conversation["messages"][2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert conversation["messages"][3]["tool_call_id"] == "call0" and conversation["messages"][2]["reasoning"]
    card = (result.folder / "README.md").read_text()
    assert "## Tools" in card and "| `tools` |" in card
    assert "| `get_weather` | The current weather in a city. | 6 | 3 |" in card
    assert "| `convert` | Convert an amount of money between currencies. | 6 | 3 |" in card
    assert check_dataset_card(result.folder / "README.md") == []


def test_a_run_without_tools_keeps_plain_messages(tmp_path):
    from datasets import load_dataset

    run = make_run(tmp_path / "run", toy_rows(20), stats())
    result = export_dataset(run, DatasetExportOptions(out=tmp_path / "ds", license="mit"))
    train = load_dataset(str(result.folder))["train"]
    assert "tools" not in train.column_names and set(train.features["messages"].feature) == {"role", "content"}
    assert "## Tools" not in (result.folder / "README.md").read_text()
