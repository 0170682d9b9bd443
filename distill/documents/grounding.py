"""A taxonomy with its leaves' passages (`distill generate --documents DIR`): the folder read, chunked and
attached, and each leaf given the chunks attached to it, for its prompts (distill/tasks/engine.py `passage`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from distill.documents.attach import attach
from distill.documents.library import load_library
from distill.documents.provenance import declared, documents_record
from distill.records import HeldoutSource
from distill.taxonomy.load import LoadedTaxonomy


def with_passages(loaded: LoadedTaxonomy, folder: Path, warn: Callable[[str], None],
                  questions: Callable[[HeldoutSource], int]) -> LoadedTaxonomy:
    """`loaded` with `passages` set from the documents in `folder`; `warn` gets a line for each file that could
    not be read, one for each pin that matches no document there, and one naming the leaves left without a passage
    (they are asked from the teacher's knowledge). `documents` is the record the run keeps (documents/provenance.py),
    with the question sets the folder holds out, each read by `questions` (which counts them, or says in one line
    why it cannot); a bad `documents.yaml` in the folder is one line."""
    library = load_library(folder)
    declaration = declared(folder, library)  # a mistake in it stops the run before any warning
    for line in library.reading.problems():
        warn(line)
    coverage = attach(loaded, library, folder)
    for pin in coverage.idle_pins:  # a pin into another folder than this one: its node gets no pinned chunk
        warn(f"pin that matches no document in {folder}: {pin}")
    if coverage.leaves_without:
        warn(f"{len(coverage.leaves_without)} of {len(coverage.leaves)} leaves have no passage in {folder} and are "
             f"asked without one: {', '.join(coverage.leaves_without)} (distill taxonomy show --documents)")
    passages: dict[str, list[dict]] = {}
    for each in coverage.attachments:
        passages.setdefault(each.leaf, []).append(each.chunk.model_dump())
    # What the run keeps of the folder (documents.json): the card and the checks never read the folder again.
    texts = {each.chunk.id: each.chunk.text for each in coverage.attachments}
    record = documents_record(folder, library, declaration, texts, questions)
    return dataclasses.replace(loaded, passages=passages, documents=record.model_dump())
