"""What a run records of the documents it was generated from (`documents.json` in the run folder): the folder,
each file read with its sha256, format, pages and the licence its owner declared, and the text of each passage an
example may rest on. The dataset card and the faithfulness check read this record, never the folder again: a run
folder travels, and its documents may have moved or changed since.

Licences are declared in the documents folder itself, in `documents.yaml`:

    license: CC-BY-4.0            # every file not named below
    licenses:
      protocols.pdf: proprietary  # a file, relative to the folder
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from distill.documents.library import Library
from distill.documents.records import DECLARATION
from distill.errors import DistillError
from distill.userfiles import line_of, load_yaml_mapping, located

PAGE = "docs/documents.md#licences-and-the-dataset-card"


class Declaration(BaseModel):
    """`documents.yaml`: a licence for every file (`license`), and one by file (`licenses`), which wins."""

    model_config = ConfigDict(extra="forbid")

    license: str | None = None
    licenses: dict[str, str] = Field(default_factory=dict)

    @field_validator("license")
    @classmethod
    def _named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("an empty licence; name it (CC-BY-4.0, proprietary ...) or leave the key out")
        return value

    @field_validator("licenses")
    @classmethod
    def _each_named(cls, licenses: dict[str, str]) -> dict[str, str]:
        for file, value in licenses.items():
            if not value.strip():
                raise ValueError(f"{file}: an empty licence; name it (CC-BY-4.0, proprietary ...)")
        return licenses


class DocumentFile(BaseModel):
    file: str  # relative to the folder, "/" between folders
    format: str
    pages: int | None = None  # PDF only
    sha256: str  # of the file's bytes
    license: str | None = None  # as declared in documents.yaml; None: not declared


class DocumentsRecord(BaseModel):
    folder: str  # absolute: the review serves the originals from it, whatever folder it is started in
    files: list[DocumentFile]
    passages: dict[str, str] = {}  # chunk id -> text, for the passages attached to a leaf


def read_declaration(folder: Path, files: list[str]) -> Declaration:
    """The folder's `documents.yaml` (none: nothing declared); a file it names that was not read is one line."""
    path = folder / DECLARATION
    if not path.is_file():
        return Declaration()
    data = load_yaml_mapping(path, "documents declaration", "license: NAME and licenses: {FILE: NAME}")
    try:
        declaration = Declaration.model_validate(data)
    except ValidationError as exc:
        raise located(exc, data, path, page=PAGE) from None
    for file in declaration.licenses:
        if file not in files:
            raise DistillError(f"licenses: {file}: no document of that name was read in {folder}; name a file "
                               f"relative to the folder ({', '.join(files[:5]) or 'none read'})", path=path,
                               line=line_of(data, ("licenses", file)), page=PAGE)
    return declaration


def declared(folder: Path, library: Library) -> Declaration:
    """The licences `folder`'s documents.yaml declares for the documents read into `library`."""
    return read_declaration(folder, [document.file for document in library.reading.documents])


def documents_record(folder: Path, library: Library, declaration: Declaration,
                     passages: dict[str, str]) -> DocumentsRecord:
    """The record of `folder` as read into `library`, with the licences `declaration` gives its files."""
    files = [DocumentFile(file=document.file, format=document.format, pages=document.pages,
                          sha256=_sha256(folder / document.file),
                          license=declaration.licenses.get(document.file, declaration.license))
             for document in library.reading.documents]
    return DocumentsRecord(folder=str(folder.resolve()), files=files, passages=passages)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
