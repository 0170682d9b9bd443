"""`distill eval`: parse options, call `distill.evaluate.report.evaluate`, print the summary."""

from __future__ import annotations

from pathlib import Path

import typer

from distill.evaluate.steps import DEFAULT_MAX_DROP
from distill.owned import FORCE_HELP


def eval_command(
    run_dir: Path = typer.Argument(..., help="Run directory holding eval.jsonl (written by `distill train`)."),
    students: list[Path] | None = typer.Option(
        None, "--student", help="Adapter folder, merged model folder or .gguf file (default RUN_DIR/student); "
        "repeat to score several forms of one student side by side."),
    out: Path | None = typer.Option(None, "--out", help="Where eval.json and eval.md go (default RUN_DIR)."),
    judge: str | None = typer.Option(None, "--judge", help="Teacher spec for pairwise LLM-as-judge on open QA."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Evaluate at most N held-out examples."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    threads: int | None = typer.Option(None, "--threads", min=1),
    max_drop: float = typer.Option(DEFAULT_MAX_DROP, "--max-drop", min=0, max=1,
                                   help="Flag a metric that falls by more than this after merge or quantization."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="API judge: the shared response cache's folder "
                                          "(default $DISTILL_CACHE_DIR or ~/.cache/distill)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="API judge: bypass the shared response cache."),
    constrained: bool = typer.Option(False, "--constrained", help="Also answer each task with a typed output (a label "
                                     "set, a JSON schema) with decoding held to its schema; report both side by side."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Compare base and the student (adapter, merged, GGUF; and the teacher's answers) on the held-out split."""
    from distill.evaluate.report import EvalConfig, evaluate
    from distill.train.sft import default_out_dir

    config = EvalConfig(out_dir=out, judge=judge, limit=limit, max_new_tokens=max_new_tokens, batch_size=batch_size,
                        threads=threads, max_drop=max_drop, cache=not no_cache, cache_dir=cache_dir,
                        constrained=constrained, force=force)
    result = evaluate(run_dir, students or [default_out_dir(run_dir)], config,
                      say=lambda line: typer.echo(line, err=True))
    typer.echo(result.markdown_path.read_text(encoding="utf-8"))
    typer.echo(f"written: {result.json_path}, {result.markdown_path}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
