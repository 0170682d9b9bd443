"""The loss mask, checked token by token with the real SmolLM2 tokenizer and TRL's own preparation."""

from __future__ import annotations

import json

import pytest

from distill.errors import DistillError
from distill.records import Example
from distill.train import data
from train_helpers import fast_config, make_run, toy_rows

IGNORE = -100


@pytest.fixture(scope="module")
def tokenizer():
    from distill.models import load_tokenizer

    return load_tokenizer("local")


def test_prompt_completion_split_keeps_the_answer_only_in_the_completion():
    example = Example.model_validate(toy_rows(2)[1])
    row = data.to_prompt_completion(example)
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["completion"] == [{"role": "assistant", "content": example.response}]


def test_end_of_turn_token_of_smollm2(tokenizer):
    assert data.end_of_turn_token(tokenizer) == "<|im_end|>"


@pytest.mark.model
def test_labels_are_exactly_the_answer_and_end_of_turn(tokenizer, tmp_path):
    from distill.models import load_causal_lm
    from distill.train.sft import build_trainer, prepare_labels

    examples = [Example.model_validate(r) for r in toy_rows(4)]
    config = fast_config(max_length=256)
    trainer = build_trainer(load_causal_lm("local"), tokenizer, examples, [], config, tmp_path, cuda=False,
                            checkpointing=False)
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    stats = prepare_labels(trainer, eot, config.max_length)
    assert stats.rows == 4 and stats.rows_with_eot == 4
    by_answer = {e.response: e for e in examples}
    for row in trainer.train_dataset:
        ids, labels = row["input_ids"], row["labels"]
        labelled = [i for i, label in enumerate(labels) if label != IGNORE]
        assert labelled == list(range(labelled[0], labelled[-1] + 1))  # one contiguous span
        assert all(labels[i] == ids[i] for i in labelled)
        assert ids[labelled[-1]] == eot  # the model learns to stop ...
        assert all(label == IGNORE for label in labels[labelled[-1] + 1 :])  # ... and nothing after it
        answer = tokenizer.decode(ids[labelled[0] : labelled[-1]])
        assert answer in by_answer  # exactly the assistant's content, no template, no prompt
        prompt = tokenizer.decode(ids[: labelled[0]])
        assert prompt.endswith("<|im_start|>assistant\n") and by_answer[answer].prompt in prompt


def test_align_labels_unmasks_a_missing_end_of_turn_and_masks_the_tail():
    eot = 2
    ids = [5, 6, 7, 8, 2, 9, 5, 7, 2, 9]
    labels = [IGNORE, IGNORE, 7, 8, IGNORE, IGNORE, IGNORE, 7, 2, 9]  # packed: two spans
    assert data.align_labels(labels, ids, eot) == [IGNORE, IGNORE, 7, 8, 2, IGNORE, IGNORE, 7, 2, IGNORE]


def test_mask_check_refuses_all_masked_labels():
    stats = data.MaskStats(rows=3, tokens=3000, labelled_tokens=10, rows_with_eot=0, labelled_fraction=10 / 3000)
    with pytest.raises(DistillError, match=r"only 0\.33% of label tokens"):
        data.check_mask(stats, max_length=64)
    data.check_mask(stats.model_copy(update={"labelled_fraction": 0.02}), max_length=64)


@pytest.mark.model
def test_training_refuses_when_truncation_leaves_no_answer(tmp_path):
    from distill.train.sft import train

    rows = toy_rows(6)
    for row in rows:
        row["messages"][0]["content"] = "Be careful. " * 40  # the prompt alone fills max_length
    with pytest.raises(DistillError, match="label tokens are trained on"):
        train(make_run(tmp_path / "run", rows), fast_config(max_length=32), progress=False)


def test_split_is_written_and_reused(tmp_path):
    run = make_run(tmp_path / "run")
    train, held_out = data.load_splits(run)
    # 20 sentiment and 16 nature examples give 2 each; fruit's 4 are under the 10 a stratum needs at 10%.
    assert len(held_out) == 4 and {e.meta.taxonomy_path for e in held_out} == {"colours/nature", "sentiment"}
    assert not {e.id for e in train} & {e.id for e in held_out}
    # A curated split already there wins over dataset.jsonl.
    (run / "eval.jsonl").write_text((run / "train.jsonl").read_text().splitlines()[0] + "\n")
    _, again = data.load_splits(run)
    assert [e.id for e in again] == [train[0].id]


@pytest.mark.parametrize("content, message", [
    (None, "run directory does not exist"),
    ("", "dataset.jsonl is empty"),
    ("{not json\n", "dataset.jsonl:1: not valid JSON"),
    (json.dumps({"id": 1}) + "\n", "not an Example"),
])
def test_bad_run_directories_are_one_line_errors(tmp_path, content, message):
    run = tmp_path / "run"
    if content is not None:
        run.mkdir()
        (run / "dataset.jsonl").write_text(content)
    with pytest.raises(DistillError, match=message):
        data.load_splits(run)


def test_missing_dataset_says_what_to_run(tmp_path):
    with pytest.raises(DistillError, match="no dataset.jsonl here"):
        data.load_splits(tmp_path)
