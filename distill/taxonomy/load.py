"""Load a taxonomy file and its seeds, turning every mistake into one line naming file, line and field."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from distill.errors import DistillError
from distill.formats import FORMATS, detect, row_messages
from distill.tasks.conversation import compile_conversation
from distill.tasks.engine import Seed, Task, compile_task
from distill.tasks.registry import looks_like_path, resolve_task
from distill.tasks.schema import SchemaError
from distill.tasks.spec import TaskError, TaskSpec
from distill.taxonomy.instructlab.documents import Knowledge
from distill.taxonomy.instructlab.load import load_instructlab
from distill.taxonomy.model import Axis, Node, Taxonomy
from distill.taxonomy.paths import taxonomy_path
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
    context: str | None = None  # the grounding document, inherited from the nearest ancestor that has one
    documents: list[Path] = field(default_factory=list)  # the files and folders this node pins, resolved

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
    file: Path  # the taxonomy file (one built in Python: a name in its base folder, never read; an InstructLab folder)
    nodes: list[TreeNode]  # depth-first, parents before children
    task: Task  # the task, bound to this taxonomy (templates, labels, checks)
    source: Any = None  # what load_taxonomy was given (source, base_dir), to load it again with its code
    # Leaf path -> the passages of the user's documents attached to it (`distill generate --documents`): each a
    # chunk as a dict (text and provenance, distill/documents/records.py), plain data so it travels to Ray workers.
    passages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # What a run records of that folder (distill/documents/provenance.py `DocumentsRecord`, as data): its files,
    # their sha256 and declared licences, and the passages' texts; None without `--documents`.
    documents: dict[str, Any] | None = None
    # An InstructLab folder: its knowledge leaves' document files, read and chunked into `passages` by `distill
    # generate` (distill/documents/knowledge.py); None for a taxonomy file.
    knowledge: Knowledge | None = None

    @cached_property
    def crossed_axes(self) -> dict[str, Axis]:
        """`Taxonomy.crossed_axes()`, built once: every prompt of a run reads it."""
        return self.taxonomy.crossed_axes()

    @cached_property
    def _by_path(self) -> dict[str, TreeNode]:
        return {n.path: n for n in self.nodes}

    @property
    def name(self) -> str:
        return self.taxonomy.name

    @property
    def leaves(self) -> list[TreeNode]:
        return [n for n in self.nodes if n.is_leaf]

    def node(self, path: str) -> TreeNode:
        return self._by_path[path]

    def leaf(self, path: str) -> TreeNode:
        return self._by_path[path]

    def with_code(self) -> LoadedTaxonomy:
        """This taxonomy with its task's Python imported (custom checks, output models in its folder): for
        the commands that generate and curate, and only them."""
        if self.task.code_loaded or self.source is None:
            return self
        again = load_taxonomy(*self.source, code=True)
        return dataclasses.replace(again, taxonomy=again.taxonomy.model_copy(
            update={"generation": self.taxonomy.generation}), passages=self.passages, documents=self.documents)  # as planned (`--per-leaf`)


def load_taxonomy(source: str | Path | Taxonomy, base_dir: str | Path | None = None, *,
                  code: bool = False) -> LoadedTaxonomy:
    """A taxonomy file (or a `Taxonomy` built in Python, its paths relative to `base_dir`, default the current
    folder, or an InstructLab taxonomy folder), with its task and seeds, checked: every mistake is one line
    naming the file, line and field.

    Python files its task names (custom checks, output models) are checked by reading them, and imported
    only with `code=True`: what `distill generate` and `distill curate` pass, and nothing else."""
    origin = (source, base_dir)
    if isinstance(source, Taxonomy):
        file = Path(base_dir or Path.cwd()) / f"{source.name}.yaml"
        data: Any = None
        taxonomy = source.model_copy(deep=True)
    elif Path(source).is_dir():  # an InstructLab taxonomy folder, converted in memory
        converted, knowledge = load_instructlab(source)
        loaded = load_taxonomy(converted, base_dir=source, code=code)
        loaded.file, loaded.source, loaded.knowledge = Path(source), origin, knowledge  # the folder, as named
        return loaded
    else:
        file = Path(source)
        if not file.is_file():
            raise DistillError("taxonomy file not found; give the path of a taxonomy YAML file (or of an InstructLab "
                               "taxonomy folder)", path=file)
        data = _read_yaml(file)
        if isinstance(data.get("task"), dict):  # an inline task: its own errors, located inside it
            try:
                TaskSpec.model_validate(data["task"])
            except ValidationError as exc:
                raise located(exc, data, file, prefix=("task",), page="docs/taxonomies.md#your-own-task") from None
        try:
            taxonomy = Taxonomy.model_validate(data)
        except ValidationError as exc:
            raise located(exc, data, file, page="docs/taxonomies.md#the-taxonomy-file") from None
    for number, source_set in enumerate(taxonomy.heldout):
        source_set.path = str(_named_path(file, source_set.path, data, ("heldout", number, "path")))
        if not Path(source_set.path).exists():
            raise DistillError(f"heldout.{number}.path: {source_set.path} not found (paths in a taxonomy are relative "
                               "to the taxonomy file's folder)", path=file, line=line_of(data, ("heldout", number, "path")))
    task = _bind_task(taxonomy, file, data, code)
    nodes = _walk(taxonomy, task, file, data)
    return LoadedTaxonomy(taxonomy=taxonomy, file=file, nodes=nodes, task=task, source=origin)


def _read_yaml(file: Path) -> Any:
    data = load_yaml(file, "taxonomy file")
    if not isinstance(data, dict):
        raise DistillError("a taxonomy must be a YAML mapping with name, system_prompt and tree", path=file, line=1)
    return data


def _bind_task(taxonomy: Taxonomy, file: Path, data: Any, code: bool) -> Task:
    """The taxonomy's task, resolved (built-in, plugin, file or inline) and compiled against this taxonomy.
    A task from the taxonomy's own files may name Python only in the taxonomy's folder; a built-in or plugin
    task is code the user installed."""
    task_line = line_of(data, ("task",))
    if isinstance(taxonomy.task, str) and looks_like_path(taxonomy.task):
        _named_path(file, taxonomy.task, data, ("task",))  # a task file is read like any file a taxonomy names
    try:
        source = resolve_task(taxonomy.task, file.parent)
    except ValueError as exc:
        raise DistillError(f"task: {exc}", path=file, line=task_line) from None
    spec = source.spec
    if spec.labels == "required" and not taxonomy.labels:
        raise DistillError(f"task {spec.name!r} needs a `labels:` mapping (label: when it applies)", path=file,
                           line=task_line)
    if spec.labels == "none" and taxonomy.labels:
        raise DistillError(f"labels: only for tasks that use labels (task {spec.name!r} does not)", path=file,
                           line=line_of(data, ("labels",)))
    prefix: tuple[str, ...]
    if source.origin == "inline":
        where, lines, prefix = file, data, ("task",)
    else:
        where, lines, prefix = source.file or file, source.data, ()

    def locate(loc: tuple) -> str:
        line = line_of(lines, (*prefix, *loc))
        return f"{where}:{line}: {'.'.join(map(str, (*prefix, *loc)))}" if line else \
            f"{where}: {'.'.join(map(str, (*prefix, *loc)))}"

    try:
        installed = source.origin == "built-in" or source.origin.startswith("plugin")
        root = None if installed else file.parent
        if spec.conversation is not None:
            return compile_conversation(spec, source.folder, file, taxonomy.labels, taxonomy.generation, locate,
                                        code_root=root, code=code, axes=taxonomy.crossed_axes())
        return compile_task(spec, source.folder, file, taxonomy.labels, taxonomy.generation, locate,
                            code_root=root, code=code)
    except TaskError as exc:
        raise DistillError(f"{'.'.join(map(str, (*prefix, *exc.loc)))}: {exc.message}", path=where,
                           line=line_of(lines, (*prefix, *exc.loc))) from None


def _walk(taxonomy: Taxonomy, task: Task, file: Path, data: Any) -> list[TreeNode]:
    nodes: list[TreeNode] = []
    seen_ids: dict[str, str] = {}
    cache: dict[Path, list[Seed]] = {}
    reader = SeedReader(taxonomy, task, seen_ids)

    def visit(name: str, node: Node, parents: list[TreeNode], loc: tuple) -> None:
        path = "/".join([*(p.path.rsplit("/", 1)[-1] for p in parents), name])
        own: list[Seed] = []
        for index, entry in enumerate(node.seeds):
            if isinstance(entry, dict):  # a seed written inline
                own.append(reader.read(entry, file, line_of(data, (*loc, "seeds", index)), where=f"{loc_text(loc)}.seeds"))
                continue
            seed_file = _named_path(file, entry, data, (*loc, "seeds"))
            if seed_file not in cache:
                cache[seed_file] = reader.read_file(seed_file, file, line_of(data, (*loc, "seeds")))
            own.extend(cache[seed_file])
        inherited = parents[-1].seeds if parents else []
        quota = node.quota if node.quota is not None else (parents[-1].quota if parents else None)
        context = _context(node, file, data, loc)
        if context is None and parents:
            context = parents[-1].context
        tree_node = TreeNode(path=path, node=node, ancestors=list(parents), seeds=own + inherited, own_seeds=own,
                             quota=quota, context=context, documents=_documents(node, file, data, loc))
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


def _named_path(file: Path, value: str, data: Any, loc: tuple) -> Path:
    """A file the taxonomy names, or one line saying why it may not be read (distill/taxonomy/paths.py).
    A `Taxonomy` built in Python (`data` is None) is the user's own code naming files: read as named."""
    if data is None:
        return (file.parent / value).resolve()
    try:
        return taxonomy_path(file, value)
    except ValueError as exc:
        raise DistillError(f"{loc_text(loc)}: {exc}", path=file, line=line_of(data, loc),
                           page="docs/taxonomies.md#what-a-taxonomy-may-read") from None


def loc_text(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def _documents(node: Node, file: Path, data: Any, loc: tuple) -> list[Path]:
    """The files and folders a node pins, each under the taxonomy's project and present."""
    pinned = []
    for index, value in enumerate(node.documents):
        path = _named_path(file, value, data, (*loc, "documents", index))
        if not path.exists():
            raise DistillError(f"{loc_text(loc)}.documents.{index}: {value} not found (paths are relative to the "
                               "taxonomy file's folder)", path=file, line=line_of(data, (*loc, "documents", index)))
        pinned.append(path)
    return pinned


def _context(node: Node, file: Path, data: Any, loc: tuple) -> str | None:
    if node.context_file is None:
        return node.context
    path = _named_path(file, node.context_file, data, (*loc, "context_file"))
    if not path.is_file():
        raise DistillError(f"{loc_text(loc)}.context_file: {path} not found (paths are relative to the taxonomy "
                           "file's folder)", path=file, line=line_of(data, (*loc, "context_file")))
    return read_text(path, "context file")


class SeedReader:
    """Seeds as the task declares them: JSONL files and inline mappings, each checked with file and line."""

    def __init__(self, taxonomy: Taxonomy, task: Task, seen_ids: dict[str, str]):
        self.taxonomy, self.task, self.seen_ids = taxonomy, task, seen_ids
        self.axes = taxonomy.crossed_axes()
        self.fields = ", ".join(["id", *(n for n, f in task.seed_fields.items() if not f.optional)])

    def read_file(self, seed_file: Path, tax_file: Path, line: int | None) -> list[Seed]:
        if not seed_file.is_file():
            raise DistillError(
                f"seed file {seed_file} not found; seed paths are relative to the taxonomy file's folder",
                path=tax_file,
                line=line,
            )
        seeds: list[Seed] = []
        # Lines end at "\n" only: str.splitlines() would also cut at U+2028, U+0085 and the like, which JSON
        # strings may hold unescaped (json.dumps(ensure_ascii=False) writes them so).
        for number, text in enumerate(read_text(seed_file, "seed file").split("\n"), start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DistillError(f"not valid JSON ({exc.msg}); one JSON object a line", path=seed_file,
                                   line=number) from None
            seeds.append(self.read(row, seed_file, number))
        if not seeds:
            raise DistillError("seed file is empty; add at least one seed (one JSON object a line)", path=seed_file)
        return seeds

    def read(self, row: Any, path: Path, line: int | None, where: str = "") -> Seed:
        """One seed, validated against the task's seed fields; `where` prefixes field names (inline seeds)."""
        prefix = f"{where}: " if where else ""
        if not isinstance(row, dict):
            raise DistillError(f"{prefix}a seed is a JSON object (a seed has {self.fields})", path=path, line=line)
        row = self._from_chat_format(row, path, line, prefix)
        try:
            seed = self.task.seed_model.model_validate(row)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = ".".join(str(p) for p in err["loc"])
            hint = "unknown field; remove it" if err["type"] == "extra_forbidden" else err["msg"]
            raise DistillError(f"{prefix}field {name!r}: {hint} (a seed has {self.fields})", path=path,
                               line=line, page="docs/taxonomies.md#seeds") from None
        self._check_fields(seed, path, line, prefix)
        if seed.id in self.seen_ids:
            raise DistillError(f"{prefix}seed id {seed.id!r} is also used at {self.seen_ids[seed.id]}; give every "
                               "seed its own id", path=path, line=line)
        self.seen_ids[seed.id] = f"{path}:{line}"
        self._check_axes(seed, path, line, prefix)
        return seed

    def _from_chat_format(self, row: dict[str, Any], path: Path, line: int | None, prefix: str) -> dict[str, Any]:
        """A row in a chat or instruction format (distill/formats.py) as a question/answer seed: its first user
        turn and the assistant turn after it (a seed is one exchange, the few-shot turns). A row of the task's own
        fields is left as it is."""
        own = {"id", "axes", *self.task.seed_fields}
        if set(row) <= own or not detect(row):
            return row
        found = detect(row)
        if not {"question", "answer"} <= set(self.task.seed_fields):
            raise DistillError(f"{prefix}a {FORMATS[found[0]].title} row; the {self.task.spec.name} task's seeds have "
                               f"{self.fields}", path=path, line=line, page="docs/formats.md")
        turns = row_messages(row, path, line or 0, force_with="the task's own seed fields (question, answer)")
        users = [n for n, turn in enumerate(turns) if turn.get("role") == "user"]
        answer = next((turn for turn in turns[users[0] + 1:] if turn.get("role") == "assistant"), None) if users \
            else None
        if answer is None:
            raise DistillError(f"{prefix}no user turn followed by an assistant turn; a seed is one exchange",
                               path=path, line=line, page="docs/formats.md")
        seed_id = row.get("id") if row.get("id") is not None else f"{path.stem}-{line}"
        return {"id": str(seed_id), "question": turns[users[0]]["content"], "answer": answer["content"]}

    def _check_fields(self, seed: Seed, path: Path, line: int | None, prefix: str) -> None:
        """Label fields name one of the taxonomy's labels; output fields pass the task's output schema."""
        labels = self.taxonomy.labels or {}
        for name, declared in self.task.seed_fields.items():
            value = getattr(seed, name)
            if value is None:
                continue
            if declared.type == "label" and value not in labels:
                raise DistillError(f"{prefix}label {value!r} is not one of the taxonomy's labels "
                                   f"({', '.join(labels)})", path=path, line=line)
            if declared.type == "output":
                assert self.task.output_schema is not None  # TaskSpec: an `output` field needs an output_schema
                try:
                    self.task.output_schema.validate(value)
                except SchemaError as err:
                    raise DistillError(f"{prefix}field {name!r}: {err.where}: {err.message} (the task's output "
                                       "schema)", path=path, line=line) from None

    def _check_axes(self, seed: Seed, path: Path, line: int | None, prefix: str) -> None:
        """A seed's `axes` must name the taxonomy's axes and their values: a typo would silently make it match
        nothing."""
        for name, value in seed.axes.items():
            if name not in self.axes:
                known = ", ".join(self.axes) or "none are defined"
                raise DistillError(f"{prefix}field 'axes': unknown axis {name!r} (the taxonomy's axes: {known})",
                                   path=path, line=line)
            if value not in self.axes[name].values:
                raise DistillError(f"{prefix}field 'axes': {value!r} is not a value of axis {name!r} "
                                   f"({', '.join(self.axes[name].values)})", path=path, line=line)
