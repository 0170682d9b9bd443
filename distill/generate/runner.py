"""`distill generate`: plan the taxonomy, ask the teacher, store every answer, export the dataset."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from distill.errors import DistillError
from distill.generate.dispatch import Dispatcher
from distill.generate.export import RunReport, finish_run
from distill.generate.parse import Rejected
from distill.generate.progress import GenerationProgress
from distill.generate.tasks import TASKS, ItemContext
from distill.records import PlanItem, Reject
from distill.store import FAILED, PENDING, RunStore
from distill.taxonomy import LoadedTaxonomy, build_plan, limit_plan, load_taxonomy
from distill.teachers.base import GenerationRequest, GenerationResult, Teacher
from distill.teachers.registry import TeacherOptions, make_teacher


@dataclass
class GenerateOptions:
    taxonomy: Path
    teacher: str = "local"
    out: Path | None = None
    limit: int | None = None
    seed: int = 0
    retry_failed: bool = False
    curate: bool = True
    progress: bool = True
    teacher_options: TeacherOptions = field(default_factory=TeacherOptions)


class TeacherFailed(Exception):
    def __init__(self, step: str, error: str):
        super().__init__(f"{step}: {error}")
        self.step, self.error = step, error


def default_out(loaded: LoadedTaxonomy) -> Path:
    return Path("runs") / loaded.name


def generate(options: GenerateOptions, teacher_factory: Callable[[], Teacher] | None = None) -> RunReport:
    """Run (or resume) generation and write the run directory. Returns the report the CLI prints."""
    loaded = load_taxonomy(options.taxonomy)
    out = options.out or default_out(loaded)
    plan = limit_plan(build_plan(loaded, seed=options.seed), options.limit)
    store = RunStore(out / "run.db")
    try:
        _check_same_taxonomy(store, loaded, out)
        store.set_info(taxonomy=loaded.name, taxonomy_file=str(loaded.file), seed=options.seed,
                       teacher=options.teacher, task=loaded.taxonomy.task)
        store.add_plan(plan)
        todo = _todo(store, plan, options.retry_failed)
        if todo:
            teacher = teacher_factory() if teacher_factory else make_teacher(options.teacher, options.teacher_options)
            try:
                asyncio.run(_generate_items(store, loaded, todo, teacher, options))
            finally:
                teacher.close()
        return finish_run(store, loaded, plan, out, curate=options.curate)
    except KeyboardInterrupt:
        # Everything answered is already committed; export what there is so the files match run.db.
        finish_run(store, loaded, plan, out, curate=False)
        raise
    finally:
        store.close()


def _check_same_taxonomy(store: RunStore, loaded: LoadedTaxonomy, out: Path) -> None:
    info = store.info()
    if info.get("taxonomy") not in (None, loaded.name):
        raise DistillError(
            f"{out} holds a run of taxonomy {info['taxonomy']!r}, not {loaded.name!r}; choose another --out"
        )


def _todo(store: RunStore, plan: list[PlanItem], retry_failed: bool) -> list[PlanItem]:
    statuses = store.statuses()
    wanted = {PENDING, FAILED} if retry_failed else {PENDING}
    return [item for item in plan if statuses.get(item.id, PENDING) in wanted]


async def _generate_items(store: RunStore, loaded: LoadedTaxonomy, items: list[PlanItem], teacher: Teacher,
                          options: GenerateOptions) -> None:
    task = TASKS[loaded.taxonomy.task]
    leaves = {leaf.path: leaf for leaf in loaded.leaves}
    # Enough items in flight to fill every concurrent batch twice over, so the teacher never waits on us.
    in_flight = asyncio.Semaphore(max(2, teacher.batch_size * teacher.concurrency * 2))
    with GenerationProgress(total=len(items), enabled=options.progress) as progress:
        async with Dispatcher(teacher) as dispatcher:

            async def call(item: PlanItem, step: str, request: GenerationRequest) -> GenerationResult:
                fingerprint = request.fingerprint(teacher.spec)
                stored = store.find_call(fingerprint)
                if stored is not None:  # answered in an earlier (maybe killed) run: never pay twice
                    return stored.model_copy(update={"key": request.key})
                result = await dispatcher.submit(request)
                store.add_call(item.id, step, teacher.spec, request, fingerprint, result)
                progress.add_tokens(result.usage.prompt_tokens, result.usage.completion_tokens)
                if not result.ok:
                    raise TeacherFailed(step, result.error or "no text")
                return result

            async def process(item: PlanItem) -> None:
                async with in_flight:
                    ctx = ItemContext(loaded, item, leaves[item.node_path], teacher.spec,
                                      lambda step, request: call(item, step, request))
                    try:
                        store.add_example(await task(ctx))
                        progress.advance(kept=True)
                    except Rejected as rejected:
                        store.add_reject(Reject(id=item.id, stage="generate", reason=rejected.reason,
                                                detail=rejected.detail, raw=rejected.raw, node_path=item.node_path))
                        progress.advance(kept=False)
                    except TeacherFailed as failed:
                        store.add_reject(
                            Reject(id=item.id, stage="generate", reason="teacher_failed",
                                   detail=f"{failed.step}: {failed.error}", node_path=item.node_path),
                            plan_status=FAILED,
                        )
                        progress.advance(kept=False, failed=True)

            started = time.monotonic()
            await asyncio.gather(*(process(item) for item in items))
            progress.finish(time.monotonic() - started)
