"""A knowledge leaf's documents, found in a local folder.

InstructLab names a knowledge leaf's documents by a git repository, a commit and glob patterns. distill
reaches no network at run time, so it reads them from a local folder: `--documents DIR` (the repository's
files, or a folder holding a clone named after the repository), or `document.repo` itself when it is a
local folder inside the taxonomy's tree (relative to the qna.yaml, or file://). A leaf whose documents are
not found keeps its seed contexts as its passages, with a warning saying what to do.

A qna.yaml is often someone else's, and what is read goes to the teacher and into the dataset: documents are
read only inside the folder the user named (the taxonomy's tree, or `--documents`). A repo or a pattern that
leaves it (an absolute path, `..`, a link out) refuses the file, in one line naming it, before anything is read.

This module only finds the files: reading and chunking them is distill/documents' (PDF, Word, HTML, Markdown,
text, each passage with its file, page and headings), which sits above the taxonomy in the layers. So a
taxonomy converted in memory names its knowledge leaves' files (`Knowledge`) and `distill generate` reads them
(distill/documents/knowledge.py); the importer, which writes the passages out, is handed the reader
(`ReadPassages`) by its command.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from pydantic import BaseModel

from distill.taxonomy.instructlab.read import Leaf, Problem

# (folder, files relative to it) -> (the passages' texts, a line for each file or page that could not be read)
ReadPassages = Callable[[Path, list[str]], tuple[list[str], list[str]]]


class Knowledge(BaseModel):
    """The documents of a taxonomy's knowledge leaves, found and checked but not yet read: the folder they were
    looked for in (the taxonomy's tree, or `--documents`), and each leaf's files, relative to it."""

    folder: str
    files: dict[str, list[str]]  # leaf path -> its files, "/" between folders, in name order


class Refused(Exception):
    """A qna.yaml whose documents lie outside the folders distill may read: the file is not imported."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


# Where a clone of a knowledge repo goes, said in the warnings: the importer takes a folder of clones
# (`--documents`); a tree read in place (`distill generate -t DIR`) reads documents only inside itself, and its
# own `--documents` is a folder of the user's documents for every leaf, not of clones.
IN_PLACE_CLONES = ("put the clone inside the taxonomy's folder and point document.repo at it (a relative path), or "
                   "import the tree with `distill taxonomy import-instructlab TREE --documents FOLDER`")


def leaf_files(leaf: Leaf, root: Path, documents: Path | None,
               in_place: bool = False) -> tuple[list[str], Problem | None]:
    """The files of a knowledge leaf's documents, relative to `allowed_folder(root, documents)` ([] when none
    were found) and a warning, if any; `Refused` when the qna.yaml points outside `root` (the taxonomy's tree) or
    `documents`, before any file is read. `in_place`: the tree is read where it is (not imported), which the
    warnings' advice on where a clone goes follows."""
    ref = leaf.document
    assert ref is not None
    for number, pattern in enumerate(ref.patterns):
        if _leaves_folder(pattern):
            line = ref.pattern_lines[number] if number < len(ref.pattern_lines) else ref.line
            raise Refused(Problem(leaf.file, line, f"document.patterns.{number}: {pattern!r} leaves the repository's "
                                  "folder; a pattern is relative to it (like *.md or docs/**/*.md)"))
    folder, where = _repo_folder(leaf, documents)
    allowed = allowed_folder(root, documents)
    if folder is not None and not _inside(folder, allowed):
        raise Refused(Problem(leaf.file, ref.line, f"document.repo {ref.repo} is outside {_named(allowed, documents)}; "
                              "distill reads documents only there: " + (IN_PLACE_CLONES if in_place else
                              "put a clone there, or pass --documents with the folder holding it")))
    if folder is None or not folder.is_dir():
        return [], Problem(leaf.file, ref.line, f"document.repo {ref.repo} is not a local folder and distill reads "
                           f"no network: clone it at commit {ref.commit[:12]} and "
                           + (IN_PLACE_CLONES.replace("put the clone", "put it", 1) if in_place
                              else "pass --documents with the clone's folder")
                           + f"; {stand_in(leaf)} until then")
    try:
        files = sorted({path for pattern in ref.patterns for path in folder.glob(pattern) if path.is_file()})
    except (ValueError, NotImplementedError, OSError) as exc:
        raise Refused(Problem(leaf.file, ref.line, f"document.patterns: {exc}")) from None
    for path in files:
        if not _inside(path, folder):
            raise Refused(Problem(leaf.file, ref.line, f"document.patterns match {path.relative_to(folder)}, a link "
                                  f"to a file outside {where}; distill reads documents only inside it"))
    # Hidden files and folders (a clone's .git) are skipped, as distill/documents skips them in a folder.
    files = [path for path in files if not any(part.startswith(".") for part in path.relative_to(folder).parts)]
    if not files:
        return [], Problem(leaf.file, ref.line, f"no file in {where} matches document.patterns "
                           f"({', '.join(ref.patterns)}); {stand_in(leaf)}")
    base = allowed.resolve()  # every file resolved inside it (checked above): named relative to it
    return sorted({path.resolve().relative_to(base).as_posix() for path in files}), None


def allowed_folder(root: Path, documents: Path | None) -> Path:
    """The one folder a taxonomy's knowledge documents may be read in: `--documents` when given, else its tree."""
    return documents if documents is not None else root


def stand_in(leaf: Leaf) -> str:
    """What the leaf is generated from while its documents are missing."""
    if leaf.grounded:
        return "the leaf's seed contexts stand in for the documents"
    return "the leaf's seeds have no context either (schema before v3), so its items are asked without a passage"


def _leaves_folder(pattern: str) -> bool:
    """An absolute pattern (`/etc/passwd`, `~/x`, `C:\\x`), or one with a `..` step."""
    path = PurePosixPath(pattern.replace("\\", "/"))
    return path.is_absolute() or pattern.startswith("~") or bool(re.match(r"[A-Za-z]:", pattern)) or ".." in path.parts


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path`, links followed, is `folder` or below it."""
    return path.resolve().is_relative_to(folder.resolve())


def _named(allowed: Path, documents: Path | None) -> str:
    return f"the --documents folder ({allowed})" if documents is not None else f"the taxonomy's folder ({allowed})"


def _repo_folder(leaf: Leaf, documents: Path | None) -> tuple[Path | None, str]:
    """The local folder the leaf's documents are looked for in (None: a remote repo), and how to name it."""
    ref = leaf.document
    assert ref is not None
    if documents is not None:
        name = Path(ref.repo.rstrip("/")).name.removesuffix(".git")
        named = documents / name
        if name not in ("", ".", "..") and named.is_dir():
            return named, str(named)
        return documents, str(documents)
    local = ref.repo.removeprefix("file://")
    if "://" in local or local.startswith("git@"):
        return None, ref.repo
    path = Path(local).expanduser()
    path = path if path.is_absolute() else leaf.file.parent / path
    return path, str(path)
