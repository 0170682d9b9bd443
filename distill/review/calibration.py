"""Every automated check measured against the reviewers: precision and recall on the reviewed sample.

Each check runs on the items reviewers decided (as they were queued, what the reviewer saw); "the check flags
it" is the prediction and "a reviewer rejected it" the truth (an edit counts as kept). Precision is the share of
flagged items reviewers rejected, recall the share of reviewer rejects the check flags, each with its Wilson
interval. Where a check has a score and a threshold, the threshold with the best F1 on the sample is suggested,
and only when the sample holds at least MIN_EACH rejects and MIN_EACH accepts with a score.

Which checks: curation's (curate/checks.py, at their default settings), its near-duplicate similarity (the
nearest kept item's word-shingle Jaccard, at curation's 0.7), the review's risk signals (risk.py, as they were
when the item was queued) and the judged checks whose verdicts run.db logged (curate/judge.py). The queue samples
what curation kept, so a curation check flags no reviewed item by construction (it removed them before review):
those rows say so rather than show a 0 of 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import closing
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from distill.curate import checks as curation
from distill.curate.from_taxonomy import node_title
from distill.curate.judge import LABEL_STEP, TOPIC_STEP, planned_label, read_json_field, read_on_topic
from distill.curate.normalize import normalized_words_once
from distill.curate.topic import NodeText, TopicIndex
from distill.records import Example
from distill.review.intervals import wilson
from distill.review.population import load_review
from distill.review.risk import NEAR_NEIGHBOUR, REPETITION
from distill.review.state import REJECT, ItemState, ReviewState
from distill.rundir import RunDir
from distill.store import RunStore
from distill.taxonomy.snapshot import read_snapshot

MIN_EACH = 5  # reviewer rejects and accepts, each, with a score, before a threshold is suggested
NEAR_DUPLICATE = 0.7  # curation's near-duplicate Jaccard (CurateConfig.threshold's default)
MAX_TOPIC_SCORE = 100.0  # off_topic's score where the example shares no word with its own node
Source = Literal["curation", "risk", "judge"]


class CheckOutcome(BaseModel):
    """One check on one reviewed item: whether it flags it, and its score where the check has one."""

    flagged: bool
    score: float | None = None  # higher is more suspect; None: the score does not apply (never flagged)


class CheckSpec(BaseModel):
    """What a check is: its name, where it runs, and its threshold when it has a score (flags at or above)."""

    name: str
    source: Source
    score: str | None = None  # what the score measures, for the table
    threshold: float | None = None


class Suggestion(BaseModel):
    """The threshold with the best F1 on the sample, midway between the scores it separates."""

    threshold: float
    flagged: int
    caught: int
    precision: float
    recall: float
    f1: float


class CheckCalibration(BaseModel):
    """One row of the table: a check against the reviewers' decisions."""

    check: str
    source: Source
    score: str | None = None
    threshold: float | None = None  # the current one, for a check with a score
    reviewed: int  # reviewed items the check was run on
    rejected: int  # of them, rejected by a reviewer
    flagged: int  # of them, flagged by the check
    caught: int  # flagged and rejected (true positives)
    precision: float | None = None  # caught / flagged; None when it flags nothing
    precision_ci: tuple[float, float] | None = None
    recall: float | None = None  # caught / rejected; None when reviewers rejected nothing
    recall_ci: tuple[float, float] | None = None
    f1: float | None = None
    by_construction: bool = False  # a curation check that flags no reviewed item: curation removed them first
    suggested: Suggestion | None = None
    note: str = ""


def calibrate(spec: CheckSpec, outcomes: dict[str, CheckOutcome], rejected: dict[str, bool]) -> CheckCalibration:
    """The row of `spec`: its outcomes (item id -> outcome) against `rejected` (item id -> a reviewer rejected it),
    over the items both hold."""
    ids = [i for i in rejected if i in outcomes]
    truth = [rejected[i] for i in ids]
    flags = [outcomes[i].flagged for i in ids]
    flagged, rejects = sum(flags), sum(truth)
    caught = sum(f and t for f, t in zip(flags, truth))
    by_construction = spec.source == "curation" and flagged == 0
    row = CheckCalibration(check=spec.name, source=spec.source, score=spec.score, threshold=spec.threshold,
                           reviewed=len(ids), rejected=rejects, flagged=flagged, caught=caught,
                           by_construction=by_construction)
    if flagged:
        row.precision, row.precision_ci = caught / flagged, wilson(caught, flagged)
    if rejects:
        row.recall, row.recall_ci = caught / rejects, wilson(caught, rejects)
    if row.precision is not None and row.recall is not None:
        row.f1 = _f1(caught, flagged, rejects)
    if spec.threshold is not None:
        scored = [(outcomes[i].score, t) for i, t in zip(ids, truth)]
        row.suggested = suggest_threshold(scored)
        if row.suggested is None:
            row.note = f"no suggestion: fewer than {MIN_EACH} rejects or accepts with a score"
    if by_construction:
        row.note = "flags no reviewed item: curation removes what it flags before review (or it does not apply)" + (
            "; " + row.note if row.note else "")
    return row


def suggest_threshold(scored: Iterable[tuple[float | None, bool]]) -> Suggestion | None:
    """The cut with the best F1 (ties: the higher cut, fewer flags) over (score, rejected) pairs, placed midway
    between the lowest score it flags and the next one down; None unless at least MIN_EACH rejects and MIN_EACH
    accepts have a score, or when no cut catches a reject. A None score is never flagged."""
    pairs = list(scored)
    rejects = sum(t for _, t in pairs)
    with_score = [(s, t) for s, t in pairs if s is not None]
    if sum(t for _, t in with_score) < MIN_EACH or sum(not t for _, t in with_score) < MIN_EACH:
        return None
    ordered = sorted(with_score, key=lambda pair: -pair[0])  # one pass down the scores, counting as it goes
    best: Suggestion | None = None
    flagged = caught = 0
    for k, (level, rejected) in enumerate(ordered):
        flagged, caught = flagged + 1, caught + rejected
        below = ordered[k + 1][0] if k + 1 < len(ordered) else level
        if below == level and k + 1 < len(ordered) or not caught:
            continue  # a cut goes between two different scores
        f1 = _f1(caught, flagged, rejects)
        if best is None or f1 > best.f1:
            best = Suggestion(threshold=round((level + below) / 2, 4), flagged=flagged, caught=caught,
                              precision=caught / flagged, recall=caught / rejects, f1=f1)
    return best


def _f1(caught: int, flagged: int, rejects: int) -> float:
    return 2 * caught / (flagged + rejects) if flagged + rejects else 0.0


# The checks, run on the reviewed items


def repetition_score(example: Example, n: int = 3) -> float | None:
    """The share of the answer's word n-grams that repeat (curation's and the risk signal's measure); None for
    answers too short for either to judge."""
    words = normalized_words_once(example.response)
    return curation.repeated_ngram_ratio(words, n) if len(words) >= 12 else None


def off_topic_score(example: Example, settings: curation.CheckSettings) -> float | None:
    """The best other leaf's score over the example's own node's (`check_off_topic` flags it above
    1 / min_topic_ratio), capped at MAX_TOPIC_SCORE where the own node scores 0; None where the check stands aside."""
    score = curation.topic_score(example, settings)
    if score is None:
        return None
    if score.rival is None or score.rival_score <= 0:
        return 0.0
    return min(MAX_TOPIC_SCORE, score.rival_score / score.own) if score.own > 0 else MAX_TOPIC_SCORE


def check_settings(directory: Path | RunDir) -> curation.CheckSettings:
    """Curation's check settings as far as the folder records them: the defaults, with the labels and the nodes of
    its taxonomy.json (`off_topic` and `label` then run as they did in `distill generate`)."""
    snapshot = read_snapshot(Path(directory))
    if snapshot is None:
        return curation.CheckSettings()
    described = {node.path: node.description for node in snapshot.nodes}

    def lineage(path: str) -> list[str]:
        parts = path.split("/")[:-1]
        ancestors = ["/".join(parts[: k + 1]) for k in range(len(parts))]
        return [f"{node_title(a.rsplit('/', 1)[-1])}: {described.get(a, '')}" for a in ancestors]

    nodes = [NodeText(path=path, title=node_title(path.rsplit("/", 1)[-1]), description=text, lineage=lineage(path),
                      is_leaf=not any(other.startswith(path + "/") for other in described))
             for path, text in described.items()]
    return curation.CheckSettings(labels=list(snapshot.labels) if snapshot.labels else None,
                                  topics=TopicIndex(nodes) if nodes else None)


def _curation_outcomes(items: list[ItemState], settings: curation.CheckSettings
                       ) -> list[tuple[CheckSpec, dict[str, CheckOutcome]]]:
    out = []
    for check in curation.CHECKS:
        name = curation.check_name(check)
        if name == "repetition" or (name == "off_topic" and settings.topics is not None):  # scored: below
            continue
        out.append((CheckSpec(name=name, source="curation"),
                    {s.item_id: CheckOutcome(flagged=check(s.item.example, settings) is not None) for s in items}))
    if settings.topics is not None:  # scored: how many times closer to another leaf than to its own node
        topic = {s.item_id: off_topic_score(s.item.example, settings) for s in items}
        out.append((CheckSpec(name="off_topic", source="curation", score="another leaf's TF-IDF score over its own",
                              threshold=round(1 / settings.min_topic_ratio, 3)),
                    {s.item_id: CheckOutcome(flagged=curation.check_off_topic(s.item.example, settings) is not None,
                                             score=topic[s.item_id]) for s in items}))
    scores = {s.item_id: repetition_score(s.item.example, settings.repetition_ngram) for s in items}
    limit = settings.max_repeated_ngram_ratio
    out.append((CheckSpec(name="repetition", source="curation", score="share of word 3-grams repeated",
                          threshold=limit),
                {i: CheckOutcome(flagged=v is not None and v > limit, score=v) for i, v in scores.items()}))
    similarity = {s.item_id: s.item.neighbour.similarity if s.item.neighbour else None for s in items}
    out.append((CheckSpec(name="near_duplicate", source="curation", score="Jaccard with the nearest kept item",
                          threshold=NEAR_DUPLICATE),
                {i: CheckOutcome(flagged=v is not None and v >= NEAR_DUPLICATE, score=v)
                 for i, v in similarity.items()}))
    return out


RISK_SCORES: dict[str, tuple[str, float, Callable[[ItemState], float | None]]] = {
    # signal -> (what its score measures, its cut-off, the raw score of an item)
    "near_neighbour": ("Jaccard with the nearest kept item", NEAR_NEIGHBOUR,
                       lambda s: s.item.neighbour.similarity if s.item.neighbour else None),
    "repetition": ("share of word 3-grams repeated", REPETITION, lambda s: repetition_score(s.item.example)),
}
RISK_FLAGS = ("unfinished", "json_repaired", "length_outlier")  # flags without a raw score kept at queue time


def _risk_outcomes(items: list[ItemState]) -> list[tuple[CheckSpec, dict[str, CheckOutcome]]]:
    """The signals each item carried when it was queued: what made the queue put it first."""
    fired = {s.item_id: {signal.name for signal in s.item.signals} for s in items}
    out = []
    for name, (measure, cut, score_of) in RISK_SCORES.items():
        out.append((CheckSpec(name=f"risk:{name}", source="risk", score=measure, threshold=cut),
                    {s.item_id: CheckOutcome(flagged=name in fired[s.item_id], score=score_of(s)) for s in items}))
    for name in RISK_FLAGS:
        out.append((CheckSpec(name=f"risk:{name}", source="risk"),
                    {s.item_id: CheckOutcome(flagged=name in fired[s.item_id]) for s in items}))
    return out


def _judge_outcomes(items: list[ItemState], calls: dict[str, dict[str, str | None]]
                    ) -> list[tuple[CheckSpec, dict[str, CheckOutcome]]]:
    """The judged checks' logged verdicts (`calls`: step -> plan item id -> the verdict's text); an unclear
    verdict leaves the item out of that check's row."""
    out = []
    for step, verdict_of in ((LABEL_STEP, _label_flag), (TOPIC_STEP, _topic_flag)):
        logged = calls.get(step) or {}
        outcomes = {}
        for s in items:
            example = s.item.example
            key = example.meta.plan_item_id or example.id
            if key in logged and (flag := verdict_of(example, logged[key])) is not None:
                outcomes[s.item_id] = CheckOutcome(flagged=flag)
        if outcomes:
            out.append((CheckSpec(name=f"judge:{step}", source="judge"), outcomes))
    return out


def _label_flag(example: Example, text: str | None) -> bool | None:
    said, planned = read_json_field(text, "label"), planned_label(example)
    if not isinstance(said, str) or planned is None:
        return None
    return said.strip().casefold() != planned.strip().casefold()


def _topic_flag(example: Example, text: str | None) -> bool | None:
    on_topic = read_on_topic(text)
    return None if on_topic is None else not on_topic


def calibration_table(state: ReviewState, judge_calls: dict[str, dict[str, str | None]] | None = None,
                      settings: curation.CheckSettings | None = None) -> list[CheckCalibration]:
    """Every check against the reviewers' decisions in `state`: curation's checks, near-duplicate similarity,
    the risk signals and the judges' logged verdicts (`judge_calls`, from `RunStore.step_calls`)."""
    reviewed = [s for s in state.items.values() if s.outcome is not None]
    rejected = {s.item_id: s.outcome == REJECT for s in reviewed}
    runs = [*_curation_outcomes(reviewed, settings or curation.CheckSettings()), *_risk_outcomes(reviewed),
            *_judge_outcomes(reviewed, judge_calls or {})]
    return [calibrate(spec, outcomes, rejected) for spec, outcomes in runs]


def judge_calls(store: RunStore) -> dict[str, dict[str, str | None]]:
    """step -> plan item id -> the latest verdict text run.db logged for the judged checks."""
    return {step: store.step_calls(step) for step in (LABEL_STEP, TOPIC_STEP)}


def calibrate_folder(directory: Path | RunDir) -> list[CheckCalibration] | None:
    """The calibration table of a run directory or dataset folder (for `distill improve`'s report); None when it
    has no review queue."""
    run_dir = directory if isinstance(directory, RunDir) else RunDir(directory)
    review = load_review(run_dir)
    if review is None:
        return None
    with closing(run_dir.open_store()) as store:
        calls = judge_calls(store)
    return calibration_table(review.state, calls, check_settings(run_dir))
