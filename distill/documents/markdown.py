"""Markdown through markdown-it-py (CommonMark with tables): headings, and every other top-level block as
written in the file (its Markdown kept: lists, tables and code read better to a model as written)."""

from __future__ import annotations

from pathlib import Path

from distill.documents.plain import file_text
from distill.documents.records import Block, CannotRead, Document
from distill.extras import needs


def read_markdown(path: Path, name: str) -> Document:
    """The Markdown file at `path` (shown as `name`) as blocks; CannotRead for one with no text."""
    with needs("documents", purpose=f"reading the Markdown file {name}"):
        from markdown_it import MarkdownIt
    source = file_text(path)
    lines = source.split("\n")
    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    blocks: list[Block] = []
    for index, token in enumerate(tokens):
        if token.level != 0 or token.map is None or token.nesting == -1:
            continue
        if token.type == "heading_open":
            title = tokens[index + 1].content.strip()
            if title:
                blocks.append(Block(kind="heading", text=title, level=int(token.tag[1:])))
            continue
        text = "\n".join(lines[token.map[0]:token.map[1]]).strip()
        if text:
            blocks.append(Block(kind="table" if token.type == "table_open" else "text", text=text))
    if not blocks:
        raise CannotRead("no text in it")
    return Document(file=name, format="markdown", blocks=blocks)
