"""What curation takes from a taxonomy: labels, node texts for the topic checks, held-out sets, and
the pieces of the label round trip's prompt. Used inside `distill generate` and by `distill curate
--taxonomy`, so both curate a run the same way."""

from __future__ import annotations

from typing import Any

from distill.curate.topic import NodeText
from distill.documents.provenance import held_out_sources
from distill.tasks.engine import seed_text
from distill.taxonomy import LoadedTaxonomy, load_taxonomy

SHOTS_PER_LABEL = 2


def node_title(name: str) -> str:
    """A node's name as a title: "heart-failure" -> "Heart failure"."""
    return name.replace("-", " ").replace("_", " ").capitalize()


def taxonomy_nodes(loaded) -> list[NodeText]:
    """Every node of a loaded taxonomy (`distill.taxonomy.LoadedTaxonomy`) as a `NodeText`."""
    out = []
    for node in loaded.nodes:
        lineage = [f"{node_title(a.path.rsplit('/', 1)[-1])}: {a.node.description}" for a in node.ancestors]
        out.append(NodeText(path=node.path, title=node_title(node.path.rsplit("/", 1)[-1]),
                            description=node.node.description, lineage=lineage, is_leaf=node.is_leaf))
    return out


def label_shots(loaded, per_label: int = SHOTS_PER_LABEL) -> list[tuple[str, str]]:
    """Up to `per_label` labelled seeds for each label, in seed-file order: the blind classifier's few-shot turns
    (a seed's text is its first text field, its label the task's label field)."""
    label_field = loaded.task.label_seed_field()
    if label_field is None:
        return []
    seen: set[str] = set()
    shots: list[tuple[str, str]] = []
    taken: dict[str, int] = {}
    for node in loaded.nodes:
        for seed in node.own_seeds:
            label = getattr(seed, label_field)
            if seed.id not in seen and taken.get(label, 0) < per_label:
                seen.add(seed.id)
                taken[label] = taken.get(label, 0) + 1
                shots.append((seed_text(seed), label))
    return shots


def taxonomy_config(loaded) -> dict[str, Any]:
    """`CurateConfig` fields a loaded taxonomy (`distill.taxonomy.LoadedTaxonomy`) and its task supply."""
    taxonomy, task = loaded.taxonomy, loaded.task
    labels = list(task.labels) or None
    return {
        "labels": labels,
        "output_schema": task.output_schema,  # the student's output schema lives with the task
        "task_checks": task.checks,
        "skip_checks": list(task.spec.skip_checks),
        # the taxonomy's held-out sets, and those the documents folder of `--documents` holds out (documents.yaml)
        "heldout": [*taxonomy.heldout, *held_out_sources(loaded.documents)],
        "topics": taxonomy_nodes(loaded),
        "label_descriptions": dict(task.labels) if labels else None,
        "label_instructions": taxonomy.system_prompt if labels else None,
        "label_shots": label_shots(loaded) if labels else [],
        # The passages of `--documents` the examples rest on, for the faithful and closed_book checks
        "passages": {chunk["id"]: chunk["text"] for chunks in loaded.passages.values() for chunk in chunks},
    }


def with_taxonomy(taxonomy, settings: dict[str, Any]) -> dict[str, Any]:
    """`CurateConfig` fields: the taxonomy's (a file, a `Taxonomy`, a `LoadedTaxonomy`; None: none), with `settings`
    over them. Held-out sets and switched-off checks add up: a caller's --heldout or --skip-check never drops the
    taxonomy's or the task's own. `distill generate`, `distill curate` and `distill.curate()` all come here: curating
    is one of the two commands that import a task's Python (its custom checks and models)."""
    if taxonomy is None:
        return dict(settings)
    loaded = taxonomy.with_code() if isinstance(taxonomy, LoadedTaxonomy) else load_taxonomy(taxonomy, code=True)
    base = taxonomy_config(loaded)
    return {**base, **settings, "heldout": [*base["heldout"], *settings.get("heldout", [])],
            "skip_checks": [*base["skip_checks"], *settings.get("skip_checks", [])]}
