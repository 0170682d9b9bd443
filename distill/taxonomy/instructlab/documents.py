"""A knowledge leaf's documents, read from a local folder and cut into passages.

InstructLab names a knowledge leaf's documents by a git repository, a commit and glob patterns. distill
reaches no network at run time, so it reads them from a local folder: `--documents DIR` (the repository's
files, or a folder holding a clone named after the repository), or `document.repo` itself when it is a
local path (absolute, relative to the qna.yaml, or file://). A leaf whose documents are not found keeps its
seed contexts as its passages, with a warning saying what to do.
"""

from __future__ import annotations

from pathlib import Path

from distill.errors import DistillError
from distill.taxonomy.instructlab.read import Leaf, Problem
from distill.userfiles import read_text

# InstructLab cuts documents into chunks of about 1,000 words for its teacher; 600 leaves room for the
# few-shot seeds' own passages and the answer in an 8k-token window (SmolLM2, many local models).
CHUNK_WORDS = 600


def leaf_passages(leaf: Leaf, documents: Path | None,
                  chunk_words: int = CHUNK_WORDS) -> tuple[list[str], Problem | None]:
    """The passages of a knowledge leaf's documents ([] when none were found) and a warning, if any."""
    ref = leaf.document
    assert ref is not None
    folder, where = _repo_folder(leaf, documents)
    if folder is None:
        return [], Problem(leaf.file, ref.line, f"document.repo {ref.repo} is not a local folder and distill reads "
                           f"no network: clone it at commit {ref.commit[:12]} and pass --documents with the clone's "
                           "folder; the leaf's seed contexts stand in for the documents until then")
    files = sorted({path for pattern in ref.patterns for path in folder.glob(pattern) if path.is_file()})
    if not files:
        return [], Problem(leaf.file, ref.line, f"no file in {where} matches document.patterns "
                           f"({', '.join(ref.patterns)}); the leaf's seed contexts stand in for the documents")
    texts = []
    for path in files:
        try:
            texts.append(read_text(path, "knowledge document"))
        except DistillError as exc:
            return [], Problem(leaf.file, ref.line, f"{exc} (distill reads Markdown and plain-text documents); "
                               "the leaf's seed contexts stand in for the documents")
    passages = chunk("\n\n".join(texts), chunk_words)
    if not passages:
        return [], Problem(leaf.file, ref.line, f"the documents matching document.patterns in {where} hold no text; "
                           "the leaf's seed contexts stand in for them")
    return passages, None


def _repo_folder(leaf: Leaf, documents: Path | None) -> tuple[Path | None, str]:
    ref = leaf.document
    assert ref is not None
    if documents is not None:
        named = documents / Path(ref.repo.rstrip("/")).name.removesuffix(".git")
        if named.is_dir():
            return named, str(named)
        return documents, str(documents)
    local = ref.repo.removeprefix("file://")
    if "://" in local or local.startswith("git@"):
        return None, ref.repo
    path = Path(local).expanduser()
    path = path if path.is_absolute() else leaf.file.parent / path
    return (path, str(path)) if path.is_dir() else (None, ref.repo)


def chunk(text: str, words: int) -> list[str]:
    """Paragraphs packed into passages of at most `words` words (a longer paragraph is cut by words)."""
    passages: list[str] = []
    current: list[str] = []
    count = 0
    for paragraph in (p.strip() for p in text.split("\n\n")):
        if not paragraph:
            continue
        size = len(paragraph.split())
        if current and count + size > words:
            passages.append("\n\n".join(current))
            current, count = [], 0
        while size > words:
            tokens = paragraph.split()
            passages.append(" ".join(tokens[:words]))
            paragraph, size = " ".join(tokens[words:]), size - words
        if paragraph:
            current.append(paragraph)
            count += size
    if current:
        passages.append("\n\n".join(current))
    return passages
