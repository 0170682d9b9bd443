"""Reading an InstructLab taxonomy: every `qna.yaml` below a folder, checked against InstructLab's own
schema (versions 1, 2 and 3, from the `instructlab-schema` package; a file without `version:` is version 1, as
InstructLab reads it), as typed leaves plus a list of problems. What an older version lacks gets a default and a
note naming it (`Leaf.notes`), so the import report says what was filled in.

A bad file never stops the others: each problem is a `Problem` naming the file, the line and the reason,
and the valid leaves are still returned. The JSON Schemas are InstructLab's; the checking is jsonschema's;
line numbers come from ruamel.yaml (InstructLab's own parser shells out to `yq` for them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from distill.errors import DistillError
from distill.extras import needs
from distill.userfiles import line_of, load_yaml

VERSION = 3  # the newest schema
VERSIONS = (1, 2, 3)
QNA = "qna.yaml"


@dataclass(frozen=True)
class Problem:
    """One reason a qna.yaml file (or part of it) was not imported."""

    file: Path
    line: int | None
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}" if self.line else f"{self.file}: {self.reason}"


class Pair(BaseModel):
    """One seed: a question (or instruction) and its answer, with the passage it is about when it has one."""

    question: str
    answer: str
    context: str | None = None


class DocumentRef(BaseModel):
    repo: str
    commit: str
    patterns: list[str]
    line: int | None = None  # of `document.repo`, for a warning about it
    pattern_lines: list[int | None] = []  # of each of `document.patterns`


class Leaf(BaseModel):
    """A valid qna.yaml: its folder (relative to the taxonomy root) and what distill needs of it."""

    file: Path
    folder: tuple[str, ...]
    kind: Literal["skill", "knowledge"]
    description: str  # a skill's task_description; a knowledge leaf's domain and document outline
    pairs: list[Pair]
    document: DocumentRef | None = None
    notes: list[Problem] = []  # what an older schema version lacked and what stands in for it

    @property
    def grounded(self) -> bool:
        return any(pair.context for pair in self.pairs)


def read_taxonomy(root: Path) -> tuple[list[Leaf], list[Problem]]:
    """Every qna.yaml below `root`, in path order: the valid leaves, and the problems of the others."""
    if not root.is_dir():
        raise DistillError("not a folder; give the root folder of an InstructLab taxonomy (it holds "
                           "compositional_skills/ and knowledge/)", path=root)
    leaves: list[Leaf] = []
    problems: list[Problem] = []
    for file in sorted([*root.rglob(QNA), *root.rglob("qna.yml")]):
        if any(part.startswith(".") for part in file.relative_to(root).parts):
            continue  # .git and other hidden folders
        if file.name != QNA:
            problems.append(Problem(file, None, f"InstructLab reads only files named {QNA}; rename it"))
            continue
        if not file.resolve().is_relative_to(root.resolve()):  # what it holds would go to the teacher: not read
            problems.append(Problem(file, None, "a link to a file outside the taxonomy's folder; distill reads only "
                                                "files inside it: copy the file in"))
            continue
        leaf, found = read_qna(file, root)
        problems += found
        if leaf is not None:
            leaves.append(leaf)
    return leaves, problems


def read_qna(file: Path, root: Path) -> tuple[Leaf | None, list[Problem]]:
    """One qna.yaml: the leaf (None when the file is invalid) and every problem found in it."""
    try:
        data = load_yaml(file, "qna.yaml file")
    except DistillError as exc:  # malformed YAML, not UTF-8, unreadable
        return None, [Problem(file, exc.line, exc.reason)]
    if data is None:
        return None, [Problem(file, None, "empty file; an InstructLab qna.yaml needs version, created_by and "
                                          "seed_examples")]
    if not isinstance(data, dict):
        return None, [Problem(file, 1, "a qna.yaml is a YAML mapping (version, created_by, seed_examples, ...)")]
    version = data.get("version", 1)  # InstructLab reads a file without `version:` as version 1
    if version not in VERSIONS or isinstance(version, bool):
        return None, [Problem(file, line_of(data, ("version",)) or 1,
                              f"version: {version!r}; distill imports InstructLab schema versions 1, 2 and 3 "
                              "(a file without `version:` is version 1)")]
    folder = file.parent.relative_to(root).parts
    kind = _kind(folder, data)
    problems = [Problem(file, line, reason) for line, reason in schema_problems(data, kind, version)]
    if not problems:
        problems = [Problem(file, line_of(data, loc), f"{_dotted(loc)}: only blanks; write the text")
                    for loc in _blank_texts(data, _flat(kind, version))]
    if not folder:
        problems.append(Problem(file, None, "a qna.yaml at the taxonomy's root has no topic; put it in a folder "
                                            "(the folders are the taxonomy's nodes)"))
    if problems:
        return None, problems
    leaf = _leaf(file, folder, kind, version, data)
    if "version" not in data:
        leaf.notes.insert(0, Problem(file, None, "no `version:`, read as InstructLab schema version 1"))
    return leaf, []


def _kind(folder: tuple[str, ...], data: dict) -> Literal["skill", "knowledge"]:
    """As InstructLab decides: by the top folder, else by whether the file names a document."""
    if folder and folder[0] == "knowledge":
        return "knowledge"
    if folder and folder[0] in ("compositional_skills", "foundational_skills"):
        return "skill"
    return "knowledge" if "document" in data else "skill"


def _flat(kind: str, version: int) -> bool:
    """Whether seed_examples are flat question/answer pairs: every skill; knowledge before version 3."""
    return kind == "skill" or version < 3


def _leaf(file: Path, folder: tuple[str, ...], kind: str, version: int, data: dict) -> Leaf:
    notes: list[Problem] = []
    if kind == "skill":
        pairs = [Pair(question=_text(s["question"]), answer=_text(s["answer"]),
                      context=_text(s["context"]) if s.get("context") else None) for s in data["seed_examples"]]
        description = " ".join(str(data["task_description"]).split())
        if not description:  # schema v1 allows an empty task_description
            description = folder[-1].replace("_", " ").capitalize()
            notes.append(Problem(file, line_of(data, ("task_description",)), f"task_description is empty (schema "
                                 f"v{version} allows it); the node's description is its folder's name, {description!r}"))
        return Leaf(file=file, folder=folder, kind="skill", description=description, pairs=pairs, notes=notes)
    document = data["document"]
    if version < 3:
        # Knowledge before v3 has no document_outline and no per-seed context; InstructLab itself reads knowledge
        # only from v3 on, but what the file says is still a domain, a description, seeds and documents.
        pairs = [Pair(question=_text(s["question"]), answer=_text(s["answer"])) for s in data["seed_examples"]]
        about = " ".join(str(data["task_description"]).split())
        description = f"{data['domain']}: {about}" if about else str(data["domain"])
        notes.append(Problem(file, line_of(data, ("domain",)), f"knowledge schema v{version} has no document_outline "
                             "and its seeds no context: the description is domain and task_description, and only "
                             "the documents give passages (InstructLab itself reads knowledge from v3 on)"))
    else:
        pairs = [Pair(question=_text(qa["question"]), answer=_text(qa["answer"]), context=_text(example["context"]))
                 for example in data["seed_examples"] for qa in example["questions_and_answers"]]
        description = f"{data['domain']}: {' '.join(str(data['document_outline']).split())}"
    return Leaf(file=file, folder=folder, kind="knowledge", description=description, pairs=pairs, notes=notes,
                document=DocumentRef(repo=str(document["repo"]), commit=str(document["commit"]),
                                     patterns=[str(p) for p in document["patterns"]],
                                     line=line_of(data, ("document", "repo")),
                                     pattern_lines=[line_of(data, ("document", "patterns", n))
                                                    for n in range(len(document["patterns"]))]))


def _blank_texts(data: dict, flat: bool) -> list[tuple]:
    """Where a seed's text is only blanks (the schema asks for one character; a blank is not a seed)."""
    found = []
    for number, example in enumerate(data["seed_examples"]):
        pairs: list[tuple[tuple, Any]] = [((), example)] if flat else \
            [(("questions_and_answers", index), pair) for index, pair in enumerate(example["questions_and_answers"])]
        if not flat:
            pairs.append(((), {"context": example["context"]}))
        for at, pair in pairs:
            found += [("seed_examples", number, *at, key) for key in ("question", "answer", "context")
                      if key in pair and not str(pair[key]).strip()]
    return found


def _text(value: Any) -> str:
    """Seed text without the line break a YAML block scalar (`|`) ends with, nor surrounding blanks."""
    return str(value).strip()


# -- InstructLab's schema -------------------------------------------------------------------------------------

SCHEMA_FILES = {"skill": "compositional_skills.json", "knowledge": "knowledge.json"}


@lru_cache(maxsize=None)
def _validator(kind: str, version: int) -> Any:
    """jsonschema's validator for InstructLab's schema of this kind and version (its `$ref`s resolved in the
    package). The package marks knowledge v1 and v2 deprecated; their schemas still say what a valid file holds."""
    with needs("instructlab", purpose="reading InstructLab taxonomies"):  # jsonschema comes with it
        from instructlab.schema import schema_base
        from jsonschema.validators import validator_for
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

    base = schema_base() / f"v{version}"

    def retrieve(uri: str) -> Resource:
        return Resource.from_contents(json.loads((base / uri.removeprefix("./")).read_text("utf-8")),
                                      default_specification=DRAFT202012)

    schema = json.loads((base / SCHEMA_FILES[kind]).read_text("utf-8"))
    # Registry is an attrs class whose private field `_retrieve` takes `retrieve`: mypy's attrs plugin misses it.
    return validator_for(schema)(schema, registry=Registry(retrieve=retrieve))  # type: ignore[call-arg]


def schema_problems(data: dict, kind: str, version: int = VERSION) -> list[tuple[int | None, str]]:
    """Every way `data` breaks InstructLab's schema, as (line, `field.path: what to do`), in file order."""
    found = []
    for error in _validator(kind, version).iter_errors(data):
        loc = tuple(error.absolute_path)
        for at, message in _explain(error, loc, version):
            found.append((line_of(data, at) or 1, f"{_dotted(at)}: {message}"))
    return sorted(set(found), key=lambda item: (item[0] or 0, item[1]))


def _explain(error: Any, loc: tuple, version: int) -> list[tuple[tuple, str]]:
    """(where, what to do) for one schema error; an object with unknown fields gives one entry a field."""
    rule, instance = error.validator, error.instance
    if rule == "unevaluatedProperties" and isinstance(instance, dict):
        allowed = set(error.schema.get("properties", {})) | ({"version"} if not loc else set())
        unknown = [key for key in instance if key not in allowed]
        known = ", ".join(sorted(allowed))
        return [((*loc, key), f"unknown field {key!r}; InstructLab's schema v{version} allows {known}")
                for key in unknown]
    if rule == "minItems":
        what = {"seed_examples": "seed examples", "questions_and_answers": "question-and-answer pairs",
                "patterns": "patterns"}.get(str(loc[-1]) if loc else "", "items")
        return [(loc, f"{len(instance)} {what}; InstructLab needs at least {error.validator_value}")]
    if rule == "required":
        missing = [key for key in error.validator_value if key not in instance]
        return [(loc, f"missing required field {key!r}") for key in missing]
    if rule == "minLength":
        return [(loc, "empty; write the text")]
    if rule == "uniqueItems":
        return [(loc, "repeats an item; every seed example must differ")]
    if rule == "type":
        return [(loc, f"must be {'an' if error.validator_value in ('array', 'object', 'integer') else 'a'} "
                      f"{error.validator_value} (got {type(instance).__name__})")]
    return [(loc, error.message[:200])]


def _dotted(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"
