"""HTML through BeautifulSoup (Python's own html.parser: no compiled parser needed): h1..h6 as headings,
paragraphs, list items, preformatted text and tables as blocks, and text standing bare in a container (a `<div>`
of text, as many sites write) as a block of its own; the head, scripts, styles and navigation left out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from distill.documents.plain import file_text
from distill.documents.records import Block, CannotRead, Document
from distill.extras import needs

HEADINGS = {f"h{n}": n for n in range(1, 7)}
TEXT = {"p", "li", "pre", "blockquote", "dt", "dd", "figcaption", "caption", "address"}
# Elements that hold blocks: text standing bare in one (between its blocks) is a block of its own.
CONTAINERS = {"html", "body", "main", "article", "section", "div", "header", "footer", "aside", "ul", "ol", "dl",
              "figure", "form", "fieldset", "details", "summary", "center", "hgroup", "search"}
DROPPED = ("head", "script", "style", "noscript", "template", "nav")
SPACE = re.compile(r"\s+")


def read_html(path: Path, name: str) -> Document:
    """The HTML page at `path` (shown as `name`) as blocks; CannotRead for a page with no text."""
    with needs("documents", purpose=f"reading the HTML page {name}"):
        from bs4 import BeautifulSoup
    soup = BeautifulSoup(file_text(path), "html.parser")
    for tag in soup.find_all(DROPPED):
        tag.decompose()
    blocks: list[Block] = []
    _walk(soup, blocks)
    if not blocks:
        raise CannotRead("no text in headings, paragraphs, lists or tables")
    return Document(file=name, format="html", blocks=blocks)


def _walk(node: Any, blocks: list[Block]) -> None:
    """The blocks under `node`, in document order; inline text between them gathered into blocks too."""
    bare: list[str] = []

    def flush() -> None:
        text = _clean("".join(bare))
        if text:
            blocks.append(Block(kind="text", text=text))
        bare.clear()

    for child in node.children:
        name = getattr(child, "name", None)
        if name is None:  # a string (comments and doctypes are strings of their own classes: left out)
            if type(child).__name__ == "NavigableString":
                bare.append(str(child))
        elif name in HEADINGS or name in TEXT or name == "table" or name in CONTAINERS:
            flush()
            _block(child, name, blocks)
        else:  # inline (a, span, em, code ...): part of the text around it, as written (a break is a space)
            bare.append(" " if name == "br" else child.get_text())
    flush()


def _block(tag: Any, name: str, blocks: list[Block]) -> None:
    if name == "table":
        rows = [" | ".join(_clean(cell.get_text(" ")) for cell in row.find_all(["th", "td"]))
                for row in tag.find_all("tr")]
        if any(rows):
            blocks.append(Block(kind="table", text="\n".join(row for row in rows if row)))
    elif name in CONTAINERS:
        _walk(tag, blocks)
    else:
        text = tag.get_text().strip("\n") if name == "pre" else _clean(tag.get_text(" "))
        if text.strip():
            level = HEADINGS.get(name, 0)
            blocks.append(Block(kind="heading", text=text, level=level) if level else Block(kind="text", text=text))


def _clean(text: Any) -> str:
    return SPACE.sub(" ", str(text)).strip()
