"""`distill train`: parse options, call `distill.train.sft.train` (or, with --dpo, `distill.train.dpo.run`), print
where things went."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from distill.errors import DistillError


def train_command(
    run_dir: Path = typer.Argument(..., help="Run directory with dataset.jsonl (or train.jsonl + eval.jsonl)."),
    student: str | None = typer.Option(None, "--student", help="local | Hugging Face id | model folder."),
    out: Path | None = typer.Option(None, "--out", help="Adapter folder (default RUN_DIR/student; with --dpo "
                                    "RUN_DIR/student-dpo)."),
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
    dpo: Path | None = typer.Option(None, "--dpo", metavar="PAIRS.jsonl", help="Preference-train the SFT adapter "
                                    "with DPO on these pairs (RUN_DIR/preferences.jsonl: prompt, chosen, rejected) "
                                    "instead of SFT; its reference is the SFT adapter."),
    sft_adapter: Path | None = typer.Option(None, "--sft-adapter", help="--dpo: the SFT adapter to start from "
                                            "(default RUN_DIR/student)."),
    dpo_beta: float | None = typer.Option(None, "--dpo-beta", min=0.0, help="--dpo: how far the student may move "
                                          "from the SFT adapter (default 0.1; lower: further)."),
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
                            threads=threads, seed=seed, reasoning=reasoning, dpo_beta=dpo_beta)
    if dpo is not None:
        preference_train(run_dir, dpo, cfg, sft_adapter, out, force_out)
        return
    if sft_adapter is not None:
        raise DistillError("--sft-adapter is for --dpo (the adapter DPO starts from); add --dpo PAIRS.jsonl")
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


def preference_train(run_dir: Path, pairs: Path, cfg, sft_adapter: Path | None, out: Path | None,
                     force_out: bool) -> None:
    from distill.rundir import RunDir
    from distill.train.dpo import run

    result = run(RunDir(run_dir, option="RUN_DIR"), pairs, cfg, sft_adapter, out, progress=sys.stderr.isatty(),
                 log=lambda line: typer.echo(line, err=True), force_out=force_out)
    loss = f"{result.loss_first:.3f} -> {result.loss_last:.3f}" if result.loss_first is not None else "n/a"
    typer.echo(f"DPO: {result.steps} steps on {result.pairs} pairs from {result.sft_adapter}: loss {loss}")
    typer.echo(f"adapter: {result.adapter_dir}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
