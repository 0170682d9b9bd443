"""What reading and chunking pass on: pydantic records, so a chunk's provenance has the same fields everywhere."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

FORMATS = {".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html", ".md": "markdown",
           ".markdown": "markdown", ".txt": "text"}
DECLARATION = "documents.yaml"  # in a documents folder: the licences its owner declares (provenance.py)


class Block(BaseModel):
    """A piece of a document's own structure, in reading order: a heading, a paragraph (or a page's text) or a
    table (rows on lines, cells joined by " | ")."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["heading", "text", "table"]
    text: str
    level: int = 0  # a heading's level, 1 the highest
    page: int | None = None  # 1-based, for formats that have pages (PDF)


class Document(BaseModel):
    """One file as read: its blocks, and the notes about parts of it that could not be read (a scanned page)."""

    file: str  # relative to the documents folder, with "/" between folders
    format: str
    pages: int | None = None  # PDF only: the other formats have no pages of their own
    blocks: list[Block]
    notes: list[str] = []

    @property
    def text(self) -> str:
        """The document's text: its blocks joined by a blank line. A chunk's span indexes this string."""
        return "\n\n".join(block.text for block in self.blocks)


class Unreadable(BaseModel):
    """A file, or a part of one, that could not be read, and why: printed as one line, and the others go on."""

    file: str
    reason: str

    def line(self) -> str:
        return f"{self.file}: {self.reason}"


class Chunk(BaseModel):
    """A passage of one document with where it came from: file, page, the headings above it, its character span
    in the document's text (`Document.text[start:end] == text`) and the sha256 of its text."""

    model_config = ConfigDict(frozen=True)

    id: str  # sha256 of file and text, shortened: the same passage of the same file keeps its id
    file: str
    page: int | None
    headings: list[str]
    start: int
    end: int
    sha256: str
    text: str


class CannotRead(Exception):
    """Raised by a format's reader with the reason a file cannot be read (read.py turns it into `Unreadable`)."""
