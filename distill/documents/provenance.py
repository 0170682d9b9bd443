"""What a run records of the documents it was generated from (`documents.json` in the run folder): the folder,
each file read with its sha256, format, pages and the licence its owner declared, and the text of each passage an
example may rest on. The dataset card and the faithfulness check read this record, never the folder again: a run
folder travels, and its documents may have moved or changed since.

Licences, and the question sets held out, are declared in the documents folder itself, in `documents.yaml`
(declaration.py). The record names each held-out set too, with its sha256 and its number of questions, and is
where curation finds them again (`held_out_sources`), in the run and in a run resumed without `--documents`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from distill.documents.declaration import PAGE, Declaration, load_declaration
from distill.documents.library import Library
from distill.documents.records import DECLARATION
from distill.errors import DistillError
from distill.records import HeldoutSource
from distill.userfiles import line_of


class DocumentFile(BaseModel):
    file: str  # relative to the folder, "/" between folders
    format: str
    pages: int | None = None  # PDF only
    sha256: str  # of the file's bytes
    license: str | None = None  # as declared in documents.yaml; None: not declared


class HeldOutSet(BaseModel):
    """A question set of the folder held out: never read as a document, decontaminated against."""

    file: str  # relative to the folder, as documents.yaml names it
    path: str  # the folder as given to `--documents`, and the file in it: where curation reads it
    fields: list[str] | None = None
    format: str = "auto"
    sha256: str  # of the file's bytes; of a folder: of its files' names and sha256s
    questions: int  # the items decontaminated against


class DocumentsRecord(BaseModel):
    folder: str  # absolute: the review serves the originals from it, whatever folder it is started in
    files: list[DocumentFile]
    passages: dict[str, str] = {}  # chunk id -> text, for the passages attached to a leaf
    held_out: list[HeldOutSet] = []


def read_declaration(folder: Path, files: list[str]) -> Declaration:
    """The folder's `documents.yaml` (none: nothing declared); a file it names that was not read is one line."""
    declaration, data = load_declaration(folder)
    for file in declaration.licenses:
        if file not in files:
            raise DistillError(f"licenses: {file}: no document of that name was read in {folder}; name a file "
                               f"relative to the folder ({', '.join(files[:5]) or 'none read'})",
                               path=folder / DECLARATION, line=line_of(data, ("licenses", file)), page=PAGE)
    return declaration


def declared(folder: Path, library: Library) -> Declaration:
    """The licences `folder`'s documents.yaml declares for the documents read into `library`."""
    return read_declaration(folder, [document.file for document in library.reading.documents])


def documents_record(folder: Path, library: Library, declaration: Declaration, passages: dict[str, str],
                     questions: Callable[[HeldoutSource], int] | None = None) -> DocumentsRecord:
    """The record of `folder` as read into `library`, with the licences `declaration` gives its files, and its
    held-out sets each counted by `questions` (curation's reader, which this layer does not import; None: not
    counted, 0)."""
    files = [DocumentFile(file=document.file, format=document.format, pages=document.pages,
                          sha256=_sha256(folder / document.file),
                          license=declaration.licenses.get(document.file, declaration.license))
             for document in library.reading.documents]
    held_out = [HeldOutSet(file=name, path=source.path, fields=source.fields, format=source.format,
                           sha256=_sha256(Path(source.path)),
                           questions=questions(source) if questions else 0)
                for name, source in library.reading.held_out.items()]
    return DocumentsRecord(folder=str(folder.resolve()), files=files, passages=passages, held_out=held_out)


def held_out_sources(record: dict[str, Any] | None) -> list[HeldoutSource]:
    """The held-out sets a run's documents record names (`documents.json`, or `LoadedTaxonomy.documents`), as
    curation's decontamination reads them; each named by its file in the folder."""
    sets = [HeldOutSet.model_validate(each) for each in (record or {}).get("held_out") or []]
    return [HeldoutSource.model_validate({"path": each.path, "fields": each.fields, "format": each.format,
                                          "name": each.file}) for each in sets]


def _sha256(path: Path) -> str:
    if path.is_dir():  # a datasets or Hub-layout folder held out: its files' names and contents
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(path).as_posix()}\0{_sha256(file)}\n".encode())
        return digest.hexdigest()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
