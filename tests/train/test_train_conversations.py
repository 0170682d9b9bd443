"""Conversations with tool calls: the loss falls on every assistant turn (its text, its calls, its end-of-turn)
and on nothing else, checked on token ids with the real SmolLM2 tokenizer."""

from __future__ import annotations

import math

import pytest

from distill.records import Example
from distill.tool_calls import parse_turn
from distill.train import data
from train_helpers import conversation_rows, fast_config, make_run, toy_rows

IGNORE = -100


@pytest.fixture(scope="module")
def tokenizer():
    from distill.models import load_tokenizer

    return load_tokenizer("local")


def chatml_turns(ids: list[int], tokenizer) -> list[tuple[str, int, int]]:
    """(role, first body token, its <|im_end|>) of each ChatML turn, read from the token ids alone."""
    start, end = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    turns, i = [], 0
    while i < len(ids):
        if ids[i] != start:
            i += 1
            continue
        body = i + 1
        while not tokenizer.decode(ids[i + 1 : body]).endswith("\n"):
            body += 1
        close = ids.index(end, body)
        turns.append((tokenizer.decode(ids[i + 1 : body]).strip(), body, close))
        i = close + 1
    return turns


def check_row(ids: list[int], labels: list[int], tokenizer, example: Example) -> list[str]:
    """Every labelled token lies in an assistant turn's body or is its <|im_end|>, every such token is labelled,
    nothing else is; one turn per assistant message. Returns the labelled text of each assistant turn."""
    turns = chatml_turns(ids, tokenizer)
    assistant = [(body, close) for role, body, close in turns if role == "assistant"]
    assert len(assistant) == sum(m.role == "assistant" for m in example.messages)
    expected = {i for body, close in assistant for i in range(body, close + 1)}
    labelled = {i for i, label in enumerate(labels) if label != IGNORE}
    assert labelled == expected
    assert all(labels[i] == ids[i] for i in labelled)
    for role, body, close in turns:
        if role != "assistant":  # system (with the tool definitions), user and tool results: never learned
            assert all(labels[i] == IGNORE for i in range(body - 2, close + 1))
    assert all(close > body for body, close in assistant)  # each turn has text besides its end-of-turn
    return [tokenizer.decode(ids[body:close]) for body, close in assistant]


def test_a_conversation_is_trained_on_every_assistant_turn_and_its_tool_calls(tokenizer):
    example = Example.model_validate(conversation_rows(1)[0])
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    row = data.tokenize_turns(example, tokenizer)
    labels = data.align_labels(row["labels"], row["input_ids"], eot)
    call, answer, thanks = check_row(row["input_ids"], labels, tokenizer, example)
    parsed = parse_turn(call)
    assert [c.function for c in parsed.tool_calls] == [c.function for c in example.messages[2].tool_calls or []]
    assert parsed.reasoning is None and "<think>" not in tokenizer.decode(row["input_ids"])
    assert (answer, thanks) == (example.messages[4].content, example.messages[6].content)
    prompt = tokenizer.decode(row["input_ids"])
    assert '"name": "convert"' in prompt and "<tool_response>" in prompt  # tools and results, as context only


def test_reasoning_switch_trains_the_reasoning_before_the_call(tokenizer):
    example = Example.model_validate(conversation_rows(1)[0])
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    row = data.tokenize_turns(example, tokenizer, reasoning=True)
    labels = data.align_labels(row["labels"], row["input_ids"], eot)
    call = check_row(row["input_ids"], labels, tokenizer, example)[0]
    parsed = parse_turn(call)
    assert parsed.reasoning == example.messages[2].reasoning and parsed.tool_calls[0].function.name == "get_weather"


def test_single_turn_examples_keep_the_prompt_completion_form(tokenizer):
    examples = [Example.model_validate(r) for r in toy_rows(3)]
    assert data.build_dataset(examples, tokenizer).column_names == ["prompt", "completion"]
    mixed = data.build_dataset(examples + [Example.model_validate(conversation_rows(1)[0])], tokenizer)
    assert mixed.column_names == ["input_ids", "labels"]


@pytest.mark.model
def test_trl_keeps_the_conversation_labels_of_a_mixed_dataset(tokenizer, tmp_path):
    from distill.models import load_causal_lm
    from distill.train.sft import build_trainer, prepare_labels

    examples = [Example.model_validate(r) for r in toy_rows(3) + conversation_rows(3)]
    config = fast_config(max_length=512)
    trainer = build_trainer(load_causal_lm("local"), tokenizer, examples, [], config, tmp_path, cuda=False,
                            checkpointing=False)
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    stats = prepare_labels(trainer, eot, config.max_length)
    assert stats.rows == 6 and stats.rows_with_eot == 6
    by_user = {e.prompt if len(e.messages) == 3 else e.messages[1].content: e for e in examples}
    seen = set()
    for row in trainer.train_dataset:
        text = tokenizer.decode(row["input_ids"])
        example = next(e for user, e in by_user.items() if f"user\n{user}<|im_end|>" in text)
        check_row(row["input_ids"], row["labels"], tokenizer, example)
        seen.add(example.id)
    assert len(seen) == 6


@pytest.mark.train
@pytest.mark.model
def test_a_short_run_on_conversations_trains_and_its_adapter_loads(tmp_path):
    import torch

    from distill.evaluate.generate import load_student
    from distill.train.sft import train

    run = make_run(tmp_path / "run", conversation_rows(6))
    result = train(run, fast_config(max_steps=2, max_length=512, reasoning=True, eval_before=False), progress=False)
    assert result.train_loss_first is not None and math.isfinite(result.train_loss_first)
    assert result.train_loss_last is not None and math.isfinite(result.train_loss_last)
    assert result.mask.rows_with_eot == result.mask.rows and result.mask.labelled_fraction > 0.1
    model, tok, manifest = load_student(result.adapter_dir)
    assert manifest.config["reasoning"] is True
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        assert torch.isfinite(model(**ids).logits).all()
