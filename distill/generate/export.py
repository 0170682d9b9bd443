"""End of a run: curate what was generated and rebuild the run directory's files from run.db."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from distill.curate.from_taxonomy import with_taxonomy
from distill.curate.pipeline import CurateConfig, curate as curate_examples
from distill.records import Example, PlanItem, Reject
from distill.review.feedback import review_in_store
from distill.rundir import RunDir
from distill.store import FAILED, PENDING, RunStore
from distill.taxonomy import LoadedTaxonomy


@dataclass
class NodeRow:
    path: str
    depth: int
    planned: int = 0
    generated: int = 0  # the teacher answered (valid or not)
    valid: int = 0  # parsed into an example
    kept: int = 0  # survived curation
    failed: int = 0
    reasons: Counter = field(default_factory=Counter)


@dataclass
class RunReport:
    out: Path
    rows: list[NodeRow]
    stats: dict
    files: dict[str, Path]

    @property
    def total(self) -> NodeRow:
        return self.rows[0]


def export_scope(store: RunStore, loaded: LoadedTaxonomy, plan: list[PlanItem]) -> list[PlanItem]:
    """This run's plan and everything earlier runs in the directory finished on leaves that still exist:
    a re-run with a smaller --limit or another --seed never shrinks the exports (run.db keeps it all)."""
    leaves = {leaf.path for leaf in loaded.leaves}
    ids = {item.id for item in plan}
    return plan + [item for item in store.finished_items() if item.id not in ids and item.node_path in leaves]


def finish_run(store: RunStore, loaded: LoadedTaxonomy, plan: list[PlanItem], run_dir: RunDir, curate: bool = True,
               curate_settings: dict | None = None, judge=None, progress=None) -> RunReport:
    """Curate what was generated and rewrite the run's files. `curate_settings` are `CurateConfig` fields
    over the taxonomy's (label_check, topic_judge, skip_checks ...); `judge` answers the judged checks,
    its calls recorded in this run's store."""
    plan = export_scope(store, loaded, plan)
    scope = {item.id for item in plan}
    statuses = store.statuses()
    # In plan order, not the order answers came in: the same run gives the same files (and dedup keeps
    # the same one of two duplicates) however requests were scheduled, on one machine or on Ray.
    position: dict[str | None, int] = {item.id: rank for rank, item in enumerate(plan)}
    examples = sorted(store.examples(scope), key=lambda example: position.get(example.meta.plan_item_id, len(plan)))
    generation_rejects = store.latest_generation_rejects(scope)
    kept, curation_rejects, curation_stats = _curate(examples, loaded, curate, curate_settings or {}, judge, progress)
    store.replace_curation_rejects(curation_rejects)
    kept, review_rejects, review_stats = _review(store, kept, run_dir)
    curation_rejects = curation_rejects + review_rejects  # (review rejects live in its own tables, not here)

    rows = _node_rows(loaded, plan, statuses, examples, kept, generation_rejects + curation_rejects)
    stats = {
        "taxonomy": loaded.name,
        "task": loaded.task.name,
        "run": store.info(),
        "counts": {
            "planned": len(plan),
            "pending": sum(statuses.get(i.id) == PENDING for i in plan),
            "generated": rows[0].generated,
            "valid": len(examples),
            "kept": len(kept),
            "rejected": len(generation_rejects) + len(curation_rejects) - rows[0].failed,
            "failed": rows[0].failed,
        },
        "reject_reasons": dict(Counter(r.reason for r in generation_rejects + curation_rejects).most_common()),
        "nodes": {
            row.path: {"planned": row.planned, "generated": row.generated, "valid": row.valid,
                       "kept": row.kept, "failed": row.failed, "rejects": dict(row.reasons.most_common())}
            for row in rows
        },
        "usage": store.usage_totals(),
        "teacher_calls": store.call_counts(),
        "curation": curation_stats,
    }
    if review_stats is not None:
        stats["review"] = review_stats
    files = run_dir.write_exports(kept, generation_rejects + curation_rejects, stats)
    return RunReport(out=run_dir.root, rows=rows, stats=stats, files=files)


def _curate(examples: list[Example], loaded: LoadedTaxonomy, enabled: bool, settings: dict, judge,
            progress) -> tuple[list[Example], list[Reject], dict]:
    if not enabled or not examples:
        return examples, [], {}
    config = CurateConfig(**with_taxonomy(loaded, settings))
    result = curate_examples(examples, config, progress=progress, judge=judge)
    return result.kept, result.rejects, result.to_stats()


def _review(store: RunStore, kept: list[Example], run_dir: RunDir) -> tuple[list[Example], list[Reject], dict | None]:
    """The human review applied to what curation kept (distill/review/feedback.py), when there is a queue."""
    return review_in_store(store, kept, run_dir.root)


def _node_rows(loaded: LoadedTaxonomy, plan: list[PlanItem], statuses: dict[str, str], examples: list[Example],
               kept: list[Example], rejects: list[Reject]) -> list[NodeRow]:
    total = NodeRow(path="(all)", depth=0)
    rows = {node.path: NodeRow(path=node.path, depth=node.path.count("/") + 1) for node in loaded.nodes}

    def lineage(path: str | None) -> list[NodeRow]:
        if path is None or path not in rows:
            return [total]
        parts = path.split("/")
        return [total, *(rows["/".join(parts[: i + 1])] for i in range(len(parts)))]

    for item in plan:
        status = statuses.get(item.id, PENDING)
        for row in lineage(item.node_path):
            row.planned += 1
            row.generated += status not in (PENDING, FAILED)
            row.failed += status == FAILED
    for example in examples:
        for row in lineage(example.meta.taxonomy_path):
            row.valid += 1
    for example in kept:
        for row in lineage(example.meta.taxonomy_path):
            row.kept += 1
    for reject in rejects:
        path = reject.node_path or (reject.example.meta.taxonomy_path if reject.example else None)
        for row in lineage(path):
            row.reasons[reject.reason] += 1
    return [total, *(rows[node.path] for node in loaded.nodes)]
