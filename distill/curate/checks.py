"""Schema and content checks: what a reviewer would otherwise catch by hand.

Each check looks at one example and returns None (passes) or a `Failure(reason, detail)`. They work
on `messages` (and a conversation's `tools`) alone, so examples from any external JSONL are checked the same way;
only `off_topic` also reads the example's taxonomy node, and stands aside when the settings carry no taxonomy.
The checks of what only a conversation has (tool calls and results, repeated turns, reasoning) are in
`curate/conversation.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from distill.curate import conversation
from distill.curate.faithfulness import closed_book, leaning_phrase, passage_text, unsupported
from distill.curate.language import detect_language
from distill.curate.normalize import normalized_words_once
from distill.curate.topic import TopicIndex, TopicScore
from distill.curate.vocabulary import PRONOUNS, subject_words, words
from distill.records import Example, Failure
from distill.tasks.schema import SchemaError


class CheckSettings(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    min_words: int = 2
    max_words: int = 2000
    language: str | None = "en"
    labels: list[str] | None = None
    max_repeated_ngram_ratio: float = 0.3
    repetition_ngram: int = 3
    # A pydantic model, or a task's OutputSchema (distill/tasks/schema.py: JSON Schema or pydantic)
    output_schema: Any = None
    # A task's own checks (distill/tasks/checks.py): `example -> Failure | None`, run after the structural ones
    task_checks: tuple[Callable[[Example], Failure | None], ...] = ()
    # not_self_contained: words that, in this dataset, frame a question without naming its subject
    generic_words: frozenset[str] = frozenset()
    # off_topic: the taxonomy's nodes as TF-IDF profiles (None: no taxonomy, the check is skipped);
    # an example whose node scores under `min_topic_ratio` x the best other leaf is off topic.
    topics: TopicIndex | None = None
    min_topic_ratio: float = Field(0.3, ge=0)
    topic_judge: bool = False  # a judge teacher decides off_topic instead (curate/judge.py)
    faithful_judge: bool = False  # a judge teacher decides faithful instead (curate/judge.py)
    # tool_loop: assistant turns with tool calls allowed between two user turns
    max_tool_rounds: int = Field(4, ge=1)
    # faithful, closed_book: the text of each passage of the user's documents an example may rest on, by chunk id
    # (`meta.source.id`); an example whose passage is not here is not judged by them
    passages: dict[str, str] = Field(default_factory=dict)
    skip: frozenset[str] = frozenset()  # names of checks switched off, e.g. {"off_topic", "repetition"}


_REFUSAL = re.compile(
    r"\b(i(?:'m| am) sorry,? but i (?:can(?:no|')t|am unable|won't)|i can(?:no|')t (?:help|assist|provide|comply|answer)"
    r"|i(?:'m| am) (?:not able|unable) to (?:help|assist|provide|answer|comply)|i must decline|i won't be able to help)",
    re.IGNORECASE,
)
_AI_BOILERPLATE = re.compile(
    r"\b(as an ai\b|as a (?:large )?language model|i(?:'m| am) (?:just )?an ai\b|as an artificial intelligence"
    r"|i don't have (?:personal )?(?:opinions|feelings|emotions)|my training data|my knowledge cutoff)",
    re.IGNORECASE,
)
# Literals every match of each pattern above holds, in lower case: a text holding none cannot match, so the
# IGNORECASE alternations (13% of curation, issue 24) run only on the few that do.
_REFUSAL_LITERALS = ("sorry", "i can", "able to", "decline")
_AI_BOILERPLATE_LITERALS = ("an ai", "language model", "artificial intelligence", "i don't have", "training data",
                            "knowledge cutoff")
# IGNORECASE matches four characters outside ASCII to an ASCII letter (every code point checked): "İ", "ı", "ſ"
# and the Kelvin sign. The first three become that letter before lowering (which keeps "ı" and "ſ" and makes "İ"
# two characters); lower() makes the Kelvin sign a "k" itself.
_FOLDED = "\u0130\u0131\u017f"
_CASE_FOLDS_TO_ASCII = str.maketrans(dict(zip(_FOLDED, "iis")))


def check_structure(example: Example, settings: CheckSettings) -> Failure | None:
    """The conversation must have the shape a trainer needs: a user turn with text, then an answer.

    An assistant turn before any user turn would teach an answer to nothing; an empty user or assistant
    turn teaches nothing at all. Any system turn is allowed and ignored here. In a conversation, an assistant
    turn that calls tools may have no text, a tool result that names its call (`tool_call_id`) must answer a call
    of the assistant turn before it, and the last assistant turn (the answer) must have text.
    """
    turns = [m.role for m in example.messages if m.role != "system"]
    if turns and turns[0] == "assistant":  # a trainer would learn an answer to nothing
        return Failure("turn_order", "an assistant turn comes before any user turn")
    if not example.prompt.strip():
        return Failure("missing_prompt", "no user turn with content")
    if not example.response.strip():
        return Failure("empty_output", "the assistant turn is empty")
    if len(turns) > 2:
        return _conversation_structure(example)
    return None


def _conversation_structure(example: Example) -> Failure | None:
    # Tool turns without a call id (ShareGPT's observation turns, read by distill/formats.py) answer a call written
    # as text; one with an id must answer a call of the assistant turn before it.
    open_calls: set[str] = set()
    for number, message in enumerate(example.messages, 1):
        if message.role == "tool" and message.tool_call_id and message.tool_call_id not in open_calls:
            return Failure("turn_order", f"turn {number}: a tool result for call {message.tool_call_id!r}, which the "
                                         "assistant turn before it did not make")
        if message.role == "assistant":
            if not message.content.strip() and not message.tool_calls:
                return Failure("empty_output", f"turn {number}: an assistant turn with neither text nor tool calls")
            open_calls = {call.id for call in message.tool_calls or ()}
        elif message.role == "user":
            open_calls = set()
    return None


def check_tool_names(example: Example, settings: CheckSettings) -> Failure | None:
    """Every tool call must name a tool the example declares in `tools` (`tool_unknown`): a student trained on
    it learns to call tools that do not exist."""
    return conversation.unknown_tool(example)


def check_tool_arguments(example: Example, settings: CheckSettings) -> Failure | None:
    """Every call's arguments must be a JSON object its tool's `parameters` JSON Schema accepts
    (`tool_arguments_invalid`); the detail names the turn, the tool and the first field that fails."""
    return conversation.invalid_arguments(example)


def check_tool_loop(example: Example, settings: CheckSettings) -> Failure | None:
    """No call loop (`tool_loop`): at most `max_tool_rounds` (4) assistant turns with tool calls before the
    assistant answers a user turn, and no call repeated with the same arguments before it does."""
    return conversation.tool_loop(example, settings.max_tool_rounds)


def check_schema(example: Example, settings: CheckSettings) -> Failure | None:
    """A structured task's answer must validate against the task's output schema.

    The schema is the task's `output_schema` (JSON Schema or a pydantic model); the example's `output`
    is checked, or, when it has none, its answer parsed as JSON. The detail names the first field that
    fails. Data without a schema (open QA, chat data from elsewhere) passes.
    """
    if settings.output_schema is None:
        return None
    data = example.output
    if data is None:
        try:
            data = json.loads(example.response)
        except json.JSONDecodeError as err:
            return Failure("schema_invalid", f"no `output` and the response is not JSON ({err.msg})")
    schema = settings.output_schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        try:
            schema.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(root)"
            return Failure("schema_invalid", f"{schema.__name__}: {where}: {first['msg']}")
        return None
    try:
        schema.validate(data)
    except SchemaError as err:
        return Failure("schema_invalid", f"{schema.name}: {err.where}: {err.message}")
    return None


def check_truncated(example: Example, settings: CheckSettings) -> Failure | None:
    """The answer must be finished: a cut answer teaches the student to stop mid-thought.

    Rejected: the teacher stopped at max_tokens (`finish_reason` "length" in the example's meta), an
    unclosed ``` code block, or a last line of eight words or more that ends on a letter or digit
    without a sentence stop. Short last lines (list items, labels) may lack a stop and pass.
    """
    if example.meta.model_extra and example.meta.model_extra.get("finish_reason") == "length":
        return Failure("truncated", "the teacher stopped at max_tokens (finish_reason=length)")
    text = example.response.rstrip()
    if text.count("```") % 2:
        return Failure("truncated", "an unclosed ``` code block")
    # Prose that stops mid-sentence; short lines (list items, labels) may legitimately lack a stop. The text
    # ends on no white space, so its last character is the last line's: only a letter or digit there (never a
    # stop) needs the line's words counted.
    if not text[-1:].isalnum():
        return None
    last_line = text.splitlines()[-1]
    if len(last_line.split()) >= 8:
        return Failure("truncated", f"ends mid-sentence: ...{last_line[-60:]!r}")
    return None


def check_length(example: Example, settings: CheckSettings) -> Failure | None:
    """The answer's length in words must be within `min_words` and `max_words`.

    A one-word answer to an open question is rarely an answer; a very long one is usually a teacher
    that rambled on. Classification answers (a label) have no minimum.
    """
    words = len(example.response.split())
    if settings.labels is None and words < settings.min_words:
        return Failure("too_short", f"{words} words < min_words {settings.min_words}")
    if words > settings.max_words:
        return Failure("too_long", f"{words} words > max_words {settings.max_words}")
    return None


def check_refusal(example: Example, settings: CheckSettings) -> Failure | None:
    """The answer must not refuse or talk about itself as an AI.

    A refusal ("I'm sorry, but I can't help ...") in a training set teaches the student to refuse the
    same kind of request; assistant boilerplate ("As an AI language model ...", "my knowledge cutoff")
    teaches a voice nobody asked for. The detail quotes the phrase found.
    """
    text = example.response
    # str.translate goes a character at a time in Python's loop: only for the rare text holding a fold.
    folds = not text.isascii() and any(c in text for c in _FOLDED)
    lowered = (text.translate(_CASE_FOLDS_TO_ASCII) if folds else text).lower()
    if any(literal in lowered for literal in _REFUSAL_LITERALS) and (m := _REFUSAL.search(text)):
        return Failure("refusal", f"refusal phrase {m.group(0)!r}")
    if any(literal in lowered for literal in _AI_BOILERPLATE_LITERALS) and (m := _AI_BOILERPLATE.search(text)):
        return Failure("ai_boilerplate", f"boilerplate {m.group(0)!r}")
    return None


def check_repeats_question(example: Example, settings: CheckSettings) -> Failure | None:
    """The answer must say more than the question.

    Rejected: an answer that is the question verbatim, or that contains a question of five words or
    more and adds fewer words than five or half the question's length, whichever is more. Text is
    compared after normalisation (case, punctuation, whitespace). A task whose answer rightly restates
    its input lists `repeats_question` under `skip_checks`.
    """
    prompt, response = normalized_words_once(example.prompt), normalized_words_once(example.response)
    if not prompt or not response:
        return None
    if response == prompt:
        return Failure("repeats_question", "the answer is the question verbatim")
    # The answer is mostly the question again, with a handful of words around it.
    if len(prompt) >= 5 and " ".join(prompt) in " ".join(response) and len(response) - len(prompt) < max(5, len(prompt) // 2):
        return Failure("repeats_question", f"the answer restates the question and adds only {len(response) - len(prompt)} words")
    return None


def repeated_ngram_ratio(words: Sequence[str], n: int) -> float:
    """Share of word n-grams that repeat an earlier n-gram of the same text (0 = none)."""
    count = len(words) - n + 1
    if count <= 0:
        return 0.0
    return 1.0 - len(set(zip(*(words[i:] for i in range(n))))) / count  # the n-gram tuples, built in C


def check_repetition(example: Example, settings: CheckSettings) -> Failure | None:
    """The answer must not loop: at most `max_repeated_ngram_ratio` of its word n-grams may repeat.

    Small teachers fall into loops that repeat a phrase until max_tokens; the share of word
    `repetition_ngram`-grams (3) that repeat an earlier one catches them. Answers shorter than four
    n-grams are not judged.
    """
    words = normalized_words_once(example.response)
    if len(words) < 4 * settings.repetition_ngram:
        return None
    ratio = repeated_ngram_ratio(words, settings.repetition_ngram)
    if ratio > settings.max_repeated_ngram_ratio:
        return Failure(
            "repetitive",
            f"{ratio:.0%} of {settings.repetition_ngram}-grams repeat (max {settings.max_repeated_ngram_ratio:.0%})",
        )
    return None


def check_language(example: Example, settings: CheckSettings) -> Failure | None:
    """Question and answer must be in the dataset's `language` (ISO 639-1, "en" by default).

    A teacher sometimes switches language mid-dataset; a student trained on a mix answers in either.
    The guess (writing system, then the share of common words) abstains on text too short or too
    ambiguous to call, so a terse answer passes. `--language any` switches the check off.
    """
    if not settings.language:
        return None
    for role, text in (("prompt", example.prompt), ("response", example.response)):
        found = detect_language(text, words=normalized_words_once(text))
        if found is not None and found != settings.language:
            return Failure("wrong_language", f"{role} looks like {found!r}, expected {settings.language!r}")
    return None


def _label_of(example: Example) -> str:
    if isinstance(example.output, dict) and isinstance(example.output.get("label"), str):
        return example.output["label"]
    return example.response


def check_label(example: Example, settings: CheckSettings) -> Failure | None:
    """Classification: the answer's label must be one of the taxonomy's labels.

    The label is the structured answer's `label` field, or the whole answer for plain-text labels;
    the comparison ignores case and surrounding punctuation. Data without a label set passes.
    """
    if not settings.labels:
        return None
    label = _label_of(example).strip().strip(".!\"'`").strip()
    allowed = {name.casefold(): name for name in settings.labels}
    if label.casefold() not in allowed:
        shown = label if len(label) <= 40 else label[:40] + "..."
        return Failure("label_not_in_set", f"label {shown!r} not in {sorted(settings.labels)}")
    return None


def check_reasoning(example: Example, settings: CheckSettings) -> Failure | None:
    """Classification with reasoning: the label the answer's reasoning names last must be the answer's label
    (`reasoning_disagrees`). Only where the task has a label set and the answer carries the teacher's reasoning."""
    if not settings.labels:
        return None
    return conversation.reasoning_disagrees(example, settings.labels, _label_of(example).strip().strip(".!\"'`").strip())


def check_repeated_turns(example: Example, settings: CheckSettings) -> Failure | None:
    """No user or assistant turn repeats an earlier turn of its role, word for word or nearly, after normalisation
    (`repeated_turn`): a conversation going round in circles. Turns under five words ("Yes, please.") may recur."""
    return conversation.repeated_turn(example)


def check_tool_results(example: Example, settings: CheckSettings) -> Failure | None:
    """The assistant must use what a tool returned (`tool_result_unused`: a word or number of the result new to the
    conversation comes back in the assistant's turns after it), and must not claim success over a tool's error
    (`tool_error_ignored`: a result with an "error" key, then "successfully", "has been refunded" ...)."""
    return conversation.unused_result(example)


def check_task(example: Example, settings: CheckSettings) -> Failure | None:
    """The task's own checks, declared in its YAML (required fields, allowed values, a regex, a length range,
    custom functions): the first that fails."""
    for check in settings.task_checks:
        if (failure := check(example)) is not None:
            return failure
    return None


def check_self_contained(example: Example, settings: CheckSettings) -> Failure | None:
    """A question must name what it is about: "What is the mechanism of action?" names nothing.

    The student sees the user turn alone; a question made only of frame words ("treatment",
    "symptoms", "next"), pronouns and stop words cannot be answered, and its answer teaches guessing.
    `generic_words` adds words that, in one dataset, frame a question without naming its subject.
    In a conversation only the first user turn is asked: later ones may refer back ("And the second one?").
    """
    prompt = next((m.content for m in example.messages if m.role == "user"), "")
    if not prompt.strip() or subject_words(prompt, settings.generic_words):
        return None
    pronoun = next((w for w in words(prompt) if w in PRONOUNS), None)
    why = f"{pronoun!r} refers to nothing it names" if pronoun else "only generic words"
    shown = prompt.strip() if len(prompt) <= 80 else prompt.strip()[:77] + "..."
    return Failure("not_self_contained", f"the question names no subject ({why}): {shown!r}")


def check_closed_book(example: Example, settings: CheckSettings) -> Failure | None:
    """A closed-book question must not lean on a passage the student will not see (`leaning_phrase`).

    Only for an example made from a passage of your documents (`distill generate --documents`) whose passage is
    in none of its user or system turns (the built-in `qa` task; `grounded-qa` keeps it in the user turn, so
    "according to the passage" is right there). Rejected: "according to / based on / as described in the
    passage, text, document, section, protocol ...", "this / the above / the provided passage ...", "the
    passage", "described above", "in the protocol described". The detail quotes the phrase.
    """
    passage = passage_text(example, settings.passages)
    if passage is None or not closed_book(example, passage):
        return None
    question = next((m.content for m in example.messages if m.role == "user"), "")
    if (phrase := leaning_phrase(question)) is None:
        return None
    return Failure("leaning_phrase", f"the student will not see the passage, and the question says {phrase!r}")


def check_faithful(example: Example, settings: CheckSettings) -> Failure | None:
    """An answer made from a passage of your documents must say what the passage says (`unfaithful`).

    Lexical, each sentence of the answer in turn (list markers aside): every number in it must be in the
    passage ("1,500" and "1500" are one number); every capitalised term past the sentence's first word (a
    name, a drug, an acronym) must be a word of the passage or of the question; and a sentence with 4 content
    words or more must have at least half of them (stop words aside, lower-cased, plural and -ing/-ed endings
    folded) in the passage. The detail names the number, the term or the share, and quotes the sentence.
    Only for examples with a passage (`meta.source`) whose text the run recorded; a paraphrase in words the
    passage does not use can fail it: `--skip-check faithful` switches it off, and `distill generate
    --judge-faithfulness` has a teacher decide instead (a judged check, `unfaithful` too).
    """
    passage = passage_text(example, settings.passages)
    if passage is None or settings.faithful_judge:
        return None
    why = unsupported(example.response, passage, question=example.prompt)
    return Failure("unfaithful", why) if why is not None else None


def check_off_topic(example: Example, settings: CheckSettings) -> Failure | None:
    """Question and answer must be about their taxonomy node, not mostly about another leaf.

    Question and answer (in a conversation, every user and assistant turn) are TF-IDF vectors scored against
    every leaf's profile (its name and description
    and its ancestors'; IDF over the leaves, so words every leaf uses weigh nothing). An example whose own
    node scores under `min_topic_ratio` times the best other leaf talks about that leaf instead; the
    detail names it. A lexical check cannot tell "about another node" from "about words no description
    uses", so the ratio stays low; `--judge SPEC` has a teacher decide instead (a judged check).

    Needs the taxonomy (inside `distill generate`, or `distill curate --taxonomy FILE`); without one the
    check stands aside. Not for labelled data: a plan crosses every label with every leaf, so a
    login_problem ticket in the billing leaf rightly talks like the account leaf (in tiny-tickets the
    check removed 2 of 4 such items).
    """
    path = example.meta.taxonomy_path
    if (settings.topics is None or settings.topic_judge or settings.labels or path is None
            or path not in settings.topics):
        return None
    score = settings.topics.score(topic_text(example), path)
    if score.rival is None or score.ratio >= settings.min_topic_ratio:
        return None
    return Failure("off_topic", f"closer to {score.rival} ({score.rival_score:.3f}) than to its node {path} "
                                f"({score.own:.3f}, under {settings.min_topic_ratio:g}x)")


def topic_score(example: Example, settings: CheckSettings) -> TopicScore | None:
    """How the example scores against its node and the other leaves (what `check_off_topic` judges, for the
    review's calibration); None where that check stands aside (the same conditions as the check's)."""
    path = example.meta.taxonomy_path
    if (settings.topics is None or settings.topic_judge or settings.labels or path is None
            or path not in settings.topics):
        return None
    return settings.topics.score(topic_text(example), path)


def topic_text(example: Example) -> str:
    """What the topic check reads: question and answer, or every user and assistant turn of a conversation."""
    turns = conversation.conversation_turns(example)
    return "\n".join(m.content for m in turns) if len(turns) > 2 else f"{example.prompt}\n{example.response}"


# Order matters: the first failure is the recorded reason, so structural problems come first.
CHECKS: list[Callable[[Example, CheckSettings], Failure | None]] = [
    check_structure,
    check_tool_names,
    check_tool_arguments,
    check_tool_loop,
    check_schema,
    check_label,
    check_reasoning,
    check_task,
    check_truncated,
    check_length,
    check_refusal,
    check_repeats_question,
    check_repetition,
    check_repeated_turns,
    check_tool_results,
    check_language,
    check_self_contained,
    check_closed_book,
    check_faithful,
    check_off_topic,
]


def check_name(check: Callable) -> str:
    """The name a task or a config switches a check off by: `check_off_topic` -> "off_topic"."""
    return check.__name__.removeprefix("check_")


def first_failure(example: Example, settings: CheckSettings) -> Failure | None:
    for check in CHECKS:
        if settings.skip and check_name(check) in settings.skip:
            continue
        if (failure := check(example, settings)) is not None:
            return failure
    return None
