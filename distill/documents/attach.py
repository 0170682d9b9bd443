"""Attach chunks to the taxonomy's leaves by lexical relevance: BM25 (the `bm25s` package, English stop words,
Snowball stems through PyStemmer) over the chunks, one query a leaf made of its name, its description and its
own seeds' text. A chunk goes to the leaf whose query scores it highest, when that score reaches `min_score`.

A node may pin files or folders (`documents:` in the taxonomy): their chunks go to that node's leaves only (the
leaf itself, or the best of the leaves below it), whatever their score. bm25s over rank-bm25: kept up to date
(rank-bm25's last release is from 2022), scores every chunk for a query in one sparse product, and ships the
stop words and the stemmer hook; a hand-written BM25 would be the same forty lines again."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from distill.documents.library import Library
from distill.documents.records import Chunk
from distill.extras import needs
from distill.taxonomy.load import LoadedTaxonomy, TreeNode

# The lowest BM25 score that attaches an unpinned chunk. On the shipped clinic taxonomy (one set, 60 chunks: a
# first setting, to revisit on more documents) every chunk attached by relevance scored 3.77 or more with its
# leaf, while the visitors' note, about no leaf, scored at most 1.86 (docs/documents.md#attaching-chunks-to-leaves).
MIN_SCORE = 2.0


class Attachment(BaseModel):
    """A chunk attached to a leaf: its BM25 score with that leaf, and whether a pin put it there."""

    leaf: str
    score: float
    pinned: bool
    chunk: Chunk


class Coverage(BaseModel):
    """Every attachment, with what is left over: leaves that got no chunk, documents that gave no leaf a chunk,
    and pins that match no document read."""

    attachments: list[Attachment]
    leaves: list[str]  # every leaf, in the taxonomy's order
    leaves_without: list[str]
    unused_documents: list[str]
    idle_pins: list[str]

    def of_leaf(self, leaf: str) -> list[Attachment]:
        return [each for each in self.attachments if each.leaf == leaf]


def leaf_query(leaf: TreeNode) -> str:
    """What a leaf is about, in words: its path's names, its description and the text of its own seeds (its
    ancestors' seeds are shared with its siblings, so they would not tell the leaves apart)."""
    names = " ".join(leaf.path.replace("-", " ").replace("_", " ").split("/"))
    seeds = [str(value) for seed in leaf.own_seeds for name, value in seed if name not in ("id", "axes")
             and isinstance(value, str)]
    return "\n".join([names, leaf.node.description, *seeds])


def attach(loaded: LoadedTaxonomy, library: Library, folder: Path, min_score: float = MIN_SCORE) -> Coverage:
    """Each chunk of `library` (read from `folder`) attached to at most one leaf of `loaded` (module docstring)."""
    leaves = loaded.leaves
    chunks = library.chunks
    scores = _scores([leaf_query(leaf) for leaf in leaves], [_indexed(chunk) for chunk in chunks])
    pins = [(node, pin) for node in loaded.nodes for pin in node.documents]
    root = folder.resolve()
    attachments = []
    for column, chunk in enumerate(chunks):
        path = (root / chunk.file).resolve()
        pinning = [node for node, pin in pins if path == pin or path.is_relative_to(pin)]
        owner = max(pinning, key=lambda node: len(node.lineage), default=None)
        candidates = [row for row, leaf in enumerate(leaves) if owner is None or owner in leaf.lineage]
        best = max(candidates, key=lambda row: scores[row][column])  # ties: the first leaf, for a stable result
        if owner is not None or scores[best][column] >= min_score:
            attachments.append(Attachment(leaf=leaves[best].path, score=round(float(scores[best][column]), 4),
                                          pinned=owner is not None, chunk=chunk))
    used_files = {each.chunk.file for each in attachments}
    used_leaves = {each.leaf for each in attachments}
    read = [(root / document.file).resolve() for document in library.reading.documents]
    return Coverage(
        attachments=attachments,
        leaves=[leaf.path for leaf in leaves],
        leaves_without=[leaf.path for leaf in leaves if leaf.path not in used_leaves],
        unused_documents=[document.file for document in library.reading.documents if document.file not in used_files],
        idle_pins=[f"{node.path}: {pin}" for node, pin in pins
                   if not any(path == pin or path.is_relative_to(pin) for path in read)])


def _indexed(chunk: Chunk) -> str:
    """A chunk as BM25 sees it: its heading path counts as part of its text (a section's title says what it is
    about better than any sentence in it)."""
    return "\n".join([*chunk.headings, chunk.text])


def _scores(queries: list[str], texts: list[str]) -> list[list[float]]:
    """BM25 score of every text for every query: one row a query."""
    if not texts or not queries:
        return [[0.0] * len(texts) for _ in queries]
    with needs("documents", purpose="attaching documents to the taxonomy's leaves"):
        import bm25s
        import Stemmer
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    tokenized = bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)
    return [list(retriever.get_scores(tokens)) for tokens in tokenized]
