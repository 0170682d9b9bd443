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

from distill.errors import DistillError
from distill.owned import OwnedFolder
from distill.records import Example, read_examples

MIN_LABELLED_FRACTION = 0.01
IGNORE = -100


def load_splits(run_dir: Path, eval_fraction: float = 0.1, seed: int = 0,
                say: Callable[[str], None] | None = None) -> tuple[list[Example], list[Example]]:
    """The run's (train, eval) split; makes and writes one (curation's split) when the run has none yet.

    Writing it matters: `distill eval` must see exactly the examples training never saw. `say` gets
    what a person should know: what the split pooled, and why an eval split is small or empty.
    """
    from distill.curate.split import dataset_digest, read_split, recorded_split, save_split, stratified_split

    say = say or (lambda line: None)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DistillError("run directory does not exist", path=run_dir)
    train_path, eval_path = run_dir / "train.jsonl", run_dir / "eval.jsonl"
    if train_path.is_file() and eval_path.is_file():
        # Examples generated (or reviewed) after the split must not be left out forever.
        train, held_out, update = read_split(run_dir, eval_fraction, seed)
        if update is not None:
            say(f"split: {update.describe()}")
        # A split written before the review must not train on what the review rejected or fixed.
        reviewed_train, reviewed_eval = apply_review(run_dir, train), apply_review(run_dir, held_out)
        if (reviewed_train, reviewed_eval) != (train, held_out):
            train, held_out = reviewed_train, reviewed_eval
            folder = OwnedFolder.in_place(run_dir)
            folder.check_all(("train.jsonl", "eval.jsonl"))
            folder.write_jsonl("train.jsonl", train)
            folder.write_jsonl("eval.jsonl", held_out)
        if not held_out:
            note = (recorded_split(run_dir) or {}).get("note")
            say(f"note: {eval_path} is empty: no eval loss, and `distill eval` will have nothing to score"
                + (f" ({note})" if note else "; re-split with `distill split` after generating more"))
    else:
        dataset = run_dir / "dataset.jsonl"
        if not dataset.is_file():
            raise DistillError("no dataset.jsonl here: run `distill generate` / `distill curate` first", path=run_dir)
        examples = apply_review(run_dir, read_examples(dataset))
        if not examples:
            raise DistillError("dataset.jsonl is empty: nothing to train on", path=dataset)
        split = stratified_split(examples, fraction=eval_fraction, seed=seed)
        save_split(run_dir, split, dataset_digest(run_dir))
        for line in split.describe():
            say(f"split: {line}")
        train, held_out = split.train, split.eval
    usable = [example for example in train if example.response]
    if not usable:
        raise DistillError("no training example has an assistant turn to learn from", path=train_path)
    return usable, held_out


def apply_review(run_dir: Path, examples: list[Example]) -> list[Example]:
    """What survives the run's human review (rejected items out, edits in); unchanged without a queue."""
    from distill.review.feedback import apply_to_run

    return apply_to_run(run_dir, examples)[0]


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
