"""Plain text: paragraphs are the parts between blank lines; no headings, no pages."""

from __future__ import annotations

import re
from pathlib import Path

from distill.documents.records import Block, CannotRead, Document
from distill.errors import DistillError
from distill.userfiles import read_text

BLANK_LINE = re.compile(r"\n[ \t]*\n")


def read_plain(path: Path, name: str) -> Document:
    """The text file at `path` (shown as `name`), a block a paragraph; CannotRead for one with no text."""
    blocks = [Block(kind="text", text=part.strip()) for part in BLANK_LINE.split(file_text(path)) if part.strip()]
    if not blocks:
        raise CannotRead("no text in it")
    return Document(file=name, format="text", blocks=blocks)


def file_text(path: Path) -> str:
    """A text file's content, or CannotRead with the reason (not UTF-8, unreadable): one file of many, so the
    others go on."""
    try:
        return read_text(path, "document").replace("\r\n", "\n")
    except DistillError as exc:
        raise CannotRead(exc.reason) from None
