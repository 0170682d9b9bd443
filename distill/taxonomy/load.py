"""Load a taxonomy file and its seeds, turning every mistake into one line naming file, line and field."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from distill.errors import DistillError
from distill.taxonomy.model import Axis, ClassificationSeed, Node, QASeed, Seed, Taxonomy


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
        raise _located(exc, data, file) from None
    for source in taxonomy.heldout:
        source.path = str((file.parent / source.path).resolve())
    nodes = _walk(taxonomy, file, data)
    return LoadedTaxonomy(taxonomy=taxonomy, file=file, nodes=nodes)


def _read_yaml(file: Path) -> Any:
    try:
        data = YAML(typ="rt").load(file.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise DistillError(f"malformed YAML: {exc.problem}; fix the syntax", path=file, line=line) from None
    except (YAMLError, UnicodeDecodeError) as exc:
        raise DistillError(f"cannot read YAML: {exc}".splitlines()[0], path=file) from None
    if not isinstance(data, dict):
        raise DistillError("a taxonomy must be a YAML mapping with name, system_prompt and tree", path=file, line=1)
    return data


def _line_of(data: Any, loc: tuple) -> int | None:
    """The 1-based line of the deepest YAML node on `loc` that exists."""
    line = None
    node = data
    for key in loc:
        lc = getattr(node, "lc", None)
        if isinstance(node, dict) and key in node:
            position = lc.key if lc is not None else None
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            position = lc.item if lc is not None else None
        else:
            break
        if position is not None:
            try:
                line = position(key)[0] + 1
            except (KeyError, TypeError):
                pass
        node = node[key]
        if line is None and lc is not None:
            line = lc.line + 1
    return line


def _located(exc: ValidationError, data: Any, file: Path) -> DistillError:
    error = exc.errors()[0]
    loc = tuple(part for part in error["loc"] if part not in ("function-after[_names(), dict[str,Node]]",))
    field_path = ".".join(str(p) for p in loc) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"unknown field {loc[-1]!r}; remove it or check its spelling"
    elif error["type"] == "missing":
        message = f"missing required field {loc[-1]!r}"
    return DistillError(f"{field_path}: {message}", path=file, line=_line_of(data, loc))


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
                cache[seed_file] = _read_seeds(seed_file, taxonomy, seen_ids, file, _line_of(data, (*loc, "seeds")))
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
                line=_line_of(data, loc),
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
    for number, text in enumerate(seed_file.read_text(encoding="utf-8").splitlines(), start=1):
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
        if seed.id in seen_ids and seen_ids[seed.id] != str(seed_file):
            raise DistillError(f"seed id {seed.id!r} is also used in {seen_ids[seed.id]}", path=seed_file, line=number)
        seen_ids[seed.id] = str(seed_file)
        seeds.append(seed)
    if not seeds:
        raise DistillError("seed file is empty; add at least one seed (one JSON object a line)", path=seed_file)
    return seeds
