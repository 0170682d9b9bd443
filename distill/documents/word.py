"""Word (.docx) through python-docx: headings from the paragraph styles (Title, Heading 1..9), paragraphs and
tables in the order the document holds them."""

from __future__ import annotations

import zipfile
from pathlib import Path

from distill.documents.records import Block, CannotRead, Document
from distill.extras import needs


def read_docx(path: Path, name: str) -> Document:
    """The Word file at `path` (shown as `name`) as blocks; CannotRead for a file that is not a .docx."""
    with needs("documents", purpose=f"reading the Word file {name}"):
        import docx
        from docx.opc.exceptions import PackageNotFoundError
        from docx.table import Table
    try:
        document = docx.Document(str(path))
        # A paragraph's `.style` looks its style up among all of them, and the default style when it names none,
        # each time: 86% of the reading of a 12-page handbook. The style id read off the paragraph's XML and one
        # id -> name table: 19 -> 66..112 pages a second on it (benchmarks/README.md#reading-documents).
        names = {style.style_id: style.name for style in document.styles}
        blocks: list[Block] = []
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in item.rows]
                if any(row.strip(" |") for row in rows):
                    blocks.append(Block(kind="table", text="\n".join(rows)))
                continue
            text = item.text.strip()
            if text:
                level = _heading_level(names.get(item._p.style or "", ""))
                blocks.append(Block(kind="heading", text=text, level=level) if level else Block(kind="text", text=text))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        why = "not a Word package" if isinstance(exc, (PackageNotFoundError, zipfile.BadZipFile)) else str(exc)
        raise CannotRead(f"not a readable Word .docx file ({why}); is the file complete? An old .doc must be saved "
                         "as .docx first") from None
    if not blocks:
        raise CannotRead("no text in it")
    return Document(file=name, format="docx", blocks=blocks)


def _heading_level(style: str | None) -> int:
    """1 for Title and Heading 1, n for Heading n; 0 for any other style."""
    if style == "Title":
        return 1
    head, _, number = (style or "").partition(" ")
    return int(number) if head == "Heading" and number.isdigit() else 0
