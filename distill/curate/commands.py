"""`distill curate` and `distill split`: parse options, call the library, print a summary."""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console

from distill.curate.dataset_io import check_first_rows, dataset_files
from distill.curate.heldout import check_source
from distill.errors import DistillError
from distill.owned import FORCE_HELP
from distill.rundir import JUDGE_DB, RunDir
from distill.store import RunStore
from distill.teachers.registry import TeacherSpec


def _default_out(input_path: Path) -> Path:
    if input_path.is_dir():
        return input_path / "curated"
    return input_path.with_name(input_path.stem + "_curated")


def run_curate(source, out: Path | None, config, console: Console | None = None, show_progress: bool = True,
               judge=None, label_judge=None, executor: str = "local", output_format: str = "jsonl",
               force: bool = False, **ray_options):
    """Curate INPUT (a run directory, a JSONL or Parquet file or folder, or a list of `Example`s); with `out`,
    write the output files there (a folder of distill's own; `force` writes beside a user's files). Returns the
    result. `distill curate` and `distill.curate()` both come here."""
    from distill.curate.pipeline import curation
    from distill.curate.progress import stage_progress
    from distill.executors import curation_executor

    if out is None:
        if executor == "ray":
            raise DistillError("--executor ray reads files and writes a folder: give INPUT as a path and an --out")
        with stage_progress(console, show_progress) as progress:
            return curation_executor(executor, workers=config.workers, progress=progress).run(
                curation(config, judge, label_judge), source)
    return run(RunDir.curated(out, force), config, source, console=console, show_progress=show_progress,
               judge=judge, label_judge=label_judge, executor=executor, output_format=output_format, **ray_options)


def run(run_dir: RunDir, config, source, console: Console | None = None, show_progress: bool = True,
        judge=None, label_judge=None, executor: str = "local", output_format: str = "jsonl", **ray_options):
    """The curation stage into curate's --out (`RunDir.curated`): `source` (a run directory, a JSONL or Parquet
    file or folder, or `Example`s) checked, deduplicated and decontaminated with `config` (a `CurateConfig`) by
    the executor named here. The steps are checked against that executor before the folder is claimed: a
    curation it cannot run leaves nothing behind. Locally the kept rows and rejects go to dataset.jsonl and
    rejected.jsonl; on Ray each task writes its own part of dataset/ and rejected/ (JSONL or Parquet shards)."""
    from distill.curate.pipeline import curation
    from distill.curate.progress import stage_progress
    from distill.curate.report import markdown_report
    from distill.executors import curation_executor

    if executor == "ray" and not isinstance(source, (str, Path)):
        raise DistillError("--executor ray reads files and writes a folder: give INPUT as a path and an --out")
    steps = curation(config, judge, label_judge)
    with stage_progress(console, show_progress and executor == "local") as progress:
        runner = curation_executor(executor, workers=config.workers, progress=progress, out=run_dir.root,
                                   output_format=output_format, **ray_options)
        runner.check(steps)  # a step the executor cannot run is refused before anything is written
        run_dir.claimed()
        if executor == "ray":
            run_dir.reserve_parts()  # each task writes its own shard in there
        result = runner.run(steps, source)
    kept, rejects = (None, None) if executor == "ray" else (result.kept, result.rejects)  # Ray's are in the parts
    run_dir.write_curated(str(source) if isinstance(source, (str, Path)) else "(examples)", kept, rejects,
                          result.contamination, result.duplicates, result.to_stats(), markdown_report(result) + "\n")
    return result


@contextmanager
def _judges(out: RunDir, label_spec: TeacherSpec | None, topic_spec: TeacherSpec | None, cache: bool):
    """(label judge, topic judge) for `distill curate`, their calls recorded in OUT/judge.db; None when off.

    Not run.db: that name marks a generation run directory, which curate refuses to write into."""
    if not label_spec and not topic_spec:
        yield None, None
        return
    from distill.curate.judge import Judge
    from distill.teachers.stack import build_teacher
    from distill.teachers.wrappers.cache import default_cache_dir

    cache_dir = default_cache_dir() if cache else None
    log = _JudgeLog(out)
    try:  # the one builder: verdicts are wanted now, never as a provider batch job
        made = {spec: Judge(spec.text, partial(build_teacher, spec.text, cache_dir=cache_dir, online=True), log)
                for spec in filter(None, (label_spec, topic_spec))}
        yield (made[label_spec] if label_spec else None), (made[topic_spec] if topic_spec else None)
    finally:
        log.close()


class _JudgeLog:
    """OUT/judge.db, opened at the judges' first call: a curation refused before it starts (or one that fails
    before its judged checks) leaves no judge.db behind."""

    def __init__(self, out: RunDir):
        self.out = out
        self.store: RunStore | None = None

    def _opened(self) -> RunStore:
        if self.store is None:
            self.store = RunStore(self.out.folder().reserve(JUDGE_DB))
        return self.store

    def find_call(self, fingerprint: str):
        return self._opened().find_call(fingerprint)

    def add_call(self, *call) -> None:
        self._opened().add_call(*call)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def print_summary(result, console: Console, out: Path | None = None) -> None:
    from distill.curate.report import yield_table

    console.print(yield_table(result))
    for node, reason in result.empty_nodes():
        console.print(f"[bold red]kept nothing:[/bold red] {node} (most common reason: {reason})")
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    for step, stats in result.judge_info.items():
        if isinstance(stats, dict):
            console.print(f"{step} ({stats['teacher']}): checked {stats['checked']}, agreed {stats['agreed']}, "
                          f"removed {stats['removed']}, unclear {stats['unclear']}, failed {stats['failed']}",
                          highlight=False)
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
        input_path: Path = typer.Argument(..., metavar="INPUT", help="A run directory (with dataset.jsonl), a JSONL or "
                                          "Parquet dataset, or a folder of them (docs/formats.md)."),
        input_format: str = typer.Option("auto", "--input-format", help="Row format of INPUT: auto (told from each "
                                         "row), messages, sharegpt, alpaca or prompt-completion."),
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
        taxonomy: Path | None = typer.Option(None, "--taxonomy", "-t", help="The taxonomy the data was made from: "
                                             "node texts for off_topic, labels and held-out sets."),
        label_check: str | None = typer.Option(None, "--label-check", metavar="SPEC", help="Classification: this "
                                               "teacher classifies each input blind; a different label rejects it."),
        judge: str | None = typer.Option(None, "--judge", metavar="SPEC", help="A teacher decides off_topic instead "
                                         "of the lexical check (needs --taxonomy)."),
        skip_check: list[str] = typer.Option([], "--skip-check", help="Switch a check off by name (off_topic, "
                                             "self_contained ...). Repeatable."),
        min_topic_ratio: float = typer.Option(0.3, help="off_topic: reject when the example's node scores under "
                                              "this times the best other leaf."),
        max_tool_rounds: int = typer.Option(4, help="tool_loop: reject a conversation with more assistant turns "
                                            "calling tools than this before it answers a user turn."),
        no_cache: bool = typer.Option(False, "--no-cache", help="API judges: bypass the shared response cache."),
        executor: str = typer.Option("local", help="local (this process) or ray (a Ray cluster: joins RAY_ADDRESS, "
                                     "else starts one on this machine)."),
        output_format: str = typer.Option("jsonl", help="ray: format of the dataset/ and rejected/ shards (jsonl or parquet)."),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    ) -> None:
        """Check, dedup and decontaminate a dataset; writes dataset.jsonl, rejected.jsonl, stats.json,
        contamination.jsonl, duplicates.jsonl and report.md (and run.db, the judges' calls, with
        --label-check or --judge)."""
        from distill.curate.from_taxonomy import with_taxonomy
        from distill.curate.heldout import parse_heldout_option
        from distill.curate.pipeline import CurateConfig
        from distill.executors import check_executor
        from distill.userfiles import invalid_options

        check_executor(executor)
        if output_format not in ("jsonl", "parquet"):
            raise DistillError(f"--output-format {output_format!r}: use jsonl or parquet")
        if executor == "local" and output_format != "jsonl":
            raise DistillError("--output-format parquet is for --executor ray (the local path writes dataset.jsonl)")
        out_dir = out or _default_out(input_path)
        if judge and not taxonomy:
            raise DistillError("--judge decides off_topic against the taxonomy's nodes: pass --taxonomy FILE too")
        settings = {
            "heldout": [parse_heldout_option(h) for h in heldout], "input_format": input_format,
            "against": list(against), "threshold": threshold, "shingle_size": shingle_size, "num_perm": num_perm,
            "ngram": ngram, "min_words": min_words, "max_words": max_words,
            "language": language,
            **({"labels": labels.split(",")} if labels is not None else {}),
            "near_dedup": near_dedup, "decontam_minhash_threshold": decontam_minhash,
            "skip_checks": list(skip_check), "min_topic_ratio": min_topic_ratio, "max_tool_rounds": max_tool_rounds,
            "label_check": label_check is not None, "topic_judge": judge is not None,
            **({"workers": workers} if workers else {}),
        }
        try:
            config = CurateConfig(**with_taxonomy(taxonomy, settings))
        except ValidationError as err:  # a threshold out of range, min words above max words and the like
            raise invalid_options(err) from None
        dataset_files(input_path)  # the input and every held-out set are checked before --out is made
        for source in config.heldout:
            check_source(source)
        check_first_rows(input_path, config.input_format)
        if label_check and not config.labels:
            raise DistillError("--label-check needs the label set: pass --taxonomy FILE or --labels a,b,c")
        # Parsed once, here; an unknown spec fails before anything is written or run.
        label_spec = TeacherSpec.parse(label_check).check() if label_check else None
        topic_spec = TeacherSpec.parse(judge).check() if judge else None
        console = Console()
        run_dir = RunDir.curated(out_dir, force)  # claimed once the steps are checked, before judge.db goes in
        with _judges(run_dir, label_spec, topic_spec, not no_cache) as (label_judge, topic_judge):
            result = run(run_dir, config, input_path, console, judge=topic_judge, label_judge=label_judge,
                         executor=executor, output_format=output_format)
        print_summary(result, console, out_dir)

    @app.command("split")
    def split_command(
        directory: Path = typer.Argument(..., metavar="DIR", help="A folder with a curated dataset.jsonl."),
        fraction: float = typer.Option(0.1, help="Share held out for evaluation, stratified by taxonomy node."),
        seed: int = typer.Option(0, help="Changes which examples go to eval."),
    ) -> None:
        """Carve a stratified evaluation split: writes DIR/train.jsonl and DIR/eval.jsonl (small leaves are
        pooled with their siblings); records the split in DIR/stats.json."""
        from distill.curate.split import split_dataset

        result = split_dataset(directory, fraction=fraction, seed=seed)
        console = Console(highlight=False)
        for line in result.describe():
            console.print(line, style="yellow" if line.startswith("note:") else None, markup=False, soft_wrap=True)
        console.print(f"-> {directory}/train.jsonl, eval.jsonl")
