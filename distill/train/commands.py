"""`distill train`: parse options, call `distill.train.sft.train`, print where things went."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def train_command(
    run_dir: Path = typer.Argument(..., help="Run directory with dataset.jsonl (or train.jsonl + eval.jsonl)."),
    student: str | None = typer.Option(None, "--student", help="local | Hugging Face id | model folder."),
    out: Path | None = typer.Option(None, "--out", help="Adapter folder (default RUN_DIR/student)."),
    config: Path | None = typer.Option(None, "--config", help="YAML training config (see configs/train-*.yaml)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after N optimizer steps."),
    epochs: float | None = typer.Option(None, "--epochs"),
    learning_rate: float | None = typer.Option(None, "--lr"),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    grad_accum: int | None = typer.Option(None, "--grad-accum", min=1),
    max_length: int | None = typer.Option(None, "--max-length", min=16),
    lora_r: int | None = typer.Option(None, "--lora-r", min=1),
    lora_alpha: int | None = typer.Option(None, "--lora-alpha", min=1),
    qlora: bool | None = typer.Option(None, "--qlora/--no-qlora", help="4-bit nf4 base (default) or plain LoRA."),
    packing: bool | None = typer.Option(None, "--packing/--no-packing", help="Default: on CUDA only."),
    merge: bool | None = typer.Option(None, "--merge", help="Also write a merged 16-bit model."),
    resume: bool | None = typer.Option(None, "--resume/--no-resume", help="Continue from the last checkpoint."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads (default: the idle cores)."),
    seed: int | None = typer.Option(None, "--seed"),
    reasoning: bool | None = typer.Option(None, "--reasoning/--no-reasoning", help="Train assistant turns with the "
                                          "teacher's reasoning in a <think> block before the answer (default: off)."),
    force: bool = typer.Option(False, "--force", help="Train although the review gate has not passed "
                               "(recorded in the manifest and the model card)."),
    force_out: bool = typer.Option(False, "--force-out", help="Write into a non-empty --out folder distill did "
                                   "not make, beside what is there: only files distill wrote are ever replaced "
                                   "(--force is the review gate's)."),
) -> None:
    """Fine-tune a student with a (Q)LoRA adapter on the run's training split."""
    from distill.train.config import load_train_config
    from distill.train.sft import train

    cfg = load_train_config(config, student=student, max_steps=max_steps, epochs=epochs, learning_rate=learning_rate,
                            batch_size=batch_size, grad_accum=grad_accum, max_length=max_length, lora_r=lora_r,
                            lora_alpha=lora_alpha, qlora=qlora, packing=packing, merge=merge, resume=resume,
                            threads=threads, seed=seed, reasoning=reasoning)
    # Notices (the split, memory, truncation) go to stderr even without a terminal: a log must show them.
    result = train(run_dir, cfg, out_dir=out, progress=sys.stderr.isatty(), log=lambda line: typer.echo(line, err=True),
                   force_review=force, force_out=force_out)
    loss = f"{result.train_loss_first:.3f} -> {result.train_loss_last:.3f}" if result.train_loss_first else "n/a"
    eval_loss = (f", eval loss {result.eval_loss_before or float('nan'):.3f} -> {result.eval_loss_after:.3f}"
                 if result.eval_loss_after is not None else "")
    typer.echo(f"trained {result.steps} steps: train loss {loss}{eval_loss}")
    typer.echo(f"adapter: {result.adapter_dir}")
    if result.merged_dir:
        typer.echo(f"merged 16-bit model: {result.merged_dir}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
