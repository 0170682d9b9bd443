"""`distill curate` and `distill split`: parse options, call the library, print a summary."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from pydantic import ValidationError

from distill.errors import DistillError
from distill.owned import FORCE_HELP, OwnedFolder


def _default_out(input_path: Path) -> Path:
    if input_path.is_dir():
        return input_path / "curated"
    return input_path.with_name(input_path.stem + "_curated")


def curate_out(out: Path, force: bool = False) -> OwnedFolder:
    """The --out folder of `distill curate`, claimed before anything is written there (the judges' judge.db
    included); a run directory is refused: curate would write over generation's exports."""
    if (Path(out) / "run.db").exists():
        raise DistillError(f"--out {out} is a generation run directory: curate would write over its dataset.jsonl "
                           "and rejected.jsonl (generation's exports); give another --out (default INPUT/curated)")
    return OwnedFolder.claim(out, "curated", force=force)


def run_curate(source, out: Path | None, config, console: Console | None = None, show_progress: bool = True,
               judge=None, label_judge=None, executor: str = "local", output_format: str = "jsonl",
               force: bool = False, **ray_options):
    """Curate INPUT (a run directory, a JSONL or Parquet file or folder, or a list of `Example`s); with `out`,
    write the output files there (a folder of distill's own; `force` writes beside a user's files). Returns the
    result. `distill curate` and `distill.curate()` both come here, and this is where the executor is chosen.

    Locally kept rows and rejects go to `dataset.jsonl` / `rejected.jsonl`; on Ray each task writes its
    own part of `dataset/` and `rejected/` (JSONL or Parquet shards)."""
    from distill.curate.pipeline import curation
    from distill.curate.progress import stage_progress
    from distill.executors import curation_executor

    steps = curation(config, judge, label_judge)
    if executor == "ray" and (out is None or not isinstance(source, (str, Path))):
        raise DistillError("--executor ray reads files and writes a folder: give INPUT as a path and an --out")
    with stage_progress(console, show_progress and executor == "local") as progress:
        runner = curation_executor(executor, workers=config.workers, progress=progress, out=out,
                                   output_format=output_format, **ray_options)
        runner.check(steps)  # a step the executor cannot run is refused before anything is written
        folder = curate_out(out, force) if out is not None else None
        if folder is not None:
            folder.check_all(("dataset.jsonl", "rejected.jsonl", "stats.json", "report.md", "contamination.jsonl",
                              "duplicates.jsonl"))
        if executor == "ray":
            for parts in ("dataset/", "rejected/"):  # each task writes its own shard in there
                folder.reserve(parts)
        result = runner.run(steps, source)
    if folder is None:
        return result
    if executor == "local":
        folder.write_jsonl("dataset.jsonl", result.kept)
        folder.write_jsonl("rejected.jsonl", result.rejects)
    _write_reports(source if isinstance(source, (str, Path)) else "(examples)", folder, result)
    return result


def curate(examples, config, progress=None, judge=None, label_judge=None):
    """Curate `examples` in this process (the local executor) and return the `CurateResult`: generation's own
    curation at the end of a run. `judge` answers the judged checks (`config.topic_judge`, and
    `config.label_check` unless a `label_judge` is given for it), recording its calls."""
    from distill.curate.pipeline import curation
    from distill.executors.local import LocalExecutor

    return LocalExecutor(workers=config.workers, progress=progress).run(curation(config, judge, label_judge), examples)


def _write_reports(input_path, out: OwnedFolder, result) -> None:
    from distill.curate.report import markdown_report

    out.write_jsonl("contamination.jsonl", result.contamination)
    out.write_jsonl("duplicates.jsonl", result.duplicates)
    out.write_json("stats.json", {"input": str(input_path), **result.to_stats()})
    out.write_text("report.md", markdown_report(result) + "\n")


@contextmanager
def _judges(out: Path, force: bool, label_spec: str | None, topic_spec: str | None, cache: bool):
    """(label judge, topic judge) for `distill curate`, their calls recorded in OUT/judge.db; None when off.

    Not run.db: that name marks a generation run directory, which curate refuses to write into."""
    if not label_spec and not topic_spec:
        yield None, None
        return
    from distill.curate.judge import Judge
    from distill.teachers.cache import default_cache_dir
    from distill.teachers.registry import parse_spec
    from distill.teachers.stack import build_teacher

    for spec in filter(None, (label_spec, topic_spec)):
        parse_spec(spec)  # an unknown spec fails before anything runs
    cache_dir = default_cache_dir() if cache else None
    log = _JudgeLog(out, force)
    try:  # the one builder: verdicts are wanted now, never as a provider batch job
        made = {spec: Judge(spec, lambda spec=spec: build_teacher(spec, cache_dir=cache_dir, online=True), log)
                for spec in filter(None, (label_spec, topic_spec))}
        yield made.get(label_spec), made.get(topic_spec)
    finally:
        log.close()


class _JudgeLog:
    """OUT/judge.db, opened at the judges' first call: a curation refused before it starts (or one that fails
    before its judged checks) leaves no judge.db behind."""

    def __init__(self, out: Path, force: bool):
        self.out, self.force, self.store = out, force, None

    def _opened(self):
        from distill.store import RunStore

        if self.store is None:
            self.store = RunStore(curate_out(self.out, self.force).reserve("judge.db"))
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
            "heldout": [parse_heldout_option(h) for h in heldout],
            "against": list(against), "threshold": threshold, "shingle_size": shingle_size, "num_perm": num_perm,
            "ngram": ngram, "min_words": min_words, "max_words": max_words,
            "language": language,
            **({"labels": labels.split(",")} if labels is not None else {}),
            "near_dedup": near_dedup, "decontam_minhash_threshold": decontam_minhash,
            "skip_checks": list(skip_check), "min_topic_ratio": min_topic_ratio,
            "label_check": label_check is not None, "topic_judge": judge is not None,
            **({"workers": workers} if workers else {}),
        }
        try:
            config = CurateConfig(**with_taxonomy(taxonomy, settings))
        except ValidationError as err:  # a threshold out of range, min words above max words and the like
            raise invalid_options(err) from None
        for source in config.heldout:  # before reading the input: decontamination comes last
            if not Path(source.path).exists():
                raise DistillError(f"--heldout: file not found ({Path(source.path).resolve()}; a relative path starts "
                                   "from the current folder)", path=source.path)
        if label_check and not config.labels:
            raise DistillError("--label-check needs the label set: pass --taxonomy FILE or --labels a,b,c")
        console = Console()
        with _judges(out_dir, force, label_check, judge, not no_cache) as (label_judge, topic_judge):
            result = run_curate(input_path, out_dir, config, console, judge=topic_judge, label_judge=label_judge,
                                executor=executor, output_format=output_format, force=force)
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
