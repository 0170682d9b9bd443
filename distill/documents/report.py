"""The coverage report (`distill taxonomy show --documents DIR`): chunks per leaf, leaves without any, documents
used by no leaf, pins that match nothing, and the files that could not be read."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from distill.documents.attach import Coverage


def where(coverage: Coverage, leaf: str) -> str:
    """The files (and PDF pages) a leaf's chunks come from: "protocols.pdf p3, staff-handbook.docx"."""
    places: dict[str, list[int]] = {}
    for each in coverage.of_leaf(leaf):
        pages = places.setdefault(each.chunk.file, [])
        if each.chunk.page is not None and each.chunk.page not in pages:
            pages.append(each.chunk.page)
    return ", ".join(file + (" p" + ",".join(map(str, pages)) if pages else "") for file, pages in places.items())


def print_coverage(console: Console, coverage: Coverage, problems: list[str]) -> None:
    """The report, as a table a leaf and a line for each thing left over."""
    table = Table(title="documents per leaf")
    table.add_column("leaf", overflow="fold")
    for column in ("chunks", "pinned", "from"):
        table.add_column(column)
    for leaf in coverage.leaves:
        own = coverage.of_leaf(leaf)
        table.add_row(escape(leaf), str(len(own)), str(sum(each.pinned for each in own)),
                      escape(where(coverage, leaf)) or "[yellow]none[/yellow]")
    console.print(table)
    attached = len(coverage.attachments)
    console.print(f"{attached} chunks attached to {len(coverage.leaves) - len(coverage.leaves_without)} of "
                  f"{len(coverage.leaves)} leaves")
    for leaf in coverage.leaves_without:
        console.print(f"leaf without documents: {escape(leaf)}")
    for file in coverage.unused_documents:
        console.print(f"document used by no leaf: {escape(file)}")
    for pin in coverage.idle_pins:
        console.print(f"pin that matches no document read: {escape(pin)}")
    for line in problems:
        console.print(f"[yellow]warning:[/yellow] {escape(line)}")
