"""Cut a document into chunks along its own structure: a chunk never crosses a heading or a page, and holds whole
blocks up to `max_chars`; a block longer than that is cut at a sentence end, else a line break, else a space.

A chunk depends on its own document alone (its id is the sha256 of file and text), so editing one file changes
only that file's chunks: what was generated from the others stays valid."""

from __future__ import annotations

import hashlib
import re

from distill.documents.records import Chunk, Document

MAX_CHARS = 1500  # about 350 tokens: a passage a teacher prompt holds with room for the seeds and the answer
BREAKS = (re.compile(r"(?<=[.!?])\s+"), re.compile(r"\n"), re.compile(r"\s+"))


def chunk_document(document: Document, max_chars: int = MAX_CHARS) -> list[Chunk]:
    """The document's chunks, in reading order (see the module docstring)."""
    chunks: list[Chunk] = []
    headings: list[str] = []
    group: list[tuple[int, int]] = []  # spans of the blocks gathered for the next chunk
    page: int | None = None
    text = document.text

    def flush() -> None:
        if group:
            chunks.append(_chunk(document.file, text, page, headings, group[0][0], group[-1][1]))
            group.clear()

    offset = 0
    for block in document.blocks:
        start, end = offset, offset + len(block.text)
        offset = end + 2  # the blank line between blocks in Document.text
        if block.kind == "heading":
            flush()
            headings = [*headings[:max(block.level - 1, 0)], block.text]
            page = block.page
            continue
        if block.page != page:
            flush()
            page = block.page
        for piece in _pieces(text, start, end, max_chars):
            if group and piece[1] - group[0][0] > max_chars:
                flush()
            group.append(piece)
    flush()
    return chunks


def _pieces(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """The span [start, end) cut into spans of at most `max_chars`, each at the last sentence end, else line
    break, else space before the limit (mid-word only where a word is longer than the limit)."""
    pieces = []
    while end - start > max_chars:
        window = text[start:start + max_chars]
        cut = next((match.start() for pattern in BREAKS for match in reversed(list(pattern.finditer(window)))
                    if match.start() > max_chars // 4), max_chars)
        pieces.append((start, start + cut))
        start += cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        pieces.append((start, end))
    return pieces


def _chunk(file: str, text: str, page: int | None, headings: list[str], start: int, end: int) -> Chunk:
    passage = text[start:end]
    digest = hashlib.sha256(passage.encode()).hexdigest()
    ident = hashlib.sha256(f"{file}\n{passage}".encode()).hexdigest()[:16]
    return Chunk(id=ident, file=file, page=page, headings=list(headings), start=start, end=end, sha256=digest,
                 text=passage)
