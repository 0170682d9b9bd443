"""An InstructLab taxonomy's knowledge documents read like any folder of documents: each file by its format's reader
(PDF, Word, HTML, Markdown, text; a file that cannot be read is one line), cut by the same chunker, each passage
with its provenance. The taxonomy layer finds and checks the files (distill/taxonomy/instructlab/documents.py:
only inside the taxonomy's tree or `--documents`); reading them is here, above it.

`with_knowledge` gives `distill generate` the knowledge leaves' passages the way `--documents` gives a leaf its
attached chunks (`LoadedTaxonomy.passages`, `documents`): an item takes its leaf's passages in turn, its example
records `meta.source`, the faithful and closed_book checks run on it, and documents.json and the dataset card
name the files. `passage_texts` is the importer's reader, for the passages it writes out as files."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from distill.documents.chunk import MAX_CHARS, chunk_document
from distill.documents.library import Library
from distill.documents.provenance import declared, documents_record
from distill.documents.read import Reading, read_document
from distill.documents.records import CannotRead, Chunk, Document, Unreadable
from distill.taxonomy.load import LoadedTaxonomy

# distill/documents' chunk, not InstructLab's 600 words (about 4,000 characters, 800 tokens): a passage is what one
# item's question is about and what `faithful` checks its answer against, so one section's worth (1,500
# characters, about 350 tokens, never across a heading or a page) keeps a question on one topic and the check on
# the text the answer came from, leaves the few-shot seeds' own contexts room in a small model's window, and is
# what `distill documents chunks` shows for the same files.
KNOWLEDGE_MAX_CHARS = MAX_CHARS


def read_files(folder: Path, files: list[str], max_chars: int = KNOWLEDGE_MAX_CHARS) -> Library:
    """The named files of `folder` (relative to it, "/" between folders), read and chunked; a file that cannot be
    read is in `reading.unreadable`, and the others go on."""
    documents: list[Document] = []
    unreadable: list[Unreadable] = []
    for name in files:
        try:
            documents.append(read_document(folder / name, name))
        except CannotRead as exc:
            unreadable.append(Unreadable(file=name, reason=str(exc)))
    chunks = [chunk for document in documents for chunk in chunk_document(document, max_chars)]
    return Library(reading=Reading(folder=str(folder), documents=documents, unreadable=unreadable), chunks=chunks)


def passage_texts(folder: Path, files: list[str], max_chars: int = KNOWLEDGE_MAX_CHARS) -> tuple[list[str], list[str]]:
    """The passages of `files` as text (each under its heading path, as Markdown headings, so a passage written
    to a file still says what section it is from), and a line for each file or page that could not be read."""
    library = read_files(folder, files, max_chars)
    return [_as_text(chunk) for chunk in library.chunks], library.reading.problems()


def with_knowledge(loaded: LoadedTaxonomy, warn: Callable[[str], None]) -> LoadedTaxonomy:
    """`loaded` with its knowledge leaves' passages (an InstructLab folder; unchanged otherwise): each leaf gets the
    chunks of its own files, which win over what `--documents` attached to it, and the run's record of the
    documents names their files too. `warn` gets a line for each file or page that could not be read, and one for
    each leaf none of whose files gave a passage (its items are asked without one)."""
    if loaded.knowledge is None:
        return loaded
    folder = Path(loaded.knowledge.folder)
    wanted = sorted({name for names in loaded.knowledge.files.values() for name in names})
    library = read_files(folder, wanted)
    for line in library.reading.problems():
        warn(line)
    passages = dict(loaded.passages)
    for leaf, names in loaded.knowledge.files.items():
        own = [chunk.model_dump() for chunk in library.chunks if chunk.file in names]
        if own:
            passages[leaf] = own
        else:
            warn(f"{leaf}: its documents ({', '.join(names)}) gave no passage; its items are asked without one")
    texts = {chunk["id"]: chunk["text"] for leaf in loaded.knowledge.files for chunk in passages.get(leaf, [])}
    record = documents_record(folder, library, declared(folder, library), texts).model_dump()
    if loaded.documents is not None:  # `--documents` too: one record of every file read, its folder first
        named = {each["file"] for each in loaded.documents["files"]}
        record = {**loaded.documents,
                  "files": [*loaded.documents["files"], *(f for f in record["files"] if f["file"] not in named)],
                  "passages": {**loaded.documents["passages"], **record["passages"]}}
    return dataclasses.replace(loaded, passages=passages, documents=record)


def _as_text(chunk: Chunk) -> str:
    headings = [f"{'#' * level} {heading}" for level, heading in enumerate(chunk.headings, 1)]
    return "\n\n".join([*headings, chunk.text])
