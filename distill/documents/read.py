"""Read a folder of documents: every file in a format distill reads, each by its format's reader; a file that
cannot be read is one `Unreadable` line naming it and why, and the others go on."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path, PurePosixPath

from pydantic import BaseModel

from distill.documents.declaration import held_out_sets
from distill.documents.markdown import read_markdown
from distill.documents.pdf import read_pdf
from distill.documents.plain import read_plain
from distill.documents.records import DECLARATION, FORMATS, CannotRead, Document, Unreadable
from distill.documents.web import read_html
from distill.documents.word import read_docx
from distill.errors import DistillError
from distill.records import HeldoutSource

READERS: dict[str, Callable[[Path, str], Document]] = {
    "pdf": read_pdf, "docx": read_docx, "html": read_html, "markdown": read_markdown, "text": read_plain}
PAGE = "docs/documents.md"


class Reading(BaseModel):
    """What a folder gave: the documents read, a line for each file (or page) that could not be, and the question
    sets its documents.yaml holds out (by their path in the folder), which were not read as documents."""

    folder: str
    documents: list[Document]
    unreadable: list[Unreadable]
    held_out: dict[str, HeldoutSource] = {}

    def problems(self) -> list[str]:
        """One line a problem: unreadable files, then the pages of read files that had no text."""
        return [each.line() for each in self.unreadable] + \
            [f"{document.file}: {note}" for document in self.documents for note in document.notes]


def document_files(folder: Path, held_out: Collection[str] = ()) -> list[Path]:
    """The files under `folder`, sorted by their path (so a reading is the same on every machine), without
    hidden files and folders, without links that lead outside `folder`, without its `documents.yaml`, and
    without the question sets it holds out (`held_out`: files or folders, relative to `folder`)."""
    if not folder.is_dir():
        raise DistillError("not a folder; give the folder that holds your documents (PDF, Word, HTML, Markdown, "
                           "text)", path=folder, page=PAGE)
    root = folder.resolve()
    kept_out = [PurePosixPath(name) for name in held_out]
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if not path.resolve().is_relative_to(root):
            continue
        if relative.as_posix() == DECLARATION:  # the folder's own declaration of licences, not a document
            continue
        if any(PurePosixPath(relative.as_posix()).is_relative_to(name) for name in kept_out):
            continue  # a question set held out: the teacher must never be shown it (docs/documents.md)
        found.append(path)
    return sorted(found, key=lambda path: path.relative_to(folder).as_posix())


def read_folder(folder: Path) -> Reading:
    """Every document under `folder`, read; see `Reading`. A mistake in the held-out sets its documents.yaml
    declares is one line, before any file is read."""
    held_out = held_out_sets(folder) if folder.is_dir() else {}
    documents: list[Document] = []
    unreadable: list[Unreadable] = []
    for path in document_files(folder, held_out):
        name = path.relative_to(folder).as_posix()
        try:
            documents.append(read_document(path, name))
        except CannotRead as exc:
            unreadable.append(Unreadable(file=name, reason=str(exc)))
    return Reading(folder=str(folder), documents=documents, unreadable=unreadable, held_out=held_out)


def read_document(path: Path, name: str) -> Document:
    """One file by its format's reader (its suffix says which); CannotRead with the reason it cannot be read."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(sorted(set(FORMATS)))
        raise CannotRead(f"skipped: {path.suffix or 'a file without a suffix'} is not a format distill reads "
                         f"({known})")
    return READERS[kind](path, name)
