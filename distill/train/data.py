"""From curated Examples to what SFTTrainer trains on, and the checks on its loss mask.

Each Example becomes TRL's conversational prompt/completion form (prompt = every turn before the last
assistant turn, completion = that assistant turn), so TRL computes the loss on the completion only.
After TRL tokenises, `align_labels` makes sure the end-of-turn token is learned (so the model stops) and
nothing after it is, and `mask_stats` refuses a mask that would train on (almost) nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from distill.curate.split import current
from distill.errors import DistillError
from distill.records import Example
from distill.review.feedback import rebuild_split
from distill.rundir import RunDir

MIN_LABELLED_FRACTION = 0.01
IGNORE = -100


def load_splits(run_dir: Path | RunDir, eval_fraction: float = 0.1, seed: int = 0,
                say: Callable[[str], None] | None = None) -> tuple[list[Example], list[Example]]:
    """The run's (train, eval) split as training reads it: the one split (curate/split.py `current`: made and
    written when the run has none yet, following the dataset when it has), with the review applied to it.

    `say` gets what a person should know: what the split pooled, and why an eval split is small or empty.
    """
    say = say or (lambda line: None)
    run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if not run_dir.root.is_dir():
        raise DistillError("run directory does not exist", path=run_dir.root)
    had_split = run_dir.has_split()
    train, held_out = current(run_dir, eval_fraction, seed, say)
    # A split written before the review, or carved from a dataset of the user's (which the review leaves as
    # written), must not train on what the review rejected or fixed: the review stage rewrites it.
    if rebuild_split(run_dir):
        train, held_out = run_dir.read_split()
    if had_split and not held_out:
        note = (run_dir.recorded_split() or {}).get("note")
        say(f"note: {run_dir.eval} is empty: no eval loss, and `distill eval` will have nothing to score"
            + (f" ({note})" if note else "; re-split with `distill split` after generating more"))
    usable = [example for example in train if example.response]
    if not usable:
        raise DistillError("no training example has an assistant turn to learn from", path=run_dir.train)
    return usable, held_out


def to_prompt_completion(example: Example) -> dict:
    """TRL's conversational prompt/completion row: the loss falls on the last assistant turn only."""
    messages = [m.model_dump() for m in example.messages]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return {"prompt": messages[:last], "completion": [messages[last]]}


def build_dataset(examples: list[Example]):
    from datasets import Dataset

    return Dataset.from_list([to_prompt_completion(example) for example in examples])


def end_of_turn_token(tokenizer) -> str:
    """The token the student's template closes an assistant turn with (`<|im_end|>` for SmolLM2).

    Found by rendering a turn with a sentinel: whatever special token follows the content is the one the
    model must learn to emit to stop. Falls back to the tokenizer's EOS.
    """
    sentinel = "Sentinel-7f3a"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": sentinel}], tokenize=False
    )
    suffix = text.split(sentinel, 1)[1] if sentinel in text else ""
    specials = sorted(set(tokenizer.all_special_tokens) | set(getattr(tokenizer, "added_tokens_encoder", {})),
                      key=len, reverse=True)
    for position in range(len(suffix)):
        for token in specials:
            if token and suffix.startswith(token, position):
                return token
    if tokenizer.eos_token is None:
        raise DistillError("the student's tokenizer has no end-of-turn or EOS token: cannot teach it to stop")
    return tokenizer.eos_token


def align_labels(labels: list[int], input_ids: list[int], eot_id: int) -> list[int]:
    """Labels with the end-of-turn token learned and the template's tail after it ignored.

    Works span by span (a packed row holds several): within a labelled span everything after the first
    end-of-turn is masked; a span that stops right before an end-of-turn gets that token unmasked.
    """
    labels = list(labels)
    inside = False
    closed = False
    for i, token in enumerate(input_ids):
        if labels[i] == IGNORE:
            if inside and not closed and token == eot_id:
                labels[i] = token  # the template put the end-of-turn outside the completion: learn it anyway
                closed = True
                continue
            inside, closed = False, False
            continue
        if not inside:
            inside, closed = True, False
        if closed:
            labels[i] = IGNORE  # e.g. the newline after <|im_end|>: template, not answer
        elif token == eot_id:
            closed = True
    return labels


def align_dataset(dataset, eot_id: int):
    return dataset.map(lambda row: {"labels": align_labels(row["labels"], row["input_ids"], eot_id)})


class MaskStats(BaseModel):
    """What the loss will see: a few per cent of label tokens is normal for long prompts, zero is a bug."""

    rows: int
    tokens: int
    labelled_tokens: int
    rows_with_eot: int  # rows whose labels include the end-of-turn token (truncated ones do not)
    labelled_fraction: float


def mask_stats(dataset, eot_id: int) -> MaskStats:
    tokens = labelled = with_eot = 0
    for row in dataset:
        tokens += len(row["input_ids"])
        labelled += sum(1 for label in row["labels"] if label != IGNORE)
        with_eot += any(label == eot_id for label in row["labels"])
    return MaskStats(rows=len(dataset), tokens=tokens, labelled_tokens=labelled, rows_with_eot=with_eot,
                     labelled_fraction=labelled / tokens if tokens else 0.0)


def check_mask(stats: MaskStats, max_length: int) -> None:
    """Refuse the "all labels are -100" failure before it wastes a training run."""
    if stats.labelled_fraction < MIN_LABELLED_FRACTION:
        raise DistillError(
            f"only {stats.labelled_fraction:.2%} of label tokens are trained on (need >= {MIN_LABELLED_FRACTION:.0%}):"
            f" the answers are masked out or truncated away; raise max_length (now {max_length}) or check that"
            " the examples end with an assistant turn"
        )
