"""The Python API: each stage as one function, for scripts and notebooks.

    import distill
    report = distill.generate("taxonomies/medical.yaml", teacher="openai:gpt-4o-mini", limit=50)
    curated = distill.curate(report.out, taxonomy="taxonomies/medical.yaml")

Every function takes the options its command takes, as keywords, checked by the same pydantic model
(`GenerateOptions`, `CurateConfig`, `ReviewSettings`, `TrainConfig`, `EvalConfig`), and returns the
command's typed result. Each runs from a script and from inside a running event loop (Jupyter, IPython
with autoawait): there the work goes to a worker thread, because generation and the judges drive event
loops of their own and `asyncio.run` cannot start one inside another. `agenerate` is the awaitable form.
A mistake raises `distill.errors.DistillError` with the one line the CLI would print.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from distill.taxonomy import LoadedTaxonomy, load_taxonomy
from distill.taxonomy.model import Taxonomy

__all__ = ["agenerate", "curate", "evaluate", "generate", "load_taxonomy", "review", "split", "train"]

TaxonomySource = str | Path | Taxonomy
T = TypeVar("T")


def _generate_options(taxonomy: TaxonomySource, options: dict[str, Any]):
    from distill.generate.runner import GenerateOptions

    options.setdefault("progress", True)
    return GenerateOptions(taxonomy=taxonomy if isinstance(taxonomy, Taxonomy) else Path(taxonomy), **options)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _outside_any_loop(function: Callable[..., T]) -> Callable[..., T]:
    """Run `function` where `asyncio.run` works: here, or, inside a running event loop (a notebook cell), in a
    worker thread that the caller waits for, as for any blocking call. Generation, the curation and eval
    judges all drive event loops of their own."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> T:
        if not _loop_running():
            return function(*args, **kwargs)
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                outcome["value"] = function(*args, **kwargs)
            except BaseException as exc:  # re-raised in the caller's thread, KeyboardInterrupt included
                outcome["error"] = exc
            finally:
                done.set()

        worker = threading.Thread(target=work, name=f"distill-{function.__name__}", daemon=True)
        worker.start()
        try:
            # An Event, not worker.join(): a join interrupted by KeyboardInterrupt can leave the thread marked
            # as stopped while it runs on (CPython 3.11), and a second join then returns at once.
            done.wait()
        except KeyboardInterrupt:
            _interrupt(worker, done)
            raise
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return run


def _interrupt(worker: threading.Thread, done: threading.Event) -> None:
    """Jupyter's interrupt button reaches the kernel's main thread only. Pass it on to the worker, which then
    stops as a run stopped by Ctrl-C does (everything answered is saved, the run lock released), and wait for
    that; a second interrupt stops waiting."""
    assert worker.ident is not None  # (started)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(KeyboardInterrupt))
    done.wait()


@_outside_any_loop
def generate(taxonomy: TaxonomySource, **options: Any):
    """Generate (or resume) a run over `taxonomy` (a file, or a `Taxonomy` built in Python); returns the
    `RunReport` (`.out`, `.stats`, `.files`). Options are `GenerateOptions`' fields: teacher, out, limit,
    seed, curate, teacher_options (a dict or `TeacherOptions`: base_url, concurrency ...), budget_usd,
    executor ("local", or "ray": actors on a Ray cluster, each with its own teacher) ..."""
    from distill.executors import generation_executor
    from distill.generate.runner import generate as run

    checked = _generate_options(taxonomy, options)
    return run(checked, executor=generation_executor(checked.executor))


async def agenerate(taxonomy: TaxonomySource, **options: Any):
    """`generate`, awaitable: the run goes to a worker thread and the caller's loop keeps running."""
    from distill.executors import generation_executor
    from distill.generate.runner import generate as run

    checked = _generate_options(taxonomy, options)
    return await asyncio.to_thread(run, checked, executor=generation_executor(checked.executor))


@_outside_any_loop
def curate(data: str | Path | Iterable, *, taxonomy: TaxonomySource | LoadedTaxonomy | None = None,
           out: str | Path | None = None, progress: bool = True, force: bool = False, **config: Any):
    """Check, dedup and decontaminate `data` (a run directory, a JSONL file or `Example`s); returns the
    `CurateResult` (`.kept`, `.rejects` with reasons, `.to_stats()`). With `taxonomy`, its labels, task
    checks, held-out sets and node texts apply, as in `distill curate --taxonomy`; with `out`, the same six
    files are written (`force`: into a folder of the user's, beside what is there). Other options are `CurateConfig`'s fields (threshold, skip_checks, heldout ...)."""
    from distill.curate.commands import run_curate
    from distill.curate.from_taxonomy import with_taxonomy
    from distill.curate.pipeline import CurateConfig

    checked = CurateConfig(**with_taxonomy(taxonomy, config))
    return run_curate(data, Path(out) if out is not None else None, checked, show_progress=progress, force=force)


@_outside_any_loop
def split(directory: str | Path, fraction: float = 0.1, seed: int = 0):
    """Split a curated folder into train.jsonl and eval.jsonl, stratified by taxonomy node (`distill split`);
    returns the `SplitResult`."""
    from distill.curate.split import split_dataset

    return split_dataset(Path(directory), fraction=fraction, seed=seed)


@_outside_any_loop
def review(directory: str | Path, *, more: int | None = None, **settings: Any):
    """Build (or grow by `more`) the human review queue of a run (`distill review DIR`); returns the
    `QueueReport`. Settings are `ReviewSettings`' fields (size, sample, threshold ...). People then review
    with `distill review DIR --serve` (the browser) or `distill review DIR --cli` (the terminal)."""
    from distill.review.model import ReviewSettings
    from distill.review.queue import build_queue

    return build_queue(Path(directory), ReviewSettings(**settings) if settings else None, more=more)


@_outside_any_loop
def train(directory: str | Path, *, out: str | Path | None = None, progress: bool = True, force_review: bool = False,
          force_out: bool = False, **config: Any):
    """Fine-tune the student on the run's training split (`distill train`); returns the `TrainResult`.
    Options are `TrainConfig`'s fields (student, epochs, lora_r, qlora ...)."""
    from distill.train.config import TrainConfig
    from distill.train.sft import train as run

    return run(Path(directory), TrainConfig(**config), Path(out) if out is not None else None, progress=progress,
               force_review=force_review, force_out=force_out)


@_outside_any_loop
def evaluate(directory: str | Path, *, student: str | Path | None = None, **config: Any):
    """Compare the student with its base on the run's eval split (`distill eval`); returns the `EvalResult`
    (`.report`, `.json_path`). `student` defaults to RUN_DIR/student; options are `EvalConfig`'s fields."""
    from distill.evaluate.report import EvalConfig, evaluate as run
    from distill.train.sft import default_out_dir

    directory = Path(directory)
    return run(directory, Path(student) if student is not None else default_out_dir(directory), EvalConfig(**config))
