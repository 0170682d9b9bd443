"""The curation stage: checks -> exact dedup -> near dedup -> decontamination -> judged checks, with a
yield per node."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from distill.curate.checks import CheckSettings, first_failure, unknown_checks
from distill.curate.dataset_io import dedup_text, load_examples
from distill.curate.decontaminate import DecontamConfig, build_index, find_contamination
from distill.curate.exact import exact_keys, find_exact_duplicates
from distill.curate.heldout import load_all
from distill.curate.judge import Judge, LabelTask, run_judged_checks
from distill.curate.language import expected_language
from distill.curate.minhash import MinHashConfig, find_near_duplicates, resolve_bands
from distill.curate.topic import NodeText, TopicIndex
from distill.records import Example, HeldoutSource, Reject

Progress = Callable[[str, int, int], None]
NO_NODE = "(none)"


class CurateConfig(BaseModel):
    """How to curate: `distill curate`'s flags, `distill.curate()`'s keywords and what a taxonomy adds."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    # Content checks
    min_words: int = Field(2, ge=0)
    max_words: int = Field(2000, ge=1)
    language: str | None = "en"  # ISO 639-1 (`KNOWN_LANGUAGES`); None or "any": no check
    labels: list[str] | None = None
    output_schema: Any = None  # a pydantic model, or a task's OutputSchema
    task_checks: list[Any] = Field(default_factory=list)  # a task's own checks (distill/tasks/checks.py)
    max_repeated_ngram_ratio: float = Field(0.3, gt=0, le=1)
    # Checks switched off by name (`check_off_topic` -> "off_topic"): what an ablation leaves out
    skip_checks: list[str] = Field(default_factory=list)
    generic_words: list[str] = Field(default_factory=list)  # not_self_contained: more frame words
    # off_topic: the taxonomy's nodes (None: curating a file without a taxonomy, the check is skipped)
    topics: list[NodeText] | None = None
    min_topic_ratio: float = Field(0.3, ge=0)
    # Judged checks (curate/judge.py), run after decontamination with the `judge` curate() is given
    label_check: bool = False  # classification: a teacher classifies each input blind; label_mismatch
    label_descriptions: dict[str, str] | None = None  # label -> when it applies, shown to that teacher
    label_instructions: str | None = None  # the task's instructions (a taxonomy's system prompt)
    label_shots: list[tuple[str, str]] = Field(default_factory=list)  # labelled seeds: (text, label)
    topic_judge: bool = False  # off_topic decided by the judge instead of lexically
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
            topic_judge=self.topic_judge, task_checks=tuple(self.task_checks),
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


class DuplicateRow(BaseModel):
    id: str
    duplicate_of: str
    method: Literal["exact", "near"]
    similarity: float  # Jaccard of word shingles with the kept item (1.0 for exact)
    via: str | None = None  # the item it matched directly, when grouped through another
    via_similarity: float | None = None
    source: str | None = None  # the earlier run / dataset holding `duplicate_of`, when not this set


class ContaminationRow(BaseModel):
    id: str
    heldout_id: str
    heldout_text: str
    ngram: str
    n: int
    matches: int
    method: Literal["ngram", "minhash"]
    similarity: float | None = None
    also_13gram: bool = False
    node_path: str | None = None


@dataclass
class NodeStats:
    generated: int = 0
    valid: int = 0
    unique: int = 0
    clean: int = 0
    kept: int = 0
    reasons: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "generated": self.generated, "valid": self.valid, "unique": self.unique, "clean": self.clean,
            "kept": self.kept, "reasons": dict(self.reasons.most_common()),
        }


@dataclass
class CurateResult:
    kept: list[Example]
    rejects: list[Reject]
    node_stats: dict[str, NodeStats]
    contamination: list[ContaminationRow]
    duplicates: list[DuplicateRow]
    dedup_info: dict[str, Any] = field(default_factory=dict)
    decontam_info: dict[str, Any] = field(default_factory=dict)
    judge_info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> NodeStats:
        return self.node_stats.get("(all)", NodeStats())

    def empty_nodes(self) -> list[tuple[str, str]]:
        """Nodes that generated something and kept nothing, with their most common reason."""
        out = []
        for node, stats in sorted(self.node_stats.items()):
            if node != "(all)" and stats.generated and not stats.kept:
                reason = stats.reasons.most_common(1)[0][0] if stats.reasons else "unknown"
                out.append((node, reason))
        return out

    def to_stats(self) -> dict[str, Any]:
        total = self.total
        return {
            "curate": {
                **{k: v for k, v in total.as_dict().items() if k != "reasons"},
                "reasons": dict(total.reasons.most_common()),
                "nodes": {k: v.as_dict() for k, v in sorted(self.node_stats.items()) if k != "(all)"},
                "empty_nodes": [{"node": n, "top_reason": r} for n, r in self.empty_nodes()],
                "dedup": self.dedup_info,
                "decontamination": self.decontam_info,
                "judge": self.judge_info,
                "notes": self.notes,
            }
        }


def node_chain(path: str | None) -> list[str]:
    """The node and all its ancestors: "a/b/c" -> ["a", "a/b", "a/b/c"]."""
    if not path:
        return [NO_NODE]
    parts = [p for p in path.split("/") if p]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))] or [NO_NODE]


def _quality(example: Example, key: str) -> float | None:
    value = (example.meta.model_extra or {}).get(key)
    return float(value) if isinstance(value, (int, float)) else None


def _load_against(paths: list[str]) -> tuple[list[Example], list[str], list[str]]:
    examples, ids, sources = [], [], []
    for path in paths:
        for example in load_examples(path):
            examples.append(example)
            ids.append(example.id)
            sources.append(str(path))
    return examples, ids, sources


def curate(examples: list[Example], config: CurateConfig, progress: Progress | None = None,
           judge: Judge | None = None, label_judge: Judge | None = None) -> CurateResult:
    """Run every curation step; nothing is dropped without a `Reject` saying why.

    `judge` answers the judged checks (`config.topic_judge`, and `config.label_check` unless a
    `label_judge` is given for it), recording its calls.
    """
    label_judge = label_judge or judge
    if (config.label_check and label_judge is None) or (config.topic_judge and judge is None):
        raise ValueError("label_check and topic_judge need a judge teacher")
    n = len(examples)
    status = np.zeros(n, dtype=np.int8)  # 0 rejected, then 1 valid, 2 unique, 3 clean
    rejects: dict[int, Reject] = {}

    def reject(i: int, stage: str, reason: str, detail: str) -> None:
        ex = examples[i]
        rejects[i] = Reject(id=ex.id, stage=stage, reason=reason, detail=detail, example=ex, node_path=ex.meta.taxonomy_path)

    # 1. Checks
    settings = config.check_settings()
    for i, example in enumerate(examples):
        failure = first_failure(example, settings)
        if failure is None:
            status[i] = 1
        else:
            reject(i, "check", failure.reason, failure.detail)
        if progress and (i % 1000 == 0 or i == n - 1):
            progress("check", i + 1, n)

    # 2-3. Dedup, within the set and against earlier runs (those are `protected`: never removed)
    against_examples, against_ids, against_sources = _load_against(config.against)
    # A rejected example takes no part in dedup: its text is left out, so a huge record that a check
    # rejected (one 6 MB line took ~830 MB here when hashed and shingled) costs nothing more.
    texts = [dedup_text(e, config.dedup_on) if status[i] == 1 else "" for i, e in enumerate(examples)] \
        + [dedup_text(e, config.dedup_on) for e in against_examples]
    ids = [e.id for e in examples] + against_ids
    protected = np.r_[np.zeros(n, bool), np.ones(len(against_ids), bool)]
    alive = np.r_[status == 1, np.ones(len(against_ids), bool)]
    source_of = lambda j: against_sources[j - n] if j >= n else None  # noqa: E731
    duplicates: list[DuplicateRow] = []
    dedup_info: dict[str, Any] = {"against": list(config.against), "against_items": len(against_ids)}
    if config.exact_dedup:
        keys = exact_keys(texts, workers=config.workers)
        live = np.flatnonzero(alive)
        for dup in find_exact_duplicates(keys[live], protected[live]):
            i, j = int(live[dup.removed]), int(live[dup.kept])
            alive[i] = False
            duplicates.append(DuplicateRow(id=ids[i], duplicate_of=ids[j], method="exact", similarity=1.0, source=source_of(j)))
            where = f" in {source_of(j)}" if j >= n else ""
            reject(i, "dedup", "exact_duplicate", f"same normalised text as {ids[j]}{where}")
        dedup_info["exact_removed"] = sum(d.method == "exact" for d in duplicates)
    if config.near_dedup:
        mh = config.minhash()
        bands, rows = resolve_bands(mh)
        quality = np.array([_quality(e, config.quality_key) or 0.0 for e in examples] + [0.0] * len(against_ids))
        result = find_near_duplicates(
            texts, mh, active=alive, protected=protected, quality=quality, workers=config.workers, progress=progress
        )
        for dup in result.duplicates:
            i, j = dup.removed, dup.kept
            alive[i] = False
            via = ids[dup.via] if dup.via != j else None
            duplicates.append(DuplicateRow(
                id=ids[i], duplicate_of=ids[j], method="near", similarity=dup.similarity,
                via=via, via_similarity=dup.via_similarity if via else None, source=source_of(j),
            ))
            where = f" in {source_of(j)}" if j >= n else ""
            reject(i, "dedup", "near_duplicate", f"Jaccard {dup.similarity:.2f} with {ids[j]}{where}")
        dedup_info.update({
            "near_removed": sum(d.method == "near" for d in duplicates), "threshold": mh.threshold,
            "num_perm": mh.num_perm, "shingle_size": mh.shingle_size, "bands": bands, "rows": rows,
            "candidate_pairs": result.candidates, "confirmed_pairs": result.confirmed, "confirm": mh.confirm,
        })
    status[(status == 1) & alive[:n]] = 2

    # 4. Decontamination
    contamination: list[ContaminationRow] = []
    decontam_info: dict[str, Any] = {"heldout": [s.path for s in config.heldout]}
    if config.heldout:
        items = load_all(config.heldout)
        dc = config.decontam()
        index = build_index(items, dc)
        live = np.flatnonzero(status == 2)
        if progress:
            progress("decontaminate", 0, len(live))
        hits = find_contamination([texts[i] for i in live], index, dc, workers=config.workers)
        for hit in hits:
            i = int(live[hit.index])
            ex = examples[i]
            contamination.append(ContaminationRow(
                id=ex.id, heldout_id=hit.heldout_id, heldout_text=hit.heldout_text, ngram=hit.ngram, n=hit.n,
                matches=hit.matches, method=hit.method, similarity=hit.similarity,
                also_13gram=hit.also_at_report_ngram, node_path=ex.meta.taxonomy_path,
            ))
            status[i] = 0
            what = f"{hit.n}-gram {hit.ngram!r}" if hit.method == "ngram" else f"MinHash Jaccard {hit.similarity:.2f}"
            reject(i, "decontaminate", "contaminated", f"shares {what} with held-out {hit.heldout_id}")
        if progress:
            progress("decontaminate", len(live), len(live))
        decontam_info.update({
            "heldout_items": len(items), "ngram": dc.ngram, "flagged": len(hits),
            f"flagged_at_{dc.report_ngram}": sum(h.also_at_report_ngram for h in hits),
            "flagged_by_minhash": sum(h.method == "minhash" for h in hits),
        })
    # 5. Judged checks: a teacher call per example, so only on what every cheaper step kept
    judge_info: dict[str, Any] = {}
    labels = config.label_task()
    topics = {node.path: node for node in config.topics or []} if config.topic_judge else None
    if labels or topics:
        outcome = run_judged_checks(examples, [int(i) for i in np.flatnonzero(status == 2)], labels=labels,
                                    label_judge=label_judge, topics=topics, topic_judge=judge, progress=progress)
        for failure in outcome.failures:
            status[failure.index] = 0
            reject(failure.index, "judge", failure.reason, failure.detail)
        judge_info = {"new_calls": outcome.asked, "calls_from_log": outcome.found,
                      **{step: stats.as_dict() for step, stats in outcome.stats.items()}}
    status[status == 2] = 3

    nodes = _node_stats(examples, status, rejects)
    kept = [examples[i] for i in np.flatnonzero(status == 3)]
    return CurateResult(
        kept=kept, rejects=[rejects[i] for i in sorted(rejects)], node_stats=nodes, contamination=contamination,
        duplicates=duplicates, dedup_info=dedup_info, decontam_info=decontam_info, judge_info=judge_info,
        notes=config.notes(),
    )


def _node_stats(examples: list[Example], status: np.ndarray, rejects: dict[int, Reject]) -> dict[str, NodeStats]:
    outcomes: Counter = Counter()
    for i, example in enumerate(examples):
        reached = KEPT if status[i] == 3 else STAGES_PASSED[rejects[i].stage]
        outcomes[example.meta.taxonomy_path, reached, rejects[i].reason if i in rejects else None] += 1
    return node_stats_from_outcomes(outcomes)


# How far an example got: rejected at check -> 0 stages passed, and so on; KEPT passed them all.
STAGES_PASSED = {"check": 0, "dedup": 1, "decontaminate": 2, "judge": 3}
KEPT = 4


def node_stats_from_outcomes(outcomes: Counter) -> dict[str, NodeStats]:
    """Yield per node and its ancestors from counts of (taxonomy path, stages passed 0-4, reject reason)."""
    nodes: dict[str, NodeStats] = {"(all)": NodeStats()}
    for (path, reached, reason), count in sorted(outcomes.items(), key=lambda kv: tuple(map(str, kv[0]))):
        for name in ["(all)", *node_chain(path)]:
            s = nodes.setdefault(name, NodeStats())
            s.generated += count
            s.valid += count * (reached >= 1)
            s.unique += count * (reached >= 2)
            s.clean += count * (reached >= 3)
            s.kept += count * (reached >= 4)
            if reason:
                s.reasons[reason] += count
    return nodes
