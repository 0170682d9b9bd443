"""`distill documents ...`: parse options, call the documents library, print what it found.

    distill documents chunks DIR [--max-chars N] [--json]   read and chunk a folder; a line per unreadable file
    distill documents attach DIR -t TAXONOMY [--json]       which leaf each chunk goes to
    distill taxonomy show TAXONOMY --documents DIR          the coverage report (show_coverage, below)
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from distill.taxonomy.load import LoadedTaxonomy

documents_app = typer.Typer(no_args_is_help=True, add_completion=False,
                            help="Your own documents (PDF, Word, HTML, Markdown, text) as a source of knowledge.")


@documents_app.command("chunks")
def chunks_command(
    folder: Path = typer.Argument(..., metavar="DIR", help="The folder that holds the documents."),
    max_chars: int = typer.Option(1500, "--max-chars", min=200, help="The longest chunk, in characters."),
    as_json: bool = typer.Option(False, "--json", help="Print every chunk as a JSON line (text and provenance)."),
) -> None:
    """Read and chunk every document in DIR: a table per file (or JSON lines); a file that cannot be read is one
    line on stderr, and the others go on."""
    from distill.documents.library import load_library

    library = load_library(folder, max_chars)
    for line in library.reading.problems():
        typer.echo(f"warning: {line}", err=True)
    if as_json:
        for chunk in library.chunks:
            typer.echo(chunk.model_dump_json())
        return
    table = Table(title=f"documents in {escape(str(folder))}")
    for column in ("file", "format", "pages", "chunks", "characters"):
        table.add_column(column)
    for document in library.reading.documents:
        own = [chunk for chunk in library.chunks if chunk.file == document.file]
        table.add_row(escape(document.file), document.format, str(document.pages or "-"), str(len(own)),
                      str(sum(len(chunk.text) for chunk in own)))
    Console().print(table)


@documents_app.command("attach")
def attach_command(
    folder: Path = typer.Argument(..., metavar="DIR", help="The folder that holds the documents."),
    taxonomy: Path = typer.Option(..., "--taxonomy", "-t", help="Taxonomy YAML file."),
    as_json: bool = typer.Option(False, "--json", help="Print every attachment as a JSON line (leaf, score, "
                                 "pinned, the chunk with its provenance)."),
) -> None:
    """Attach the chunks of DIR to the leaves of a taxonomy and print the coverage report (or JSON lines)."""
    from distill.taxonomy import load_taxonomy

    loaded = load_taxonomy(taxonomy)
    if as_json:
        from distill.documents.attach import attach
        from distill.documents.library import load_library

        library = load_library(folder)
        for line in library.reading.problems():
            typer.echo(f"warning: {line}", err=True)
        for each in attach(loaded, library, folder).attachments:
            typer.echo(each.model_dump_json())
        return
    show_coverage(Console(), loaded, folder)


def show_coverage(console: Console, loaded: LoadedTaxonomy, folder: Path) -> None:
    """Read and chunk `folder`, attach its chunks to `loaded`'s leaves, print the report."""
    from distill.documents.attach import attach
    from distill.documents.library import load_library
    from distill.documents.report import print_coverage

    library = load_library(folder)
    print_coverage(console, attach(loaded, library, folder), library.reading.problems())


def register(app: typer.Typer) -> None:
    app.add_typer(documents_app, name="documents")
