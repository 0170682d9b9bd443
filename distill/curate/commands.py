"""`distill curate` and `distill split`: parse options, call the library, print a summary."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from distill.errors import DistillError
from distill.records import write_jsonl


def _default_out(input_path: Path) -> Path:
    if input_path.is_dir():
        return input_path / "curated"
    return input_path.with_name(input_path.stem + "_curated")


def run_curate(input_path: Path, out: Path, config, console: Console, show_progress: bool = True,
               executor: str = "local", output_format: str = "jsonl", **ray_options):
    """Read INPUT, curate it, write the output files into `out`; returns the result.

    Locally kept rows and rejects go to `dataset.jsonl` / `rejected.jsonl`; on Ray each task writes its
    own part of `dataset/` and `rejected/` (JSONL or Parquet shards)."""
    if executor == "ray":
        from distill.executors.ray_curate import curate_on_ray

        result = curate_on_ray(input_path, out, config, output_format=output_format, **ray_options)
    else:
        result = _curate_here(input_path, config, console, show_progress)
        out.mkdir(parents=True, exist_ok=True)
        write_jsonl(out / "dataset.jsonl", result.kept)
        write_jsonl(out / "rejected.jsonl", result.rejects)
    _write_reports(input_path, out, result)
    return result


def _curate_here(input_path: Path, config, console: Console, show_progress: bool):
    from distill.curate.dataset_io import load_examples
    from distill.curate.pipeline import curate

    examples = load_examples(input_path)
    with Progress(
        TextColumn("{task.description:>14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=not show_progress,
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return curate(examples, config, progress=progress)


def _write_reports(input_path: Path, out: Path, result) -> None:
    from distill.curate.report import markdown_report

    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "contamination.jsonl", result.contamination)
    write_jsonl(out / "duplicates.jsonl", result.duplicates)
    stats = {"input": str(input_path), **result.to_stats()}
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown_report(result) + "\n", encoding="utf-8")


def print_summary(result, console: Console, out: Path | None = None) -> None:
    from distill.curate.report import yield_table

    console.print(yield_table(result))
    for node, reason in result.empty_nodes():
        console.print(f"[bold red]kept nothing:[/bold red] {node} (most common reason: {reason})")
    total = result.total
    if out is not None:
        console.print(
            f"kept {total.kept} of {total.generated}; {len(result.duplicates)} duplicates, "
            f"{len(result.contamination)} contaminated -> {out}"
        )


def register(app: typer.Typer) -> None:
    """Add `curate` and `split` to the CLI."""

    @app.command("curate")
    def curate_command(
        input_path: Path = typer.Argument(..., metavar="INPUT", help="A run directory (with dataset.jsonl) or a JSONL dataset."),
        out: Path | None = typer.Option(None, "--out", help="Output folder [default: INPUT/curated or INPUT_curated/]."),
        heldout: list[str] = typer.Option([], "--heldout", help="Held-out set to decontaminate against: PATH[:field1,field2]. Repeatable."),
        against: list[str] = typer.Option([], "--against", help="Earlier run folder or dataset JSONL to dedup against. Repeatable."),
        threshold: float = typer.Option(0.7, help="Near-duplicate Jaccard threshold (word shingles)."),
        shingle_size: int = typer.Option(5, help="Words per shingle."),
        num_perm: int = typer.Option(128, help="MinHash permutations."),
        ngram: int = typer.Option(8, help="Decontamination n-gram size (13 is reported too)."),
        min_words: int = typer.Option(2, help="Reject answers shorter than this many words."),
        max_words: int = typer.Option(2000, help="Reject answers longer than this many words."),
        language: str = typer.Option("en", help="Expected language (ISO 639-1); 'any' to skip the check."),
        labels: str | None = typer.Option(None, help="Comma-separated label set for classification data."),
        near_dedup: bool = typer.Option(True, "--near-dedup/--no-near-dedup", help="MinHash near-duplicate removal."),
        decontam_minhash: float | None = typer.Option(None, help="Also flag held-out copies at this MinHash Jaccard."),
        workers: int | None = typer.Option(None, help="Threads for hashing, MinHash signing and decontamination [default: up to 2]."),
        executor: str = typer.Option("local", help="local (this process) or ray (a Ray cluster: joins RAY_ADDRESS, "
                                     "else starts one on this machine)."),
        output_format: str = typer.Option("jsonl", help="ray: format of the dataset/ and rejected/ shards (jsonl or parquet)."),
    ) -> None:
        """Check, dedup and decontaminate a dataset; writes dataset.jsonl, rejected.jsonl, stats.json,
        contamination.jsonl, duplicates.jsonl and report.md."""
        from distill.curate.heldout import parse_heldout_option
        from distill.curate.pipeline import CurateConfig
        from distill.executors import check_executor

        check_executor(executor)
        if output_format not in ("jsonl", "parquet"):
            raise DistillError(f"--output-format {output_format!r}: use jsonl or parquet")
        if executor == "local" and output_format != "jsonl":
            raise DistillError("--output-format parquet is for --executor ray (the local path writes dataset.jsonl)")
        out_dir = out or _default_out(input_path)
        try:
            config = CurateConfig(
                heldout=[parse_heldout_option(h) for h in heldout], against=list(against), threshold=threshold,
                shingle_size=shingle_size, num_perm=num_perm, ngram=ngram, min_words=min_words, max_words=max_words,
                language=None if language.lower() in ("any", "none", "") else language,
                labels=[l.strip() for l in labels.split(",") if l.strip()] if labels else None,
                near_dedup=near_dedup, decontam_minhash_threshold=decontam_minhash,
                **({"workers": workers} if workers else {}),
            )
        except ValueError as err:  # pydantic: a threshold out of range and the like
            raise DistillError(f"bad option: {err}") from None
        console = Console()
        result = run_curate(input_path, out_dir, config, console, executor=executor, output_format=output_format)
        print_summary(result, console, out_dir)

    @app.command("split")
    def split_command(
        directory: Path = typer.Argument(..., metavar="DIR", help="A folder with a curated dataset.jsonl."),
        fraction: float = typer.Option(0.1, help="Share of each taxonomy leaf held out for evaluation."),
        seed: int = typer.Option(0, help="Changes which examples go to eval."),
    ) -> None:
        """Carve a stratified evaluation split: writes DIR/train.jsonl and DIR/eval.jsonl."""
        from distill.curate.dataset_io import load_examples
        from distill.curate.split import stratified_split

        if not 0.0 < fraction < 1.0:
            raise DistillError(f"--fraction must be between 0 and 1 (got {fraction}); 0.1-0.2 is usual")
        examples = load_examples(directory)
        train, evaluation = stratified_split(examples, fraction=fraction, seed=seed)
        write_jsonl(directory / "train.jsonl", train)
        write_jsonl(directory / "eval.jsonl", evaluation)
        leaves = len({e.meta.taxonomy_path or "(none)" for e in evaluation})
        Console().print(f"train {len(train)}, eval {len(evaluation)} ({leaves} leaves) -> {directory}/train.jsonl, eval.jsonl")
