"""The `distill` command line. Each command parses options and calls one library function."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from distill.errors import DistillError, Interrupted, explain
from distill.owned import FORCE_HELP
from distill.teachers.registry import spec_forms


class DistillGroup(TyperGroup):
    """Turns Ctrl-C inside any command into `Interrupted`: typer would make it a bare exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None


app = typer.Typer(cls=DistillGroup, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Synthetic data and distillation: taxonomy -> teacher -> curated dataset -> student.")
taxonomy_app = typer.Typer(no_args_is_help=True, help="Check, inspect and import taxonomies.")
app.add_typer(taxonomy_app, name="taxonomy")
console = Console()


@app.command()
def generate(
    taxonomy: Path = typer.Option(..., "--taxonomy", "-t", help="Taxonomy YAML file, or an InstructLab "
                                  "taxonomy folder."),
    teacher: str = typer.Option("local", help=" | ".join(spec_forms())),  # what the registry holds, plugins too
    out: Path | None = typer.Option(None, help="Run directory (default runs/<taxonomy name>); re-running resumes."),
    limit: int | None = typer.Option(None, min=1, help="Generate at most N plan items, spread over the taxonomy."),
    per_leaf: int | None = typer.Option(None, "--per-leaf", min=1, help="Plan N items a leaf, in place of the "
                                        "taxonomy's generation.per_leaf / total (a node's quota still wins)."),
    seed: int = typer.Option(0, help="Seed for the plan and few-shot sampling."),
    retry_failed: bool = typer.Option(False, help="Also retry items whose teacher calls failed."),
    batch_size: int | None = typer.Option(None, min=1, help="Requests per batch (in-process teachers)."),
    no_curate: bool = typer.Option(False, "--no-curate", help="Skip curation: keep every valid example."),
    label_check: bool = typer.Option(False, "--label-check", help="Classification: a teacher (--judge, default the "
                                     "run's) classifies each input blind; a different label rejects it."),
    judge: str | None = typer.Option(None, "--judge", help="Teacher spec for the label check and for off_topic "
                                     "(instead of the lexical check)."),
    judge_faithfulness: bool = typer.Option(False, "--judge-faithfulness", help="With --documents: a teacher "
                                            "(--judge, default the run's) decides whether each answer is supported "
                                            "by its passage, instead of the lexical check."),
    user_teacher: str | None = typer.Option(None, "--user-teacher", help="Conversations: teacher spec that plays "
                                            "the user (default: the task's conversation.user_teacher, else the "
                                            "run's teacher)."),
    user_base_url: str | None = typer.Option(None, "--user-base-url", help="The user teacher's server (default: "
                                             "--base-url when it is the same provider as the teacher)."),
    skip_check: list[str] = typer.Option([], "--skip-check", help="Switch a curation check off by name "
                                         "(off_topic, self_contained ...). Repeatable."),
    executor: str = typer.Option("local", help="local (this process) or ray (actors on a Ray cluster, each with its "
                                 "own teacher: joins RAY_ADDRESS, else starts one on this machine)."),
    ray_workers: int | None = typer.Option(None, min=1, help="ray: worker actors (default: one a CPU of the cluster)."),
    ray_gpus_per_worker: float | None = typer.Option(None, min=0.01, help="ray: GPUs each worker holds "
                                                     "(vllm: and hf: teachers on GPU nodes)."),
    # API teachers (openai:, anthropic:); keys come only from OPENAI_API_KEY / ANTHROPIC_API_KEY.
    base_url: str | None = typer.Option(None, help="OpenAI-compatible server (vLLM, llama.cpp, Ollama); "
                                        "default $OPENAI_BASE_URL / $ANTHROPIC_BASE_URL. user:pass@ is sent as "
                                        "basic auth; keys in it are never written or shown."),
    concurrency: int | None = typer.Option(None, min=1, help="API requests in flight at most (default 16)."),
    rpm: float | None = typer.Option(None, min=0.1, help="Client-side requests-per-minute limit."),
    tpm: float | None = typer.Option(None, min=1, help="Client-side tokens-per-minute limit."),
    timeout: float | None = typer.Option(None, min=0.01,
                                         help="Seconds one API response may take, to its last byte (default 60)."),
    max_retries: int | None = typer.Option(None, min=0, help="Retries on 429, 5xx, 529, timeouts (default 6)."),
    budget_usd: float | None = typer.Option(None, min=0, help="Hard spend cap for this run directory, in USD."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print items, estimated tokens and cost; send nothing."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Bypass the shared response cache."),
    cache_dir: Path | None = typer.Option(None, help="Response cache folder (default $DISTILL_CACHE_DIR or "
                                          "~/.cache/distill)."),
    batch: bool = typer.Option(False, "--batch", help="Use the provider's batch API (about half price, slower)."),
    sender_process: bool | None = typer.Option(None, "--sender-process/--no-sender-process",
                                               help="Send API requests from a child process, a second core for "
                                               "the SDK (default: from 128 requests in flight)."),
    preflight: bool = typer.Option(True, "--preflight/--no-preflight",
                                   help="Try a small sample first and stop early if most of it fails."),
    api_config: Path | None = typer.Option(None, help="YAML: prices: {model: {input, output}} (USD/1M tokens) "
                                           "and openai:/anthropic: {rpm, tpm, concurrency}."),
    # vllm: only
    engine_arg: list[str] = typer.Option([], "--engine-arg", help="vllm: engine argument KEY=VALUE, repeatable "
                                         "(tensor_parallel_size=8, gpu_memory_utilization=0.85, max_model_len=8192, "
                                         "enforce_eager=true)."),
    lora: Path | None = typer.Option(None, help="vllm: a LoRA adapter folder (a student from `distill train`) "
                                     "applied to every request."),
    documents: Path | None = typer.Option(None, "--documents", metavar="DIR", help="A folder of your documents: "
                                          "each leaf's questions are asked about its passages (docs/documents.md)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Generate a dataset over every node of a taxonomy with a teacher model."""
    from pydantic import ValidationError

    from distill.executors import check_executor, generation_executor
    from distill.generate.budget import print_estimate
    from distill.generate.runner import GenerateOptions, estimate_run, generate as run_generate
    from distill.generate.summary import print_report
    from distill.teachers.http.cost import load_api_config
    from distill.teachers.registry import TeacherSpec, parse_engine_args, teacher_options
    from distill.userfiles import invalid_options

    spec = TeacherSpec.parse(teacher).check()  # parsed once, here; an unknown spec fails before any model loads
    if (engine_arg or lora) and spec.kind != "vllm":
        raise DistillError(f"--engine-arg and --lora are for vllm: teachers, not {teacher!r}")
    try:
        options = GenerateOptions(
            taxonomy=taxonomy, teacher=spec, out=out, force=force, limit=limit, per_leaf=per_leaf, seed=seed,
            retry_failed=retry_failed,
            curate=not no_curate, progress=sys.stderr.isatty(),
            teacher_options=teacher_options(batch_size=batch_size, base_url=base_url, concurrency=concurrency,
                                            rpm=rpm, tpm=tpm, timeout_s=timeout, max_retries=max_retries,
                                            batch=batch or None, sender_process=sender_process,
                                            api_config=load_api_config(api_config) or None,
                                            engine_args=parse_engine_args(engine_arg) or None,
                                            lora=str(lora) if lora else None),
            cache=not no_cache, cache_dir=cache_dir, budget_usd=budget_usd, preflight=preflight,
            label_check=label_check, judge=judge, judge_faithfulness=judge_faithfulness, skip_checks=list(skip_check),
            user_teacher=TeacherSpec.parse(user_teacher).check() if user_teacher else None,
            user_base_url=user_base_url, executor=check_executor(executor), ray_workers=ray_workers, ray_gpus_per_worker=ray_gpus_per_worker,
            documents=documents,
        )
    except ValidationError as exc:  # a bound the flags do not check themselves (concurrency at most 4096)
        raise invalid_options(exc) from None
    if dry_run:
        print_estimate(console, estimate_run(options))
        return
    print_report(console, run_generate(options, executor=generation_executor(options.executor)))


@taxonomy_app.command("validate")
def taxonomy_validate(path: Path) -> None:
    """Check a taxonomy file and its seeds; prints one line per problem found."""
    from distill.generate.inputs import check_inputs
    from distill.taxonomy import build_plan, load_taxonomy
    from distill.taxonomy.plan import planned_count

    loaded = load_taxonomy(path)
    check_inputs(loaded, build_plan(loaded, limit=1))  # held-out sets and prompt templates too
    seeds = {s.id for node in loaded.nodes for s in node.seeds}
    console.print(f"[green]ok[/green] {escape(str(path))}: {len(loaded.nodes)} nodes, {len(loaded.leaves)} leaves, "
                  f"{len(seeds)} seeds, {planned_count(loaded):,} planned items")


@taxonomy_app.command("show")
def taxonomy_show(path: Path, seed: int = typer.Option(0, help="Plan seed."),
                  documents: Path | None = typer.Option(None, "--documents", metavar="DIR", help="A folder of your "
                                                        "documents: which chunks each leaf gets (docs/documents.md).")
                  ) -> None:
    """Print the tree, the axes and the planned counts; with --documents, the chunks each leaf gets."""
    from distill.generate.summary import print_taxonomy
    from distill.taxonomy import build_plan, load_taxonomy

    loaded = load_taxonomy(path)
    print_taxonomy(console, loaded, build_plan(loaded, seed=seed))
    if documents is not None:
        from distill.documents.commands import show_coverage

        show_coverage(console, loaded, documents)


@taxonomy_app.command("from-documents")
def taxonomy_from_documents(
    folder: Path = typer.Argument(..., metavar="DIR", help="The folder that holds your documents."),
    out: Path = typer.Option(..., "--out", help="Taxonomy file to write (taxonomies/NAME.yaml)."),
    force: bool = typer.Option(False, "--force", help="Replace --out if distill wrote it (your edits are lost)."),
) -> None:
    """Propose a first taxonomy from the headings of your documents, for you to edit (docs/documents.md)."""
    from distill.documents.first_taxonomy import write_first_taxonomy

    errors = Console(stderr=True)
    proposal = write_first_taxonomy(folder, out, force=force, say=lambda line: errors.print(
        f"warning: {escape(line)}", highlight=False, soft_wrap=True))
    console.print(f"[green]proposed[/green] {escape(str(out))}: {proposal.nodes} nodes, {proposal.leaves} leaves; "
                  f"edit it, then check it with distill taxonomy show {escape(str(out))} --documents "
                  f"{escape(str(folder))}", highlight=False, soft_wrap=True)


@taxonomy_app.command("diversity")
def taxonomy_diversity(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A run directory (or a folder `distill curate` "
                                   "wrote) with dataset.jsonl."),
    train: bool = typer.Option(False, "--train", help="Measure train.jsonl (what the student learns from), not "
                               "dataset.jsonl."),
    taxonomy: Path | None = typer.Option(None, "--taxonomy", "-t", help="The taxonomy file, for its empty leaves "
                                         "(default: the run's taxonomy.json)."),
    embeddings: bool = typer.Option(False, "--embeddings", help="Also the spread of the student's own embeddings "
                                    "of each leaf's examples (loads the student; needs distill[local])."),
    student: str | None = typer.Option(None, help="--embeddings: the model (default: the run's student/ base, "
                                       "else local, the embedded SmolLM2)."),
) -> None:
    """Distinct-n, self-similarity and duplicate rate of each leaf's examples, empty and saturated leaves;
    writes RUN_DIR/diversity.json (docs/curation.md#diversity-per-leaf)."""
    from distill.curate.diversity_report import diversity_table, measure_run, summary
    from distill.rundir import RunDir

    run = RunDir(run_dir, "RUN_DIR")
    model = (student or _run_student(run)) if embeddings else None
    embed = None
    if model is not None:
        from distill.curate.embeddings import student_embedder

        embed = student_embedder(model)
    report = measure_run(run, train=train, taxonomy=taxonomy, embed=embed, embedding_model=model)
    console.print(diversity_table(report))
    console.print(escape(summary(report, run)), highlight=False, soft_wrap=True)


def _run_student(run) -> str:
    """The base of the student the run trained (its adapter's manifest), else the embedded model."""
    from distill.models import LOCAL_ALIASES
    from distill.train.manifest import MANIFEST_NAME, read_manifest

    if not (run.student / MANIFEST_NAME).is_file():
        return "local"
    manifest = read_manifest(run.student)
    # What it resolved to when it trained: a folder named relative to where `distill train` ran is found again.
    return "local" if manifest.student in LOCAL_ALIASES else manifest.base_model


@taxonomy_app.command("import-instructlab")
def taxonomy_import_instructlab(
    source: Path = typer.Argument(..., help="Root folder of an InstructLab taxonomy (compositional_skills/, "
                                  "knowledge/, ...: every qna.yaml below it, schema versions 1, 2 and 3)."),
    out: Path = typer.Option(..., "--out", help="Taxonomy file to write (taxonomies/NAME.yaml); seeds and "
                             "passages go to NAME-seeds/ beside it."),
    documents: Path | None = typer.Option(None, help="Folder with the knowledge documents (a clone of each "
                                          "document.repo, or a folder of such clones); nothing is downloaded."),
    name: str | None = typer.Option(None, help="Taxonomy name (default: the --out file's name)."),
    per_leaf: int = typer.Option(3, min=1, help="Items to plan for each leaf."),
    system_prompt: str | None = typer.Option(None, help="The system turn of every example."),
    max_chars: int = typer.Option(1500, "--max-chars", min=200, help="The longest passage of a knowledge document, "
                                  "in characters (as `distill documents chunks`)."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
) -> None:
    """Convert an InstructLab taxonomy (qna.yaml files) into a taxonomy file and seed files; invalid files are
    listed and skipped."""
    from distill.documents.knowledge import passage_texts
    from distill.taxonomy.instructlab.convert import SYSTEM_PROMPT
    from distill.taxonomy.instructlab.importer import import_instructlab

    errors = Console(stderr=True)
    result = import_instructlab(source, out, read=lambda folder, files: passage_texts(folder, files, max_chars),
                                documents=documents, name=name, per_leaf=per_leaf,
                                system_prompt=system_prompt or SYSTEM_PROMPT, force=force,
                                say=lambda line: errors.print(escape(line), highlight=False, soft_wrap=True,
                                                              emoji=False))
    invalid = len({problem.file for problem in result.problems})
    skipped = f"; {invalid} invalid qna.yaml file{'s' if invalid != 1 else ''} skipped, listed above" if invalid else ""
    console.print(f"[green]imported[/green] {escape(str(out))}: {result.leaves} leaves, {result.seeds} seeds, "
                  f"{len(result.files)} seed and passage files{skipped}", highlight=False, soft_wrap=True)


@app.command("run")
def run_job(config: Path = typer.Argument(..., help="Run config YAML (taxonomy, generate, train, eval)."),
            retry_failed: bool = typer.Option(False, help="Ask the teacher again for items that failed "
                                              "(as generate.retry_failed: true in the config)."),
            force: bool = typer.Option(False, "--force", help="Go past the review gate (recorded in the adapter).")
            ) -> None:
    """One shot: generate -> curate -> split -> train -> eval; re-running resumes at the unfinished stage."""
    import json

    from distill.run import load_run_config, run_pipeline

    state = run_pipeline(load_run_config(config), say=lambda line: console.print(line, highlight=False),
                         retry_failed=retry_failed, force=force, progress=sys.stderr.isatty())
    console.print_json(json.dumps(state["done"], default=str))


@app.command("plugins")
def plugins_list() -> None:
    """List the installed plugins: teachers, tasks and checks other packages add (entry points)."""
    from rich.table import Table

    from distill.plugins import installed

    found = installed()
    if not found:
        console.print("no plugins installed (packages add them as entry points: distill.teachers, distill.tasks, "
                      "distill.checks)", highlight=False)
        return
    table = Table(title="distill plugins")
    for column in ("name", "kind", "module", "package"):
        table.add_column(column)
    for plugin in found:
        table.add_row(escape(plugin.name), plugin.kind[:-1], escape(plugin.module), escape(plugin.package))
    console.print(table)


def _register_stage_commands() -> None:
    """Stages add their own commands, so the CLI stays thin and a stage is found in its own folder."""
    from distill.curate import commands as curate_commands
    from distill.documents import commands as documents_commands
    from distill.evaluate import commands as evaluate_commands
    from distill.export import commands as export_commands
    from distill.improve import commands as improve_commands
    from distill.review import commands as review_commands
    from distill.train import commands as train_commands

    for stage in (curate_commands, review_commands, train_commands, evaluate_commands, export_commands,
                  documents_commands, improve_commands):
        stage.register(app)


_register_stage_commands()


def _usage_classes() -> tuple[tuple[type[Any], ...], tuple[type[BaseException], ...]]:
    """The usage-error and abort classes the installed typer raises: its own vendored click's (typer 0.29+)
    and click's (older typer), whichever exist."""
    usage: list[type[Any]] = []  # each with click's show() and exit_code
    abort: list[type[BaseException]] = []
    try:
        from typer._click import exceptions as vendored

        usage.append(vendored.ClickException)
        abort.append(getattr(vendored, "Abort", None) or typer.Abort)
    except ImportError:
        pass
    try:
        import click

        usage.append(click.ClickException)
        abort.append(click.exceptions.Abort)
    except ImportError:
        pass
    abort.append(typer.Abort)
    return tuple(usage), tuple(abort)


USAGE_ERRORS, ABORTS = _usage_classes()


# SIGTERM (`kill`, a scheduler, a service manager) and SIGHUP (the terminal closed) stop a command the way
# Ctrl-C does. The exit code is the shell's for each signal, 128 + its number (130, 143, 129): a wrapper
# script or scheduler that looks for 143 after its own SIGTERM still sees it, and the line says the same.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_stopped_by: int = signal.SIGINT


def _stop_as_ctrl_c(signum: int, frame) -> None:
    """Hand SIGTERM / SIGHUP to whatever answers Ctrl-C right now: `asyncio.run`'s handler (it cancels the
    run's task, so everything answered is saved on the way out) or Python's (KeyboardInterrupt)."""
    global _stopped_by
    _stopped_by = signum
    ctrl_c = signal.getsignal(signal.SIGINT)
    if callable(ctrl_c):
        ctrl_c(signal.SIGINT, frame)
    else:  # Ctrl-C ignored (a background job): a stop request is still one
        raise KeyboardInterrupt


@contextmanager
def _stop_signals_as_ctrl_c() -> Iterator[None]:
    """SIGTERM and SIGHUP handled by `_stop_as_ctrl_c` while a command runs (then as they were: the CLI's
    entry point also runs inside other programs, the tests among them)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    # `nohup` asked for SIGHUP to be ignored: it stays so.
    before = {stop: signal.getsignal(stop) for stop in STOP_SIGNALS if signal.getsignal(stop) is not signal.SIG_IGN}
    for stop in before:
        signal.signal(stop, _stop_as_ctrl_c)
    try:
        yield
    finally:
        for stop, handler in before.items():
            signal.signal(stop, handler)


def _interrupted_code() -> int:
    return 128 + _stopped_by


def _fail(message: str, code: int) -> None:
    prefix = "" if code >= 128 else "[red]error:[/red] "
    # emoji=False: rich would turn "file.yaml:100: ..." into "file.yaml💯 ..." (":100:" is an emoji code).
    Console(stderr=True).print(prefix + escape(message), highlight=False, soft_wrap=True, emoji=False)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """The console script: exit 0 done, 2 bad input or usage, 1 the run could not finish, 3 budget, 4 review
    pending, 130 Ctrl-C (143 SIGTERM, 129 SIGHUP)."""
    quiet_library_bars()
    run_app(app, argv)


def quiet_library_bars() -> None:
    """Into a log file or a pipe, the libraries' own progress bars (loading weights, each of TRL's dataset
    passes) write dozens of carriage-return lines that say nothing there; distill's own progress lines stay.
    Set before the libraries are imported (they read it once); a value the user set wins. The embedded
    model's one-time GGUF conversion bar (transformers' plain tqdm) is not covered."""
    if sys.stderr.isatty():
        return
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(name, "1")


def run_app(typer_app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run a typer app as a user's command: a user's mistake or the machine's (a full disk, a corrupt
    run.db) is one line and an exit code, never a traceback; anything else is a bug and keeps its
    traceback (DISTILL_DEBUG=1 keeps it for everything). SIGTERM and SIGHUP stop it as Ctrl-C does."""
    try:
        with _stop_signals_as_ctrl_c():
            code = typer_app(args=argv, standalone_mode=False)
    except Interrupted as exc:
        _fail(str(exc), _interrupted_code())
    except DistillError as exc:
        _fail(str(exc), exc.exit_code)
    except USAGE_ERRORS as exc:  # click's usage message, "Error: ..." and exit 2 (0 for plain help)
        exc.show()
        sys.exit(exc.exit_code)
    except ABORTS:
        _fail("aborted", 1)
    except KeyboardInterrupt:  # outside a command (while parsing): nothing ran
        _fail(str(Interrupted()), _interrupted_code())
    except Exception as exc:
        error = explain(exc)
        if error is None or os.environ.get("DISTILL_DEBUG"):
            raise
        _fail(str(error), error.exit_code)
    # standalone_mode=False returns the code of a typer.Exit (--help: 0) and a command's own return value.
    if isinstance(code, int) and code == Interrupted.exit_code:
        _fail(str(Interrupted()), _interrupted_code())
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
