"""The curation stage: its settings and its one ordered list of steps (checks -> exact dedup -> near dedup ->
decontamination -> judged checks), which either executor runs (`distill/executors`), with a yield per node."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from distill.check_names import unknown_checks
from distill.curate.checks import CheckSettings
from distill.curate.decontaminate import DecontamConfig
from distill.curate.judge import Judge, LabelTask
from distill.curate.language import expected_language
from distill.curate.minhash import MinHashConfig
from distill.curate.result import CurateResult, yield_tallies
from distill.curate.steps.base import Batch, Findings, Rows, Step
from distill.curate.steps.checks import Checks
from distill.curate.steps.decontamination import Decontaminate
from distill.curate.steps.dedup import ExactDedup, NearDedup
from distill.curate.steps.judged import JudgedChecks
from distill.curate.steps.text import ComparedText
from distill.curate.topic import NodeText, TopicIndex
from distill.formats import AUTO
from distill.records import Example, HeldoutSource, Reject


class CurateConfig(BaseModel):
    """How to curate: `distill curate`'s flags, `distill.curate()`'s keywords and what a taxonomy adds."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    # The input's row format (distill/formats.py): detected from each row, or forced where a row fits two
    input_format: Literal["auto", "messages", "sharegpt", "alpaca", "prompt-completion"] = "auto"
    # Content checks
    min_words: int = Field(2, ge=0)
    max_words: int = Field(2000, ge=1)
    language: str | None = "en"  # ISO 639-1 (`KNOWN_LANGUAGES`); None or "any": no check
    labels: list[str] | None = None
    output_schema: Any = None  # a pydantic model, or a task's OutputSchema
    task_checks: list[Any] = Field(default_factory=list)  # a task's own checks (distill/tasks/checks.py)
    max_repeated_ngram_ratio: float = Field(0.3, gt=0, le=1)
    max_tool_rounds: int = Field(4, ge=1)  # tool_loop: assistant turns with tool calls between two user turns
    # Checks switched off by name (`check_off_topic` -> "off_topic"): what an ablation leaves out
    skip_checks: list[str] = Field(default_factory=list)
    generic_words: list[str] = Field(default_factory=list)  # not_self_contained: more frame words
    # off_topic: the taxonomy's nodes (None: curating a file without a taxonomy, the check is skipped)
    topics: list[NodeText] | None = None
    min_topic_ratio: float = Field(0.3, ge=0)
    # faithful, closed_book: the text of each passage of the user's documents, by chunk id (a taxonomy loaded
    # with `--documents` supplies them; without, those checks stand aside)
    passages: dict[str, str] = Field(default_factory=dict)
    # Judged checks (curate/judge.py), run after decontamination with the `judge` curate() is given
    label_check: bool = False  # classification: a teacher classifies each input blind; label_mismatch
    label_descriptions: dict[str, str] | None = None  # label -> when it applies, shown to that teacher
    label_instructions: str | None = None  # the task's instructions (a taxonomy's system prompt)
    label_shots: list[tuple[str, str]] = Field(default_factory=list)  # labelled seeds: (text, label)
    topic_judge: bool = False  # off_topic decided by the judge instead of lexically
    faithful_judge: bool = False  # faithful decided by the judge instead of lexically (examples with a passage)
    # Dedup
    exact_dedup: bool = True
    near_dedup: bool = True
    threshold: float = Field(0.7, gt=0, le=1)
    shingle_size: int = Field(5, ge=1)
    num_perm: int = Field(128, ge=8)
    bands: int | None = Field(None, gt=0)
    rows: int | None = Field(None, gt=0)
    confirm: Literal["exact", "estimate"] = "exact"
    dedup_on: Literal["conversation", "prompt", "response"] = "conversation"
    quality_key: str = "quality"  # meta[quality_key], when present, picks the best of a duplicate group
    against: list[str] = Field(default_factory=list)
    # Decontamination
    heldout: list[HeldoutSource] = Field(default_factory=list)
    ngram: int = Field(8, ge=1)
    report_ngram: int = Field(13, ge=1)
    decontam_minhash_threshold: float | None = Field(None, gt=0, le=1)
    workers: int = Field(default_factory=lambda: min(2, os.cpu_count() or 1), ge=1)

    @field_validator("skip_checks")
    @classmethod
    def _known_checks(cls, names: list[str]) -> list[str]:
        if message := unknown_checks(names):
            raise ValueError(message)
        return names

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        return expected_language(value)

    @field_validator("labels")
    @classmethod
    def _some_labels(cls, labels: list[str] | None) -> list[str] | None:
        if labels is None:
            return None
        labels = [label.strip() for label in labels]
        if not labels or not all(labels):
            raise ValueError("an empty label; give the label set as names (a,b,c), or leave it out")
        return labels

    @field_validator("max_words")
    @classmethod
    def _words_in_order(cls, max_words: int, info: ValidationInfo) -> int:
        min_words = info.data.get("min_words")
        if min_words is not None and min_words > max_words:
            raise ValueError(f"{max_words} is below min_words ({min_words}): every answer would be rejected; "
                             "lower min_words or raise max_words")
        return max_words

    def check_settings(self) -> CheckSettings:
        return CheckSettings(
            min_words=self.min_words, max_words=self.max_words, language=self.language, labels=self.labels,
            output_schema=self.output_schema, max_repeated_ngram_ratio=self.max_repeated_ngram_ratio,
            generic_words=frozenset(w.lower() for w in self.generic_words), skip=frozenset(self.skip_checks),
            topics=TopicIndex(self.topics) if self.topics else None, min_topic_ratio=self.min_topic_ratio,
            topic_judge=self.topic_judge, faithful_judge=self.faithful_judge, task_checks=tuple(self.task_checks), max_tool_rounds=self.max_tool_rounds,
            passages=self.passages,
        )

    def label_task(self) -> LabelTask | None:
        labels = self.label_descriptions or {label: "" for label in self.labels or []}
        if not self.label_check or not labels:
            return None
        return LabelTask(labels=labels, instructions=self.label_instructions, shots=self.label_shots)

    def notes(self) -> list[str]:
        """Checks that cannot run as configured, said once in the summary and stats.json."""
        out = []
        if self.topics is None and "off_topic" not in self.skip_checks:
            out.append("off_topic skipped: no taxonomy to compare with (pass --taxonomy FILE to `distill curate`)")
        if self.label_check and not (self.label_descriptions or self.labels):
            out.append("label check skipped: no label set (pass --taxonomy FILE or --labels)")
        return out

    def minhash(self) -> MinHashConfig:
        return MinHashConfig(
            threshold=self.threshold, num_perm=self.num_perm, shingle_size=self.shingle_size,
            bands=self.bands, rows=self.rows, confirm=self.confirm,
        )

    def decontam(self) -> DecontamConfig:
        return DecontamConfig(ngram=self.ngram, report_ngram=self.report_ngram, minhash_threshold=self.decontam_minhash_threshold)


@dataclass
class Curation:
    """The steps in their one order, and what the result reports besides them. An executor runs every step's
    `map_batch` on each batch, then `resolve` on its `Rows`, then sorts the rows out with
    `result.sort_out` and hands the pieces to `result`."""

    steps: list[Step]
    against: list[str]  # earlier runs / datasets to dedup against: references, never output
    heldout: list[str]  # held-out files decontaminated against
    notes: list[str]  # checks that cannot run as configured
    input_format: str = AUTO  # the input's row format (the --against sets' rows are always detected)

    def map_batch(self, batch: Batch) -> Batch:
        for step in self.steps:
            batch = step.map_batch(batch)
        return batch

    def resolve(self, rows: Rows) -> list[tuple[Step, Findings]]:
        """Each step's whole-set phase in order; what one rejects is out of play for the next."""
        found = []
        for step in self.steps:
            findings = step.resolve(rows)
            if findings is not None:
                rows.reject(findings.rejects, step.stage)
                found.append((step, findings))
        return found

    def local_only(self) -> list[str]:
        """Why some steps run only in this process (their own words), for an executor that runs elsewhere."""
        return [step.local_only for step in self.steps if step.local_only]

    def result(self, found: list[tuple[Step, Findings]], kept: list[Example], rejects: list[Reject],
               outcomes: Counter, references: int) -> CurateResult:
        """The result from the steps' findings and the rows sorted out (`references`: --against rows read)."""
        sections: dict[str, dict[str, Any]] = {
            "dedup": {"against": list(self.against), "against_items": references},
            "decontamination": {"heldout": list(self.heldout)}, "judge": {}}
        duplicates, contamination = [], []
        for step, findings in found:
            sections[step.section].update(findings.info)
            duplicates += findings.duplicates
            contamination += findings.contamination
        return CurateResult(kept=kept, rejects=rejects, node_stats=yield_tallies(outcomes), contamination=contamination,
                            duplicates=duplicates, dedup_info=sections["dedup"],
                            decontam_info=sections["decontamination"], judge_info=sections["judge"], notes=self.notes)


def curation(config: CurateConfig, judge: Judge | None = None, label_judge: Judge | None = None) -> Curation:
    """The steps `config` asks for, in order. `judge` answers the judged checks (`config.topic_judge`, and
    `config.label_check` unless a `label_judge` is given for it)."""
    label_judge = label_judge or judge
    if (config.label_check and label_judge is None) or ((config.topic_judge or config.faithful_judge)
                                                         and judge is None):
        raise ValueError("label_check, topic_judge and faithful_judge need a judge teacher")
    steps: list[Step] = [Checks(config.check_settings()), ComparedText(config.dedup_on)]
    if config.exact_dedup:
        steps.append(ExactDedup(config.against))
    if config.near_dedup:
        steps.append(NearDedup(config.minhash(), config.quality_key, config.against, config.workers))
    if config.heldout:
        steps.append(Decontaminate(config.heldout, config.decontam()))
    # Judged checks: a teacher call per example, so only on what every cheaper step kept
    labels = config.label_task()
    topics = {node.path: node for node in config.topics or []} if config.topic_judge else None
    passages = config.passages if config.faithful_judge and config.passages else None
    if labels or topics or passages:
        steps.append(JudgedChecks(labels, label_judge, topics, judge, passages, judge if passages else None))
    return Curation(steps=steps, against=list(config.against), heldout=[s.path for s in config.heldout],
                    notes=config.notes(), input_format=config.input_format)
