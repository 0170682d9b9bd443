"""An InstructLab taxonomy as a distill taxonomy: folders become nodes, qna.yaml files become leaves (a folder
with both its own qna.yaml and subfolders holding more gets its own file as a child of the same name).

Every leaf runs the built-in `grounded-qa` task. A skill without contexts is a leaf whose seeds are its
question/answer pairs. A grounded skill (seeds with a `context`) gets one child node a distinct context,
so every item is asked and answered against a real passage; the seeds keep their own contexts for the
few-shot turns. A knowledge leaf whose documents are found locally (see documents.py) is grounded in their
passages: converted in memory, it stays one leaf and names its files (`Converted.knowledge`), which `distill
generate` reads and chunks, each item taking the leaf's passages in turn, with their provenance; imported into a
file (`read` given), it gets one child a passage. Without its documents it gets one child a seed context, so its
data is grounded either way.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.taxonomy.instructlab.documents import (
    Knowledge,
    ReadPassages,
    Refused,
    allowed_folder,
    leaf_files,
    stand_in,
)
from distill.taxonomy.instructlab.read import Leaf, Problem, read_taxonomy

TASK = "grounded-qa"
SYSTEM_PROMPT = ("You are a helpful, accurate assistant. When a passage is given, answer from the passage; "
                 "otherwise do what the request asks.")


@dataclass
class Converted:
    """The taxonomy as YAML-ready data, the files it names (path relative to the taxonomy -> text), and what
    was left out."""

    data: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)  # invalid files, each one skipped
    warnings: list[Problem] = field(default_factory=list)  # imported, with something to know (documents)
    notes: list[Problem] = field(default_factory=list)  # imported, with a default for what an older schema lacks
    leaves: int = 0
    seeds: int = 0
    knowledge: Knowledge | None = None  # converted in memory: the knowledge leaves' files, read at generate time


def jsonl_line(row: dict[str, Any]) -> str:
    """One JSONL line. Python's str.splitlines (the seed reader's) also breaks at U+0085, U+2028 and U+2029,
    which json.dumps leaves raw: they are escaped."""
    text = json.dumps(row, ensure_ascii=False)
    return text.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"


def node_name(folder: str) -> str:
    """A folder's name as a node name: lowercase ASCII letters (accents dropped), digits, '-' and '_'."""
    ascii_name = unicodedata.normalize("NFKD", folder).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9_-]+", "-", ascii_name.lower()).strip("-_")


def convert(root: Path, name: str, *, files_dir: str | None = None, documents: Path | None = None,
            per_leaf: int = 3, system_prompt: str = SYSTEM_PROMPT, read: ReadPassages | None = None) -> Converted:
    """The taxonomy below `root`. `files_dir` (relative to the taxonomy file): write seeds and passages as files
    there; None: keep them inline (a taxonomy converted in memory). `read`: read a knowledge leaf's documents now
    into passage children (the importer's); None: name them in `Converted.knowledge` for `distill generate`."""
    leaves, problems = read_taxonomy(root)
    converted = Converted(data={
        "name": name,
        "description": f"Imported from the InstructLab taxonomy {root.name}",
        "task": TASK,
        "system_prompt": system_prompt,
        "generation": {"per_leaf": per_leaf},
        "tree": {},
    }, problems=problems)
    folder = allowed_folder(root, documents)
    knowledge = Knowledge(folder=str(folder), files={})
    paths = {id(leaf): tuple(node_name(part) for part in leaf.folder) for leaf in leaves}
    parents = {path[:depth] for path in paths.values() for depth in range(1, len(path))}
    claimed: dict[tuple[str, ...], Path] = {}  # node path -> the qna.yaml that made it a leaf
    for leaf in leaves:
        path = paths[id(leaf)]
        if not all(path):
            converted.problems.append(Problem(leaf.file, None, "a folder name has no letter or digit; rename it "
                                              "(node names are lowercase letters, digits, '-' and '_')"))
            continue
        while path in parents:
            # Its folder has subtopics too: the folder is their parent, and its own file a child named like it
            # (geography/qna.yaml beside geography/highways/qna.yaml: the leaf geography/geography).
            path = (*path, path[-1])
        if path in claimed:
            converted.problems.append(Problem(leaf.file, None, f"its folder names the same node as {claimed[path]} "
                                              f"({'/'.join(path)}); rename one of the folders"))
            continue
        files: list[str] = []
        if leaf.kind == "knowledge":
            try:
                files, warning = leaf_files(leaf, root, documents, in_place=read is None)
            except Refused as refused:  # its documents lie outside what the user named: not imported
                converted.problems.append(refused.problem)
                continue
            if warning is not None:
                converted.warnings.append(warning)
        passages: list[str] = []
        if files and read is not None:
            passages, unread = read(folder, files)
            converted.warnings += [Problem(leaf.file, leaf.document.line if leaf.document else None, line)
                                   for line in unread]
            if not passages:
                converted.warnings.append(Problem(leaf.file, leaf.document.line if leaf.document else None,
                                                  f"its documents in {folder} gave no passage; {stand_in(leaf)}"))
        elif files:
            knowledge.files["/".join(path)] = files
        claimed[path] = leaf.file
        converted.notes += leaf.notes
        node = _place(converted.data["tree"], path)
        _fill(converted, node, leaf, "/".join(path), files_dir, passages, "/".join(path) in knowledge.files)
    converted.knowledge = knowledge if knowledge.files else None
    return converted


def _place(tree: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """The node at `path`, made with its parents (a folder's title as their description) where missing."""
    nodes = tree
    node: dict[str, Any] = {}
    for depth, part in enumerate(path, 1):
        node = nodes.setdefault(part, {"description": part.replace("_", " ").replace("-", " ").capitalize()})
        if depth < len(path):
            nodes = node.setdefault("children", {})
    return node


def _fill(converted: Converted, node: dict[str, Any], leaf: Leaf, path: str, files_dir: str | None,
          passages: list[str], read_later: bool) -> None:
    node["description"] = leaf.description
    seeds = [{"id": f"{path}#{number}", **({"context": pair.context} if pair.context else {}),
              "question": pair.question, "answer": pair.answer} for number, pair in enumerate(leaf.pairs, 1)]
    if files_dir is None:
        node["seeds"] = seeds
    else:
        seed_file = f"{files_dir}/{path}.jsonl"
        converted.files[seed_file] = "".join(jsonl_line(seed) for seed in seeds)
        node["seeds"] = seed_file
    children: dict[str, Any] = {}
    if passages:
        width = len(str(len(passages)))
        for number, passage in enumerate(passages, 1):
            child_name = f"passage-{number:0{width}d}"
            child: dict[str, Any] = {"description": f"Passage {number} of {len(passages)} of its documents"}
            if files_dir is None:
                child["context"] = passage
            else:
                child["context_file"] = f"{files_dir}/{path}/{child_name}.md"
                converted.files[child["context_file"]] = passage + "\n"
            children[child_name] = child
    elif (leaf.grounded or leaf.kind == "knowledge") and not read_later:  # the stand-in for missing documents
        contexts = list(dict.fromkeys(pair.context for pair in leaf.pairs if pair.context))
        for number, context in enumerate(contexts, 1):
            children[f"context-{number}"] = {"description": f"Seed context {number} of {len(contexts)}",
                                             "context": context}
    if children:
        node["children"] = children
    converted.leaves += max(1, len(children))
    converted.seeds += len(seeds)
