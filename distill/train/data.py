"""From curated Examples to what SFTTrainer trains on, and the checks on its loss mask.

A single-turn Example becomes TRL's conversational prompt/completion form (prompt = every turn before the last
assistant turn, completion = that assistant turn), so TRL computes the loss on the completion only.
A conversation (several assistant turns, tool calls, tools, or reasoning trained on) is tokenised here, turn
by turn as the student's template renders it (`distill.tool_calls.chat_for_template`), with the loss on every
assistant turn and nothing else: SmolLM2's template has no `{% generation %}` markers, so TRL's
`assistant_only_loss` cannot find the turns. SFTTrainer takes such rows (`input_ids`, `labels`) as they are.
After tokenising, `align_labels` makes sure the end-of-turn token is learned (so the model stops) and
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
from distill.tool_calls import chat_for_template, template_renders_tools

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
    usable = [example for example in train if has_assistant_turn(example)]
    if not usable:
        raise DistillError("no training example has an assistant turn to learn from", path=run_dir.train)
    return usable, held_out


def has_assistant_turn(example: Example) -> bool:
    """Whether the example has an assistant turn to learn: an answer, or tool calls (whose text may be empty)."""
    return any(m.role == "assistant" and (m.content or m.tool_calls) for m in example.messages)


def to_prompt_completion(example: Example) -> dict:
    """TRL's conversational prompt/completion row: the loss falls on the last assistant turn only."""
    messages = [m.model_dump() for m in example.messages]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return {"prompt": messages[:last], "completion": [messages[last]]}


def is_conversation(example: Example, reasoning: bool = False) -> bool:
    """Whether the example trains on more than its last assistant turn's text: several assistant turns, tools or
    tool calls, or (with `reasoning`) an assistant turn's reasoning."""
    assistants = [m for m in example.messages if m.role == "assistant"]
    return (len(assistants) > 1 or bool(example.tools) or any(m.role == "tool" for m in example.messages)
            or any(m.tool_calls for m in assistants) or (reasoning and any(m.reasoning for m in assistants)))


def tokenize_turns(example: Example, tokenizer, reasoning: bool = False) -> dict[str, list[int]]:
    """`input_ids` and `labels` of a conversation: every assistant turn (its text, its tool calls as the template
    renders them, its end-of-turn) labelled, every other turn and the tool definitions masked.

    The conversation is rendered up to each assistant turn (with the generation prompt) and through it; the
    difference is the turn as the model writes it. Each piece is tokenised on its own, as eval and serving
    tokenise a prompt and then generate: the boundary tokens are the ones the model meets at inference.
    """
    chat, tools = chat_for_template(example.messages, example.tools, template_renders_tools(tokenizer.chat_template),
                                    reasoning=reasoning)

    def render(turns: list[dict], generation_prompt: bool = False) -> str:
        return tokenizer.apply_chat_template(turns, tools=tools, tokenize=False,
                                             add_generation_prompt=generation_prompt)

    input_ids: list[int] = []
    labels: list[int] = []
    done = ""
    for i, turn in enumerate(chat):
        if turn["role"] != "assistant":
            continue
        before, through = render(chat[:i], generation_prompt=True), render(chat[: i + 1])
        if not (before.startswith(done) and through.startswith(before)):
            # e.g. a template that drops earlier turns' reasoning: the turns are not one text read left to right
            raise DistillError(f"example {example.id}: the student's chat template renders an earlier turn "
                               "differently once later turns follow, so the assistant turns cannot be located; "
                               "train this conversation with a student whose template renders turns in order")
        for text, learned in ((before[len(done):], False), (through[len(before):], True)):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            input_ids += ids
            labels += ids if learned else [IGNORE] * len(ids)
        done = through
    return {"input_ids": input_ids, "labels": labels}


def build_dataset(examples: list[Example], tokenizer=None, reasoning: bool = False):
    """The rows SFTTrainer trains on: TRL's prompt/completion form when every example is single-turn (TRL
    tokenises and masks them), else every example tokenised here with the loss on each assistant turn (one
    dataset holds one form)."""
    from datasets import Dataset

    if tokenizer is None or not any(is_conversation(example, reasoning) for example in examples):
        return Dataset.from_list([to_prompt_completion(example) for example in examples])
    return Dataset.from_list([tokenize_turns(example, tokenizer, reasoning) for example in examples])


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
