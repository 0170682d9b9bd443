"""A folder of documents, read and chunked: what the commands and the attaching start from."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from distill.documents.chunk import MAX_CHARS, chunk_document
from distill.documents.read import Reading, read_folder
from distill.documents.records import Chunk


class Library(BaseModel):
    """The reading of a folder and its documents' chunks, in file order then reading order."""

    reading: Reading
    chunks: list[Chunk]


def load_library(folder: Path, max_chars: int = MAX_CHARS) -> Library:
    """Read every document under `folder` and chunk it; unreadable files are in `reading.unreadable`."""
    reading = read_folder(folder)
    chunks = [chunk for document in reading.documents for chunk in chunk_document(document, max_chars)]
    return Library(reading=reading, chunks=chunks)
