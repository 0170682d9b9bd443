"""A first taxonomy proposed from a documents folder's headings, for a person to edit (`distill taxonomy
from-documents DIR --out FILE`).

The folder is read and chunked as generation reads it (library.py), and each chunk's heading path becomes a path
in the tree: the top headings are the top nodes, and the deepest headings that hold chunks the leaves. Identical
names under one parent merge (two files under a "Staff handbook" heading make one node). A heading that holds text
of its own and has headings below it keeps that text in a leaf `overview` under it. A file without headings is a
leaf named after the file. Each leaf is described by its heading and the first sentence of its first chunk, and
gets one draft seed made of the same (a taxonomy needs seeds; a person writes real ones): both are what
`distill taxonomy show --documents` attaches the chunks by, so the proposal attaches its own folder's chunks.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from distill.documents.library import load_library
from distill.documents.records import Chunk
from distill.errors import DistillError
from distill.owned import atomic_write
from distill.taxonomy.load import load_taxonomy
from distill.taxonomy.model import Taxonomy

HEADER = "# Proposed by `distill taxonomy from-documents`"  # the first line of every file written here: ours
OVERVIEW = "overview"  # the leaf for the text a heading holds above its own subheadings
FIRST_SENTENCE = re.compile(r"(?<=[.!?])\s")
LONGEST_SENTENCE = 240  # characters of a first sentence kept in a description: enough to say what the section is


@dataclass
class _Section:
    """A heading in the tree being built: the title it was first seen with, its first chunk, its subheadings."""

    title: str
    chunks: list[Chunk] = field(default_factory=list)
    children: dict[str, _Section] = field(default_factory=dict)


@dataclass
class Proposal:
    """What was written: the taxonomy file, its leaves and the lines about files that could not be read."""

    out: Path
    leaves: int
    nodes: int
    problems: list[str]


def node_name(text: str) -> str:
    """A heading as a node name: lowercase ASCII letters (accents dropped), digits and '-'; 'section' when none."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "section"


def first_sentence(text: str) -> str:
    """The first sentence of a chunk, on one line, cut at a word when it is long."""
    sentence = FIRST_SENTENCE.split(" ".join(text.split()), maxsplit=1)[0]
    if len(sentence) <= LONGEST_SENTENCE:
        return sentence
    return sentence[:LONGEST_SENTENCE].rsplit(" ", 1)[0] + " ..."


def propose(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """The taxonomy (as the mapping a taxonomy file holds) proposed from `folder`'s headings, and a line for each
    file that could not be read. A folder with no chunk at all is one line."""
    library = load_library(folder)
    root = _Section(title=folder.resolve().name)
    headed = {chunk.file for chunk in library.chunks if chunk.headings}
    for chunk in library.chunks:
        if chunk.headings:
            path = chunk.headings
        elif chunk.file not in headed:
            path = [Path(chunk.file).stem.replace("-", " ").replace("_", " ")]
        else:
            continue  # the text above a file's first heading: a title page, a preamble
        section = root
        for heading in path:
            section = section.children.setdefault(node_name(heading), _Section(title=heading))
        section.chunks.append(chunk)
    if not root.children:
        raise DistillError("no text to propose a taxonomy from: no document here could be read (PDF, Word, HTML, "
                           "Markdown, text)", path=folder, page="docs/documents.md")
    name = node_name(root.title)
    data = {"name": name, "description": f"Questions about the documents in {root.title}", "task": "qa",
            "system_prompt": f"You answer questions about {root.title}, briefly and exactly, from what its documents "
                             "say.",
            "tree": {slug: _node(section, [slug]) for slug, section in root.children.items()}}
    return data, library.reading.problems()


def _node(section: _Section, path: list[str]) -> dict[str, Any]:
    if not section.children:
        return _leaf(section.title, section.chunks[0], path)
    children = {slug: _node(child, [*path, slug]) for slug, child in section.children.items()}
    if section.chunks and OVERVIEW not in children:
        children[OVERVIEW] = _leaf(section.title, section.chunks[0], [*path, OVERVIEW])
    return {"description": section.title, "children": children}


def _leaf(title: str, chunk: Chunk, path: list[str]) -> dict[str, Any]:
    sentence = first_sentence(chunk.text)
    # A draft seed: a taxonomy needs one, and its words help attach the section's chunks to this leaf. Its id is
    # the leaf's path, unique in the tree ("-" joined, a/b-c and a-b/c would meet).
    seed = {"id": "/".join(path), "question": f"What should I know about {title}?", "answer": sentence}
    return {"description": f"{title}: {sentence}", "seeds": [seed]}


def write_first_taxonomy(folder: Path, out: Path, force: bool = False,
                         say: Callable[[str], None] = lambda line: None) -> Proposal:
    """Propose a taxonomy from `folder` and write it to `out`, a comment at its top saying how it was made. An
    existing `out` is replaced only with `force`, and never when distill did not write it (no header line): it
    may be the user's taxonomy, or this one with the user's edits. `say` gets a line for each unreadable file."""
    _check_out(out, force)
    data, problems = propose(folder)
    for line in problems:
        say(line)
    Taxonomy.model_validate(data)  # what we write must load

    def write(path: Path) -> None:
        with path.open("w", encoding="utf-8") as handle:
            handle.write(f"{HEADER} from the headings of {folder}.\n"
                         "# A first draft, for you to edit: each top heading is a node, each deepest heading that holds\n"
                         "# text a leaf, described by its heading and its first sentence; a file without headings is a\n"
                         "# leaf of its own. Each leaf's seed is a draft made of the same: write real questions and\n"
                         "# answers, merge or split nodes, and check the result with\n"
                         f"#   distill taxonomy show {out} --documents {folder}\n\n")
            yaml = YAML()
            yaml.width = 4096  # one line a value: folding leaves spaces at line ends
            yaml.dump(data, handle)

    out.parent.mkdir(parents=True, exist_ok=True)  # taxonomies/ in a new project
    atomic_write(out, write)
    loaded = load_taxonomy(out)  # the file written loads
    return Proposal(out=out, leaves=len(loaded.leaves), nodes=len(loaded.nodes), problems=problems)


def _check_out(out: Path, force: bool) -> None:
    if not os.path.lexists(out):
        return
    if out.is_dir():
        raise DistillError("is a folder; give the path of the taxonomy file to write", path=out)
    if not _ours(out):
        raise DistillError("exists and distill did not write it; move it or choose another --out", path=out)
    if not force:
        raise DistillError("already exists; pass --force to replace it (your edits to it would be lost)", path=out)


def _ours(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.readline(4096).decode("utf-8", "replace").startswith(HEADER)
    except OSError:
        return False
