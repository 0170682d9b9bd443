"""`distill review ...`: parse options, call the review library, print what happened.

    distill review DIR [--size N | --sample F | --more N] [--serve | --cli]   queue (build or grow), then review
    distill review status DIR                                                 figures, checks, gate; rewrites files
    distill review add-reviewer DIR NAME                                      a token for another reviewer
    distill review regenerate DIR --leaf PATH -t TAXONOMY                     ask the teacher again for a leaf
    distill review export DIR --format argilla|datasets                       for Argilla 2.x or `datasets`
"""

from __future__ import annotations

import getpass
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from distill.errors import DistillError
from distill.extras import needs
from distill.owned import FORCE_HELP
from distill.rundir import RunDir

OPEN = "open"


class _DirFirstGroup(TyperGroup):
    """`distill review DIR ...` runs the hidden `open` command; `distill review status DIR` its subcommand."""

    # typer.Context is what a command sees; the base class names (typer's own copy of) click's Context.
    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [OPEN, *args]
        return super().parse_args(ctx, args)


review_app = typer.Typer(cls=_DirFirstGroup, no_args_is_help=True, add_completion=False,
                         help="Human spot-check review: queue a sample, review it (web page or terminal), "
                              "and gate training on the result.\n\n"
                              "distill review DIR [--size N | --sample F | --more N] [--serve | --cli]: build or "
                              "grow the queue, then review (`distill review DIR --help` for every option).")


def _settings(directory: Path, **given):
    """The stored settings (when a queue exists) with the options given on the command line."""
    from distill.review.ledger import ReviewLedger
    from distill.review.model import ReviewSettings

    with ReviewLedger.open(directory) as ledger:
        stored = ledger.settings() if ledger.has_queue() else ReviewSettings()
    updates = {k: v for k, v in given.items() if v is not None}
    try:
        return ReviewSettings.model_validate({**stored.model_dump(), **updates})
    except ValueError as err:
        first = err.errors()[0] if hasattr(err, "errors") else {"loc": ["?"], "msg": str(err)}
        raise DistillError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None


@review_app.command(OPEN, hidden=True)
def open_command(
    directory: Path = typer.Argument(..., metavar="DIR", help="A run directory or a curated dataset folder."),
    size: int | None = typer.Option(None, "--size", min=1, help="Queue this many items in all (default: enough "
                                    "for the gate to decide: 69 at a 10% threshold)."),
    sample: float | None = typer.Option(None, "--sample", help="Or this fraction of the dataset (0-1]."),
    more: int | None = typer.Option(None, "--more", min=1, help="Add this many items to the queue."),
    seed: int | None = typer.Option(None, "--seed", help="Sampling seed (the same seed, the same queue)."),
    overlap: float | None = typer.Option(None, "--overlap", help="Share of items read by two reviewers (e.g. 0.1)."),
    reviewers: str | None = typer.Option(None, "--reviewers", help="Comma-separated names the overlap goes to."),
    threshold: float | None = typer.Option(None, "--threshold", help="Highest acceptable reject rate (0.10)."),
    interval: str | None = typer.Option(None, "--interval", help="wilson (default) or clopper-pearson."),
    serve: bool = typer.Option(False, "--serve", help="Review in the browser."),
    cli: bool = typer.Option(False, "--cli", help="Review in this terminal."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; other than 127.0.0.1 needs "
                             "per-reviewer tokens (add-reviewer)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port (0: any free one)."),
    reviewer: str | None = typer.Option(None, "--reviewer", help="Your name in the decisions (default: $USER)."),
) -> None:
    """Build or grow the review queue of DIR, then review it with --serve (browser) or --cli (terminal)."""
    from distill.review.queue import build_queue

    if serve and cli:
        raise DistillError("choose one of --serve and --cli")
    if sum(x is not None for x in (size, sample, more)) > 1:
        raise DistillError("give one of --size, --sample and --more")
    run_dir = RunDir(directory)
    if not directory.is_dir() or not (run_dir.has_dataset() or run_dir.has_store()):
        raise DistillError("no dataset.jsonl here: give a run directory (`distill generate`) or a folder "
                           "`distill curate` wrote", path=directory)
    names = [n.strip() for n in reviewers.split(",") if n.strip()] if reviewers else None
    settings = _settings(directory, size=size, sample=sample, seed=seed, overlap=overlap, reviewers=names,
                         threshold=threshold, interval=interval)
    report = build_queue(directory, settings, more=more)
    console = Console()
    if report.added:
        console.print(f"queued {report.added} more item(s) ({report.risk} for a risk signal): {report.queued} of "
                      f"{report.population} items over {report.leaves} leaves are in the queue", highlight=False)
    else:
        console.print(f"the queue holds {report.queued} of {report.population} items", highlight=False)
    if report.note:
        console.print(f"note: {report.note}", highlight=False)
    name = reviewer or _user()
    if serve:
        _serve(directory, host, port, name, console)
    elif cli:
        from distill.review.tui import run_terminal

        run_terminal(directory, name)
        _refresh(directory, console)
    else:
        console.print(f"review it: distill review {directory} --serve   (or --cli in a terminal)", highlight=False)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"


def _serve(directory: Path, host: str, port: int, name: str, console: Console) -> None:
    with needs("review", purpose="distill review --serve"):  # the page runs on Starlette and uvicorn
        from distill.review.server import PLAIN_HTTP_WARNING, ReviewServer, is_loopback

    server = ReviewServer(directory, host=host, port=port, owner=name)
    if not is_loopback(host):
        Console(stderr=True).print(PLAIN_HTTP_WARNING, highlight=False, soft_wrap=True)
    if server.owner_token:
        console.print(f"review at {server.url}", highlight=False, soft_wrap=True)
        console.print(f"(as {name}; the token in the URL is the key: keep it to yourself)", highlight=False)
    else:
        console.print(f"review at {server.base_url}?token=<the reviewer's token from add-reviewer>", highlight=False,
                      soft_wrap=True)
    console.print("Ctrl-C stops the server; every decision is already saved", highlight=False)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    _refresh(directory, console)


def _refresh(directory: Path, console: Console) -> None:
    from distill.review.feedback import refresh_files

    figures = refresh_files(directory, say=lambda line: console.print(line, highlight=False, soft_wrap=True))
    if figures:
        console.print(f"gate: {figures['gate']['message']}", highlight=False, soft_wrap=True)


@review_app.command("status")
def status_command(directory: Path = typer.Argument(..., metavar="DIR")) -> None:
    """Reject rate per branch with its interval, agreement, top reasons, each automated check's precision
    and recall against the reviewers, and the gate; rewrites dataset.jsonl, rejected.jsonl and
    stats.json["review"] from the decisions."""
    from distill.review.feedback import refresh_files

    if not RunDir(directory).has_store():
        raise DistillError("no review here (no run.db): build a queue with `distill review DIR`", path=directory)
    console = Console()
    figures = refresh_files(directory, say=lambda line: console.print(line, highlight=False, soft_wrap=True))
    if figures is None:
        raise DistillError(f"no review queue yet: build one with `distill review {directory}`", path=directory)
    print_status(console, figures)


def print_status(console: Console, figures: dict) -> None:
    from distill.records import REVIEW_REASONS

    console.print(f"{figures['reviewed']} of {figures['queued']} queued items reviewed: {figures['accepted']} accepted, "
                  f"{figures['edited']} edited, {figures['rejected']} rejected, {figures['skipped']} skipped; "
                  f"{figures['open_reviews']} reviews open", highlight=False)
    table = Table("branch", "items", "reviewed", "rejected", f"reject rate ({figures['interval']})", "verdict")
    rows = [("(all)", figures["overall"]), *sorted(figures["branches"].items())]
    for name, b in rows:
        rate = "n/a" if b["reject_rate"] is None else (
            f"{b['reject_rate']:.1%} ({b['ci'][0]:.1%}-{b['ci'][1]:.1%})" if b["ci"] else f"{b['reject_rate']:.1%}")
        verdict = b["verdict"] + (f": ~{b['reviews_to_decide']} more reviews decide it"
                                  if b.get("reviews_to_decide") else "")
        table.add_row(name, str(b["items"]), str(b["reviewed"]), str(b["rejected"]), rate, verdict)
    console.print(table)
    agreement = figures.get("agreement")
    if agreement:
        kappa = "n/a" if agreement["kappa"] is None else f"{agreement['kappa']:.2f}"
        method = "Cohen's kappa" if agreement["method"] == "cohen" else "Fleiss' kappa"
        console.print(f"agreement on {agreement['items']} items read twice: {method} {kappa} "
                      f"({agreement['percent_agreement']:.0%} agree on keep or reject)", highlight=False)
    if figures["top_reasons"]:
        console.print("top reasons: " + ", ".join(f"{REVIEW_REASONS.get(r, r)} {n}"
                                                  for r, n in figures["top_reasons"].items()), highlight=False)
    print_calibration(console, figures.get("calibration") or [])
    console.print(f"gate: {figures['gate']['message']}", highlight=False, soft_wrap=True)


def print_calibration(console: Console, rows: list[dict]) -> None:
    """Each check against the reviewers (review/calibration.py); curation's checks that flag no reviewed item by
    construction go on one line, not as rows of 0 of 0."""
    if not rows or not rows[0]["reviewed"]:
        return
    shown = [r for r in rows if not (r["by_construction"] and r["suggested"] is None and r["threshold"] is None)]
    silent = [r["check"] for r in rows if r not in shown]
    first = rows[0]
    table = Table("check", "threshold", "flagged", "rejects caught", "precision (95% Wilson)",
                  "recall (95% Wilson)", "suggested threshold (best F1)",
                  title=f"checks against the reviewers: {first['reviewed']} reviewed items, "
                        f"{first['rejected']} rejected")
    for r in shown:
        suggested = r["suggested"]
        table.add_row(r["check"], "-" if r["threshold"] is None else f"{r['threshold']:g}", str(r["flagged"]),
                      f"{r['caught']} of {r['rejected']}",
                      _share(r["precision"], r["precision_ci"], "by construction: none flagged"
                             if r["by_construction"] else "none flagged"),
                      _share(r["recall"], r["recall_ci"], "no rejects"),
                      "-" if suggested is None else f"{suggested['threshold']:.3g} (P {suggested['precision']:.2f}, "
                                                    f"R {suggested['recall']:.2f}, F1 {suggested['f1']:.2f})")
    console.print(table)
    if silent:
        console.print(f"passed by every reviewed item, by construction (curation removed what they flag, or they do "
                      f"not apply): {', '.join(silent)}", highlight=False, soft_wrap=True)


def _share(value: float | None, ci: list[float] | None, empty: str) -> str:
    return empty if value is None or ci is None else f"{value:.2f} ({ci[0]:.2f}-{ci[1]:.2f})"


@review_app.command("add-reviewer")
def add_reviewer_command(
    directory: Path = typer.Argument(..., metavar="DIR"),
    name: str = typer.Argument(..., help="The reviewer's name, as their decisions will carry it."),
    revoke: bool = typer.Option(False, "--revoke", help="Withdraw NAME's token instead."),
) -> None:
    """Make (or replace) NAME's access token; only its hash is stored, so it is printed once."""
    from distill.review.ledger import ReviewLedger

    name = name.strip()
    if not name or len(name) > 80:
        raise DistillError("a reviewer name is 1-80 characters")
    with ReviewLedger.open(directory) as ledger:
        if revoke:
            if not ledger.revoke_reviewer(name):
                raise DistillError(f"no reviewer {name!r} with a token in force")
            Console().print(f"revoked {name}'s token", highlight=False)
            return
        token = ledger.add_reviewer(name)
    Console().print(f"token for {name}: {token}\nthey open http://HOST:PORT/?token={token} once "
                    f"`distill review {directory} --serve --host HOST` runs", highlight=False, soft_wrap=True)


@review_app.command("regenerate")
def regenerate_command(
    directory: Path = typer.Argument(..., metavar="DIR", help="A run directory made by `distill generate`."),
    leaf: str = typer.Option(..., "--leaf", help="The taxonomy leaf (or branch) to ask again, e.g. cardiology/arrhythmias."),
    taxonomy: Path | None = typer.Option(None, "--taxonomy", "-t", help="The taxonomy file (or InstructLab "
                                         "folder) the run was made from; required (a run folder never picks it)."),
    count: int | None = typer.Option(None, "--count", min=1, help="Items to ask for (default: as many as leave)."),
    teacher: str | None = typer.Option(None, "--teacher", help="Another teacher spec (default: the run's)."),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible server for an openai: teacher."),
) -> None:
    """Ask the teacher again for a leaf the review rejected too much of; the new items join the queue."""
    from distill.generate.regenerate import regenerate
    from distill.teachers.registry import TeacherSpec

    report = regenerate(directory, leaf, taxonomy=taxonomy, count=count,
                        teacher=TeacherSpec.parse(teacher) if teacher else None, base_url=base_url,
                        progress=Console(stderr=True).is_terminal)
    Console().print(report.message, highlight=False, soft_wrap=True)


@review_app.command("export")
def export_command(
    directory: Path = typer.Argument(..., metavar="DIR"),
    format: str = typer.Option(..., "--format", help="argilla (Argilla 2.x `Dataset.from_disk` folder) or "
                               "datasets (JSONL `datasets.load_dataset` reads)."),
    out: Path | None = typer.Option(None, "--out", help="Folder to write (default DIR/review-FORMAT)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Write the queue and its decisions for Argilla 2.x or Hugging Face `datasets`."""
    from distill.review.interchange import export_review

    written = export_review(directory, format, out, force=force)
    Console().print(f"wrote {written}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `distill review` and its subcommands to the CLI."""
    app.add_typer(review_app, name="review")
