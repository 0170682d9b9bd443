"""PDF through pypdf: a page's text layer, and the headings from the PDF's outline (its bookmarks).

pypdf over pdfplumber: on the shipped PDF pypdf read 5 to 10 times as many pages a second (benchmarks/README.md)
with the same words, the table's cells in row order; pdfplumber's extra (cell boxes, layout) serves no lexical
use. A page whose text layer is empty is a scanned page: a note, and the other pages go on."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from distill.documents.records import Block, CannotRead, Document
from distill.extras import needs

NO_TEXT = "no text layer (a scanned page?): run OCR on the file to use this page"


def read_pdf(path: Path, name: str) -> Document:
    """The PDF at `path` (shown as `name`) as blocks: per page, the outline's headings that start on it, then
    its text. CannotRead for an encrypted, broken or textless file."""
    with needs("documents", purpose=f"reading the PDF {name}"):
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    # pypdf logs what it repairs ("EOF marker not found") to stderr; the one line about the file says it all.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise CannotRead("encrypted: it needs a password; save a copy without one to use it")
        headings = _outline(reader, reader.outline, 1)
        texts = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise CannotRead(f"not a readable PDF ({type(exc).__name__}: {exc}); is the file complete?") from None
    blocks: list[Block] = []
    notes: list[str] = []
    for number, text in enumerate(texts, start=1):
        titles = headings.get(number, [])
        for level, title in titles:
            blocks.append(Block(kind="heading", text=title, level=level, page=number))
        body = _without_titles(text.strip(), [title for _, title in titles])
        if not text.strip():
            notes.append(f"page {number}: {NO_TEXT}")
        elif body:
            blocks.append(Block(kind="text", text=body, page=number))
    if not any(block.kind == "text" for block in blocks):
        raise CannotRead(f"no page has a text layer (a scanned document?): run OCR on it to use it "
                         f"({len(texts)} pages)")
    return Document(file=name, format="pdf", pages=len(texts), blocks=blocks, notes=notes)


def _outline(reader: Any, items: list, level: int) -> dict[int, list[tuple[int, str]]]:
    """Page number -> the (level, title) of the bookmarks that point at it, in outline order. pypdf gives the
    outline as a list where a nested list holds the children of the entry before it."""
    found: dict[int, list[tuple[int, str]]] = {}
    for item in items:
        if isinstance(item, list):
            for page, titles in _outline(reader, item, level + 1).items():
                found.setdefault(page, []).extend(titles)
            continue
        page = reader.get_destination_page_number(item)
        if page is not None and page >= 0 and item.title:
            found.setdefault(page + 1, []).append((level, str(item.title).strip()))
    return found


def _without_titles(text: str, titles: list[str]) -> str:
    """The page's text less its leading lines that repeat a bookmark's title (the heading printed on the page
    is already a heading block)."""
    lines = text.split("\n")
    while lines and titles and lines[0].strip() in titles:
        lines.pop(0)
    return "\n".join(lines).strip()
