"""The data formats people bring, read by `distill curate`, held-out sets and seed files (docs/formats.md): every
example row of the docs' table curated through the installed script, a ShareGPT conversation kept turn by turn,
`save_to_disk` and Hub-layout folders, and a row of no format (or of two) stopping with one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli_helpers import ROOT, cli_env, distill, error_lines
from distill.records import Example, read_jsonl
from distill.taxonomy import load_taxonomy

QUESTION = "How long should an egg boil for a runny yolk?"
ANSWER = "About six minutes, then cool it in cold water."
TABLE = re.compile(r"<!-- formats: start -->\n(.*?)<!-- formats: end -->", re.S)


def table_rows() -> list[tuple[str, str]]:
    """(format name, example row) of each line of docs/formats.md's table of row formats."""
    table = TABLE.search((ROOT / "docs" / "formats.md").read_text(encoding="utf-8"))
    assert table is not None
    rows = []
    for line in table.group(1).splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows.append((cells[1].strip("`"), cells[3].removeprefix("`").removesuffix("`")))
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def curated(tmp_path: Path, source: Path, *options: str) -> list[Example]:
    out = tmp_path / f"{source.name}-curated"
    done = distill("curate", str(source), "--out", str(out), *options, cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    return [Example.model_validate(row) for row in read_jsonl(out / "dataset.jsonl")]


def turns(example: Example) -> list[tuple[str, str]]:
    return [(message.role, message.content) for message in example.messages]


@pytest.mark.slow
@pytest.mark.parametrize("name,row", table_rows(), ids=[name for name, _ in table_rows()])
def test_each_format_in_the_docs_table_is_curated_into_messages(tmp_path, name, row):
    data = json.loads(row)
    assert QUESTION in row and ANSWER in row  # the table's examples all say the same exchange
    source = write_jsonl(tmp_path / "rows.jsonl", [data])
    system = [("system", "You are a cook.")] if "You are a cook." in row else []
    for options in ((), ("--input-format", name)):
        [example] = curated(tmp_path, source, *options)
        assert turns(example) == [*system, ("user", QUESTION), ("assistant", ANSWER)], options


@pytest.mark.slow
def test_a_sharegpt_conversation_keeps_every_turn(tmp_path):
    conversation = [
        {"from": "system", "value": "You plan train journeys and check the timetable tool before answering."},
        {"from": "human", "value": "Which train gets me from Leeds to York before nine in the morning?"},
        {"from": "function_call", "value": '{"name": "timetable", "arguments": {"from": "Leeds", "to": "York"}}'},
        {"from": "observation", "value": '{"departures": ["08:12", "08:41"], "minutes": 25}'},
        {"from": "gpt", "value": "The 08:12 from Leeds reaches York at 08:37, well before nine o'clock."},
        {"from": "user", "value": "And if I miss that one, is the next train still early enough for me?"},
        {"from": "tool", "value": '{"next": "08:41", "arrives": "09:06"}'},
        {"from": "assistant", "value": "The 08:41 arrives at 09:06, so it would be a few minutes after nine."},
    ]
    source = write_jsonl(tmp_path / "chats.jsonl", [{"id": 7, "conversations": conversation}])
    [example] = curated(tmp_path, source)
    roles = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
             "function_call": "assistant", "observation": "tool", "tool": "tool"}
    assert example.id == "7"
    assert turns(example) == [(roles[turn["from"]], turn["value"]) for turn in conversation]


@pytest.mark.slow
def test_a_save_to_disk_folder_and_a_hub_folder_are_read(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = [{"conversations": [{"from": "human", "value": f"Name a bird that lives near the sea, number {n}?"},
                               {"from": "gpt", "value": f"The puffin nests on sea cliffs, answer number {n}."}]}
            for n in range(3)]
    saved = tmp_path / "saved"
    DatasetDict({"train": Dataset.from_list(rows[:2]), "test": Dataset.from_list(rows[2:])}).save_to_disk(str(saved))
    assert [turns(e)[0][1] for e in curated(tmp_path, saved)] == [rows[n]["conversations"][0]["value"] for n in (0, 1)]

    hub = tmp_path / "hub"
    (hub / "data").mkdir(parents=True)
    Dataset.from_list(rows[:2]).to_parquet(str(hub / "data" / "train-00000-of-00001.parquet"))
    Dataset.from_list(rows[2:]).to_parquet(str(hub / "data" / "test-00000-of-00001.parquet"))
    (hub / "README.md").write_text("---\nlicense: mit\n---\n")
    assert [turns(e) for e in curated(tmp_path, hub)] == \
        [[("user", r["conversations"][0]["value"]), ("assistant", r["conversations"][1]["value"])] for r in rows[:2]]

    flat = tmp_path / "flat"  # the splits as files at the top: train.jsonl beside test.jsonl
    flat.mkdir()
    write_jsonl(flat / "train.jsonl", rows[:2])
    write_jsonl(flat / "test.jsonl", rows[2:])
    assert [turns(e)[0][1] for e in curated(tmp_path, flat)] == [rows[n]["conversations"][0]["value"] for n in (0, 1)]


@pytest.mark.slow
def test_a_row_of_no_format_or_of_two_is_one_line_and_exit_2(tmp_path):
    source = write_jsonl(tmp_path / "rows.jsonl", [
        {"question": "What is the capital of France?", "reply": "Paris is the capital of France."},
        {"prompt": "Say hello to the new neighbours.", "completion": "Hello, and welcome to the street!"}])
    done = distill("curate", str(source), "--out", str(tmp_path / "out"), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        f"error: {source}:1: no known row format (its fields: question, reply); distill reads OpenAI messages "
        "(messages), ShareGPT conversations (sharegpt), Alpaca instruction/input/output (alpaca), prompt/completion "
        "(prompt-completion); see docs/formats.md"]
    assert not (tmp_path / "out").exists()  # the first row is checked before the output folder is made

    both = write_jsonl(tmp_path / "both.jsonl", [{"instruction": "Greet the reader warmly.", "output": "Hello there!",
                                                  "prompt": "Greet the reader.", "completion": "Hi, welcome!"}])
    done = distill("curate", str(both), "--out", str(tmp_path / "out"), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2 and error_lines(done.stderr) == [
        f"error: {both}:1: the row has the fields of alpaca and prompt-completion; pick one with --input-format; "
        "see docs/formats.md"]
    [example] = curated(tmp_path, both, "--input-format", "alpaca", "--min-words", "1")
    assert turns(example) == [("user", "Greet the reader warmly."), ("assistant", "Hello there!")]


@pytest.mark.slow
def test_chat_heldout_sets_are_decontaminated_against_their_user_turns(tmp_path):
    held = "Which enzyme in saliva starts to break down starch in the mouth before swallowing?"
    heldout = write_jsonl(tmp_path / "held.jsonl", [{"conversations": [
        {"from": "human", "value": held}, {"from": "gpt", "value": "Salivary amylase."}]}])
    # A Hub-layout folder: its test split is the held-out set, its train split is not.
    onions = "Why do onions make people cry when they are chopped on a board?"
    bread = "Why does bread go stale faster in the fridge than on the counter?"
    (tmp_path / "hub" / "data").mkdir(parents=True)
    write_jsonl(tmp_path / "hub" / "data" / "test-00000-of-00001.jsonl",
                [{"messages": [{"role": "user", "content": onions}, {"role": "assistant", "content": "A gas."}]}])
    write_jsonl(tmp_path / "hub" / "data" / "train-00000-of-00001.jsonl",
                [{"messages": [{"role": "user", "content": bread}, {"role": "assistant", "content": "Starch."}]}])
    data = write_jsonl(tmp_path / "data.jsonl", [
        {"prompt": held, "completion": "Salivary amylase starts breaking starch down into sugars in the mouth."},
        {"prompt": onions, "completion": "Chopping releases a gas that irritates the eyes, which then make tears."},
        {"prompt": bread, "completion": "The cold speeds up how the starch crystallises, so the crumb firms up."}])
    out = tmp_path / "out"
    done = distill("curate", str(data), "--out", str(out), "--heldout", str(heldout), "--heldout",
                   str(tmp_path / "hub"), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert [turns(Example.model_validate(r))[0][1] for r in read_jsonl(out / "dataset.jsonl")] == [bread]
    assert [json.loads(line)["reason"] for line in (out / "rejected.jsonl").read_text().splitlines()] == \
        ["contaminated", "contaminated"]


@pytest.mark.slow
def test_seed_files_in_chat_formats_become_question_answer_seeds(tmp_path):
    (tmp_path / "seeds").mkdir()
    write_jsonl(tmp_path / "seeds" / "kitchen.jsonl", [
        {"id": "egg", "conversations": [{"from": "human", "value": QUESTION}, {"from": "gpt", "value": ANSWER}]},
        {"instruction": "How do I keep cut apples from browning?", "input": "",
         "output": "Brush them with lemon juice."},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why rest meat?"},
                      {"role": "assistant", "content": "So its juices settle."}]}])
    taxonomy = tmp_path / "kitchen.yaml"
    taxonomy.write_text("name: kitchen\ndescription: Kitchen questions\ntask: qa\nsystem_prompt: You are a cook.\n"
                        "tree:\n  cooking:\n    description: Cooking at home\n    seeds: seeds/kitchen.jsonl\n")
    done = distill("taxonomy", "validate", str(taxonomy), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    [leaf] = load_taxonomy(taxonomy).leaves
    assert [(s.id, s.question, s.answer) for s in leaf.seeds] == [
        ("egg", QUESTION, ANSWER), ("kitchen-2", "How do I keep cut apples from browning?",
                                    "Brush them with lemon juice."), ("kitchen-3", "Why rest meat?",
                                                                      "So its juices settle.")]
