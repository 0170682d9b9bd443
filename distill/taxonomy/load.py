"""Load a taxonomy file and its seeds, turning every mistake into one line naming file, line and field."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from distill.errors import DistillError
from distill.taxonomy.model import Axis, ClassificationSeed, Node, QASeed, Seed, Taxonomy
from distill.userfiles import line_of, load_yaml, located, read_text


@dataclass
class TreeNode:
    """A node with its place in the tree and the seeds it sees (its own and its ancestors')."""

    path: str  # "cardiology/arrhythmias"
    node: Node
    ancestors: list[TreeNode]
    seeds: list[Seed] = field(default_factory=list)  # own + inherited, nearest first
    own_seeds: list[Seed] = field(default_factory=list)
    quota: int | None = None  # effective, inherited from the nearest ancestor that sets one

    @property
    def is_leaf(self) -> bool:
        return not self.node.children

    @property
    def lineage(self) -> list[TreeNode]:
        return [*self.ancestors, self]

    def seed_origin(self, seed: Seed) -> TreeNode:
        """The node (this one or an ancestor) whose seed file holds `seed`."""
        return next((n for n in reversed(self.lineage) if any(s is seed for s in n.own_seeds)), self)


@dataclass
class LoadedTaxonomy:
    taxonomy: Taxonomy
    file: Path
    nodes: list[TreeNode]  # depth-first, parents before children
    # Few-shot prompts already rendered, shared by every plan item that shows a seed the same way.
    rendered: dict[tuple, str] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def crossed_axes(self) -> dict[str, Axis]:
        """`Taxonomy.crossed_axes()`, built once: every prompt of a run reads it."""
        return self.taxonomy.crossed_axes()

    @property
    def name(self) -> str:
        return self.taxonomy.name

    @property
    def leaves(self) -> list[TreeNode]:
        return [n for n in self.nodes if n.is_leaf]

    def node(self, path: str) -> TreeNode:
        return next(n for n in self.nodes if n.path == path)


def load_taxonomy(path: str | Path) -> LoadedTaxonomy:
    file = Path(path)
    if not file.is_file():
        raise DistillError("taxonomy file not found; give the path of a taxonomy YAML file", path=file)
    data = _read_yaml(file)
    try:
        taxonomy = Taxonomy.model_validate(data)
    except ValidationError as exc:
        raise located(exc, data, file) from None
    for number, source in enumerate(taxonomy.heldout):
        source.path = str((file.parent / source.path).resolve())
        if not Path(source.path).exists():
            raise DistillError(f"heldout.{number}.path: {source.path} not found (paths in a taxonomy are relative to "
                               "the taxonomy file's folder)", path=file, line=line_of(data, ("heldout", number, "path")))
    nodes = _walk(taxonomy, file, data)
    return LoadedTaxonomy(taxonomy=taxonomy, file=file, nodes=nodes)


def _read_yaml(file: Path) -> Any:
    data = load_yaml(file, "taxonomy file")
    if not isinstance(data, dict):
        raise DistillError("a taxonomy must be a YAML mapping with name, system_prompt and tree", path=file, line=1)
    return data


def _walk(taxonomy: Taxonomy, file: Path, data: Any) -> list[TreeNode]:
    nodes: list[TreeNode] = []
    seen_ids: dict[str, str] = {}
    cache: dict[Path, list[Seed]] = {}

    def visit(name: str, node: Node, parents: list[TreeNode], loc: tuple) -> None:
        path = "/".join([*(p.path.rsplit("/", 1)[-1] for p in parents), name])
        own: list[Seed] = []
        for rel in node.seeds:
            seed_file = (file.parent / rel).resolve()
            if seed_file not in cache:
                cache[seed_file] = _read_seeds(seed_file, taxonomy, seen_ids, file, line_of(data, (*loc, "seeds")))
            own.extend(cache[seed_file])
        inherited = parents[-1].seeds if parents else []
        quota = node.quota if node.quota is not None else (parents[-1].quota if parents else None)
        tree_node = TreeNode(path=path, node=node, ancestors=list(parents), seeds=own + inherited, own_seeds=own,
                             quota=quota)
        nodes.append(tree_node)
        if tree_node.is_leaf and not tree_node.seeds:
            raise DistillError(
                f"tree.{'.children.'.join(path.split('/'))}: leaf {path!r} has no seeds; "
                "add `seeds:` to it or to one of its ancestors",
                path=file,
                line=line_of(data, loc),
            )
        for child_name, child in node.children.items():
            visit(child_name, child, [*parents, tree_node], (*loc, "children", child_name))

    for name, node in taxonomy.tree.items():
        visit(name, node, [], ("tree", name))
    return nodes


def _read_seeds(seed_file: Path, taxonomy: Taxonomy, seen_ids: dict[str, str], tax_file: Path, line: int | None):
    if not seed_file.is_file():
        raise DistillError(
            f"seed file {seed_file} not found; seed paths are relative to the taxonomy file's folder",
            path=tax_file,
            line=line,
        )
    model = ClassificationSeed if taxonomy.task == "classification" else QASeed
    seeds: list[Seed] = []
    for number, text in enumerate(read_text(seed_file, "seed file").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            seed = model.model_validate(json.loads(text))
        except json.JSONDecodeError as exc:
            raise DistillError(f"not valid JSON ({exc.msg}); one JSON object a line", path=seed_file, line=number) from None
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            hint = "unknown field; remove it" if err["type"] == "extra_forbidden" else err["msg"]
            fields = "id, text, label, rationale" if model is ClassificationSeed else "id, question, answer"
            raise DistillError(f"field {where!r}: {hint} (a seed has {fields})", path=seed_file, line=number) from None
        if isinstance(seed, ClassificationSeed) and seed.label not in (taxonomy.labels or {}):
            raise DistillError(
                f"label {seed.label!r} is not one of the taxonomy's labels ({', '.join(taxonomy.labels or {})})",
                path=seed_file,
                line=number,
            )
        if seed.id in seen_ids:
            raise DistillError(f"seed id {seed.id!r} is also used at {seen_ids[seed.id]}; give every seed its own id",
                               path=seed_file, line=number)
        seen_ids[seed.id] = f"{seed_file}:{number}"
        _check_seed_axes(seed, taxonomy, seed_file, number)
        seeds.append(seed)
    if not seeds:
        raise DistillError("seed file is empty; add at least one seed (one JSON object a line)", path=seed_file)
    return seeds


def _check_seed_axes(seed: Seed, taxonomy: Taxonomy, seed_file: Path, number: int) -> None:
    """A seed's `axes` must name the taxonomy's axes and their values: a typo would silently make it match nothing."""
    axes = taxonomy.crossed_axes()
    for name, value in seed.axes.items():
        if name not in axes:
            known = ", ".join(axes) or "none are defined"
            raise DistillError(f"field 'axes': unknown axis {name!r} (the taxonomy's axes: {known})",
                               path=seed_file, line=number)
        if value not in axes[name].values:
            raise DistillError(f"field 'axes': {value!r} is not a value of axis {name!r} "
                               f"({', '.join(axes[name].values)})", path=seed_file, line=number)
