"""`distill export` (dataset folder + card) and `distill export-model` (merged model, GGUF, Modelfile, card)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from distill.errors import DistillError
from distill.evaluate.steps import DEFAULT_MAX_DROP
from distill.owned import FORCE_HELP

LICENSE_HELP = "License id for the card (apache-2.0, cc-by-4.0, mit, other ...)."


def export_command(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="Run directory (dataset.jsonl, or train/eval split)."),
    out: Path | None = typer.Option(None, "--out", help="Dataset folder to write [default: RUN_DIR/hf_dataset]."),
    license_id: str | None = typer.Option(None, "--license", help=LICENSE_HELP + " Required: the data is yours to "
                                          "license, within the teacher's terms of use."),
    language: list[str] = typer.Option(["en"], "--language", help="ISO 639 code of the data; repeatable."),
    name: str | None = typer.Option(None, "--name", help="Pretty name for the card [default: the taxonomy's]."),
    fraction: float = typer.Option(0.1, "--fraction", help="Held-out share, when the run has no split yet."),
    seed: int = typer.Option(0, "--seed", help="Split seed, when the run has no split yet."),
    push_to_hub: str | None = typer.Option(None, "--push-to-hub", metavar="REPO",
                                           help="Upload the folder to this Hub dataset repo (needs HF_TOKEN)."),
    private: bool = typer.Option(False, "--private", help="Create the Hub repo private."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Write the run's train/test split as a Hugging Face dataset folder: Parquet shards and a dataset card."""
    from distill.export.dataset import DatasetExportOptions, export_dataset
    from distill.export.hub import check_repo_id, push_folder

    if not license_id:
        raise DistillError("choose the dataset's license with --license (e.g. apache-2.0, cc-by-4.0, mit, other); "
                           "check that your teacher's terms of use allow it")
    if push_to_hub:
        check_repo_id(push_to_hub)
    if not 0.0 < fraction < 1.0:
        raise DistillError(f"--fraction must be between 0 and 1 (got {fraction})")
    options = DatasetExportOptions(out=out or Path(run_dir) / "hf_dataset", license=license_id, language=language,
                                   pretty_name=name, split_fraction=fraction, seed=seed, force=force)
    console = Console()
    result = export_dataset(run_dir, options, say=lambda line: console.print(line, highlight=False, soft_wrap=True))
    for split, rows in result.rows.items():
        console.print(f"{split}: {rows} rows -> {', '.join(str(p) for p in result.files[split])}", highlight=False)
    console.print(f"card: {result.card} ({result.seconds:.1f} s); load it with datasets.load_dataset"
                  f"({str(result.folder)!r})", highlight=False)
    if push_to_hub:
        console.print(f"uploaded: {push_folder(result.folder, push_to_hub, 'dataset', private)}", highlight=False)


def export_model_command(
    adapter_dir: Path = typer.Argument(..., metavar="ADAPTER_DIR", help="Adapter folder written by `distill train`."),
    merge: bool = typer.Option(False, "--merge", help="Merge again even if this adapter's merged model exists."),
    gguf: list[str] = typer.Option(["q8_0"], "--gguf", help="GGUF to write: q8_0 | f16 (repeatable), or none."),
    out: Path | None = typer.Option(None, "--out", help="GGUF folder [default: ADAPTER_DIR-gguf]."),
    name: str | None = typer.Option(None, "--name", help="Model name for files and cards [default: the run's]."),
    license_id: str | None = typer.Option(None, "--license", help=LICENSE_HELP + " [default: the base model's]"),
    language: list[str] = typer.Option(["en"], "--language", help="ISO 639 code; repeatable."),
    dataset: str | None = typer.Option(None, "--dataset", help="The training data's card: a Hub dataset repo id "
                                       "or the folder `distill export` wrote."),
    run: Path | None = typer.Option(None, "--run", help="Run the adapter was trained on [default: its parent]."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Read each GGUF back and compare logits."),
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Score base, adapter, merged and each GGUF on "
                                  "the held-out split."),
    eval_limit: int | None = typer.Option(None, "--eval-limit", min=1, help="Evaluate at most N held-out items."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1),
    max_drop: float = typer.Option(DEFAULT_MAX_DROP, "--max-drop", min=0, max=1,
                                   help="Flag a metric that falls by more than this after merge or quantization."),
    threads: int | None = typer.Option(None, "--threads", min=1),
    push_to_hub: str | None = typer.Option(None, "--push-to-hub", metavar="REPO",
                                           help="Upload the GGUF folder to this Hub model repo (needs HF_TOKEN)."),
    private: bool = typer.Option(False, "--private", help="Create the Hub repo private."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty --out (or ADAPTER_DIR-merged) "
                               "distill did not make, beside what is there: only files distill wrote are ever "
                               "replaced."),
) -> None:
    """Merge the adapter into 16-bit weights, write GGUF files and an Ollama Modelfile, check and evaluate them."""
    from distill.export.hub import check_repo_id, push_folder
    from distill.export.model import ModelExportOptions, export_model

    if push_to_hub:
        check_repo_id(push_to_hub)
    quants = [] if [q.lower() for q in gguf] == ["none"] else [q.lower() for q in gguf]
    options = ModelExportOptions(out=out, name=name, gguf=quants, merge=merge, license=license_id, language=language,
                                 dataset=dataset, run_dir=run, verify=verify, evaluate=evaluate, eval_limit=eval_limit,
                                 max_new_tokens=max_new_tokens, max_drop=max_drop, threads=threads, force=force)
    console = Console(stderr=True)
    with _progress(console) as progress:
        result = export_model(adapter_dir, options, say=lambda line: console.print(line, highlight=False),
                              progress=progress)
    say = Console()
    say.print(f"merged model: {result.merged_dir}", highlight=False)
    for file in result.ggufs:
        say.print(f"GGUF: {file.path} ({file.bytes / 1e6:.1f} MB, {file.seconds:.1f} s)", highlight=False)
    if result.modelfile:
        say.print(f"Ollama: ollama create {result.name} -f {result.modelfile.path}", highlight=False)
    if result.eval_markdown:
        say.print(f"evaluation: {result.eval_markdown}", highlight=False)
    for flag in result.flags:
        say.print(f"[bold red]drop:[/bold red] {flag['from']} -> {flag['to']}: {flag['task']} {flag['metric']} "
                  f"{flag['before']:.3f} -> {flag['after']:.3f}", highlight=False)
    for check in result.checks:
        if not check.ok:
            say.print(f"[bold red]outside tolerance:[/bold red] {check.file} (see the model card)", highlight=False)
    if push_to_hub:
        folder = result.out_dir if result.ggufs else result.merged_dir
        say.print(f"uploaded: {push_folder(folder, push_to_hub, 'model', private)}", highlight=False)


@contextmanager
def _progress(console: Console):
    """A progress bar per long step (GGUF tensors), only on a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not sys.stderr.isatty()) as bar:
        tasks: dict[str, TaskID] = {}

        def update(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        yield update


def register(app: typer.Typer) -> None:
    """Add `export` and `export-model` to the CLI."""
    app.command("export")(export_command)
    app.command("export-model")(export_model_command)
