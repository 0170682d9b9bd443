"""HTML through BeautifulSoup (Python's own html.parser: no compiled parser needed): h1..h6 as headings,
paragraphs, list items, preformatted text and tables as blocks; scripts, styles and navigation left out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from distill.documents.plain import file_text
from distill.documents.records import Block, CannotRead, Document
from distill.extras import needs

HEADINGS = {f"h{n}": n for n in range(1, 7)}
TEXT = ("p", "li", "pre", "blockquote", "dt", "dd", "figcaption", "caption")
DROPPED = ("script", "style", "noscript", "template", "nav")
SPACE = re.compile(r"\s+")


def read_html(path: Path, name: str) -> Document:
    """The HTML page at `path` (shown as `name`) as blocks; CannotRead for a page with no text."""
    with needs("documents", purpose=f"reading the HTML page {name}"):
        from bs4 import BeautifulSoup
    soup = BeautifulSoup(file_text(path), "html.parser")
    for tag in soup.find_all(DROPPED):
        tag.decompose()
    wanted = (*HEADINGS, *TEXT, "table")
    blocks: list[Block] = []
    for tag in soup.find_all(wanted):
        # An element inside another one taken whole (a paragraph in a list item, a cell's list) is already in it.
        if tag.find_parent(wanted) is not None:
            continue
        if tag.name == "table":
            rows = [" | ".join(_clean(cell.get_text(" ")) for cell in row.find_all(["th", "td"]))
                    for row in tag.find_all("tr")]
            blocks.append(Block(kind="table", text="\n".join(row for row in rows if row)))
            continue
        text = tag.get_text() if tag.name == "pre" else _clean(tag.get_text(" "))
        if not text.strip():
            continue
        level = HEADINGS.get(tag.name, 0)
        blocks.append(Block(kind="heading", text=text, level=level) if level else Block(kind="text", text=text))
    if not blocks:
        raise CannotRead("no text in headings, paragraphs, lists or tables")
    return Document(file=name, format="html", blocks=blocks)


def _clean(text: Any) -> str:
    return SPACE.sub(" ", str(text)).strip()
