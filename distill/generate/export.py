"""End of a run: curate what was generated and rebuild the run directory's files from run.db."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from distill.curate.from_taxonomy import with_taxonomy
from distill.curate.pipeline import CurateConfig
from distill.documents.provenance import held_out_sources
from distill.executors.local import curate as curate_examples
from distill.records import Example, PlanItem, Reject
from distill.review.feedback import review_in_store
from distill.rundir import RunDir
from distill.store import FAILED, PENDING, RunStore
from distill.tally import NodeTally, Tallies
from distill.taxonomy import LoadedTaxonomy


@dataclass
class RunReport:
    out: Path
    nodes: Tallies  # the whole run, then each taxonomy node in the taxonomy's order
    stats: dict
    files: dict[str, Path]

    @property
    def total(self) -> NodeTally:
        return self.nodes.total


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
    kept, curation_rejects, curation_stats = _curate(examples, loaded, curate, _with_passages(curate_settings or {}, loaded, run_dir),
                                                     judge, progress)
    store.replace_curation_rejects(curation_rejects)
    kept, review_rejects, review_stats = _review(store, kept, run_dir)
    curation_rejects = curation_rejects + review_rejects  # (review rejects live in its own tables, not here)

    nodes = _node_tallies(loaded, plan, statuses, examples, kept, generation_rejects + curation_rejects)
    stats = {
        "taxonomy": loaded.name,
        "task": loaded.task.name,
        "run": store.info(),
        "counts": {
            "planned": len(plan),
            "pending": sum(statuses.get(i.id) == PENDING for i in plan),
            "generated": nodes.total.generated,
            "valid": len(examples),
            "kept": len(kept),
            "rejected": len(generation_rejects) + len(curation_rejects) - nodes.total.failed,
            "failed": nodes.total.failed,
        },
        "reject_reasons": dict(Counter(r.reason for r in generation_rejects + curation_rejects).most_common()),
        "nodes": {path: {**tally.counts("planned", "generated", "valid", "kept", "failed"),
                         "rejects": dict(tally.reasons.most_common())} for path, tally in nodes.items()},
        "usage": store.usage_totals(),
        "teacher_calls": store.call_counts(),
        "curation": curation_stats,
    }
    if review_stats is not None:
        stats["review"] = review_stats
    files = run_dir.write_exports(kept, generation_rejects + curation_rejects, stats)
    return RunReport(out=run_dir.root, nodes=nodes, stats=stats, files=files)


def _curate(examples: list[Example], loaded: LoadedTaxonomy, enabled: bool, settings: dict, judge,
            progress) -> tuple[list[Example], list[Reject], dict]:
    if not enabled or not examples:
        return examples, [], {}
    config = CurateConfig(**with_taxonomy(loaded, settings))
    result = curate_examples(examples, config, progress=progress, judge=judge)
    return result.kept, result.rejects, result.to_stats()


def _with_passages(settings: dict, loaded: LoadedTaxonomy, run_dir: RunDir) -> dict:
    """A run resumed (or reviewed) without `--documents` still checks its examples against the passages it
    recorded when it was made (documents.json), and is decontaminated against the question sets its documents
    folder held out."""
    if loaded.documents is not None:  # --documents: the taxonomy's config has them (curate/from_taxonomy.py)
        return settings
    record = run_dir.read_documents()
    if not record:
        return settings
    held_out = held_out_sources(record)
    settings = {**settings, "heldout": [*settings.get("heldout", []), *held_out]} if held_out else settings
    return settings if "passages" in settings else {**settings, "passages": record.get("passages") or {}}


def _review(store: RunStore, kept: list[Example], run_dir: RunDir) -> tuple[list[Example], list[Reject], dict | None]:
    """The human review applied to what curation kept (distill/review/feedback.py), when there is a queue."""
    return review_in_store(store, kept, run_dir.root)


def _node_tallies(loaded: LoadedTaxonomy, plan: list[PlanItem], statuses: dict[str, str], examples: list[Example],
                  kept: list[Example], rejects: list[Reject]) -> Tallies:
    """Per taxonomy node: planned, generated, failed, valid and kept items, and the reasons of the rest."""
    nodes = Tallies(node.path for node in loaded.nodes)
    for item in plan:
        status = statuses.get(item.id, PENDING)
        nodes.add(item.node_path, planned=1, generated=status not in (PENDING, FAILED), failed=status == FAILED)
    for example in examples:
        nodes.add(example.meta.taxonomy_path, valid=1)
    for example in kept:
        nodes.add(example.meta.taxonomy_path, kept=1)
    for reject in rejects:
        nodes.add(reject.node_path or (reject.example.meta.taxonomy_path if reject.example else None), reason=reject.reason)
    return nodes
