"""`distill eval`: parse options, call `distill.evaluate.report.evaluate`, print the summary."""

from __future__ import annotations

from pathlib import Path

import typer


def eval_command(
    run_dir: Path = typer.Argument(..., help="Run directory holding eval.jsonl (written by `distill train`)."),
    student: Path | None = typer.Option(None, "--student", help="Adapter folder (default RUN_DIR/student)."),
    out: Path | None = typer.Option(None, "--out", help="Where eval.json and eval.md go (default RUN_DIR)."),
    judge: str | None = typer.Option(None, "--judge", help="Teacher spec for pairwise LLM-as-judge on open QA."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Evaluate at most N held-out examples."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    threads: int | None = typer.Option(None, "--threads", min=1),
) -> None:
    """Compare base and base+adapter (and the teacher's answers) on the held-out split."""
    from distill.evaluate.report import EvalConfig, evaluate
    from distill.train.sft import default_out_dir

    config = EvalConfig(out_dir=out, judge=judge, limit=limit, max_new_tokens=max_new_tokens, batch_size=batch_size,
                        threads=threads)
    result = evaluate(run_dir, student or default_out_dir(run_dir), config)
    typer.echo(result.markdown_path.read_text(encoding="utf-8"))
    typer.echo(f"written: {result.json_path}, {result.markdown_path}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
