"""`distill generate`: plan the taxonomy, ask the teacher, store every answer, export the dataset."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, Protocol, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from distill.check_names import unknown_checks
from distill.curate.heldout import load_heldout
from distill.curate.judge import Judge
from distill.curate.progress import stage_progress
from distill.documents.grounding import with_passages
from distill.documents.knowledge import with_knowledge
from distill.errors import DistillError, RunFailed
from distill.generate import preflight, switch_hint
from distill.generate.budget import Budget, BudgetStop, Estimate, ItemHold, estimate_items
from distill.generate.dispatch import Dispatcher
from distill.generate.export import RunReport, finish_run
from distill.generate.inputs import check_inputs
from distill.generate.item import TeacherFailed, run_item, save_outcome
from distill.generate.progress import GenerationProgress
from distill.owned import writable_folder
from distill.records import PlanItem
from distill.rundir import RunDir
from distill.store import FAILED, PENDING, RunStore
from distill.taxonomy import LoadedTaxonomy, build_plan, load_taxonomy, with_per_leaf
from distill.taxonomy.model import Taxonomy
from distill.taxonomy.snapshot import write_snapshot
from distill.teachers.base import GenerationRequest, GenerationResult, Teacher
from distill.teachers.http.cost import PriceTable
from distill.teachers.http.limits import unreachable
from distill.teachers.registry import TeacherOptions, TeacherSpec
from distill.teachers.stack import build_teacher
from distill.teachers.wrappers.cache import default_cache_dir


class GenerateSettings(BaseModel):
    """How to generate, the same wherever it is asked: `distill generate`'s flags, the `generate:` section of a
    `distill run` config, the keywords of `distill.generate()`."""

    model_config = ConfigDict(extra="forbid")

    teacher: TeacherSpec = TeacherSpec(kind="local", model="local")  # parsed from its text ("openai:gpt-4o-mini")
    limit: int | None = Field(None, gt=0)
    per_leaf: int | None = Field(None, gt=0)  # items a leaf, in place of the taxonomy's per_leaf / total
    seed: int = 0
    retry_failed: bool = False  # also ask the teacher again for items whose calls failed
    curate: bool = True
    teacher_options: TeacherOptions = Field(default_factory=TeacherOptions)  # base_url, concurrency, batch ...
    # API teachers (openai:, anthropic:) only; the local path ignores these.
    cache: bool = True  # the user-level response cache shared across runs
    cache_dir: Path | None = None  # default: $DISTILL_CACHE_DIR or ~/.cache/distill
    budget_usd: float | None = Field(None, ge=0)  # hard cap on this run directory's spend
    preflight: bool = True  # a small sample first; stop early when most of it fails
    # Curation (curate/judge.py): the label round trip asks `judge` (default: the run's teacher) to
    # classify each input blind; with a `judge`, off_topic is decided by it too. Checks in
    # `skip_checks` are switched off (by name: "off_topic", "self_contained" ...).
    label_check: bool = False
    judge_faithfulness: bool = False  # `faithful` decided by `judge` (default: the run's teacher), not lexically
    judge: TeacherSpec | None = None
    skip_checks: list[str] = Field(default_factory=list)
    # Conversations: the teacher that plays the user (default: the task's `conversation.user_teacher`, else
    # `teacher`) and its server (default: `teacher_options.base_url` when it is the same provider).
    user_teacher: TeacherSpec | None = None
    user_base_url: str | None = None
    # Where the items run: this process, or actors on a Ray cluster (RAY_ADDRESS, else one started on this
    # machine), each with its own teacher: one a CPU unless `ray_workers` says. The entry point that reads
    # this hands the runner the executor it names (distill/executors).
    executor: Literal["local", "ray"] = "local"
    ray_workers: int | None = Field(None, gt=0)
    ray_gpus_per_worker: float | None = Field(None, gt=0)
    # A folder of the user's documents: each leaf's questions are asked about the passages attached to it
    # (docs/documents.md#generating-from-your-documents), and each example records its passage's provenance.
    documents: Path | None = None

    @field_validator("teacher_options")
    @classmethod
    def _options_the_teacher_reads(cls, options: TeacherOptions, info: ValidationInfo) -> TeacherOptions:
        return TeacherOptions.for_teacher(info.data.get("teacher") or TeacherSpec.parse("local"), options)


class GenerateOptions(GenerateSettings):
    """One run: the settings, what to generate over, and where."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    taxonomy: Path | Taxonomy  # a taxonomy file, or one built in Python (its seed paths from the current folder)
    out: Path | None = None
    force: bool = False  # write into a non-empty `out` distill did not make, beside what is there
    progress: bool = True


def _load_taxonomy(options: GenerateOptions, code: bool) -> LoadedTaxonomy:
    """`code`: import the task's Python (its custom checks, its models): a run does, a dry run does not."""
    loaded = load_taxonomy(options.taxonomy, code=code)
    if options.documents is not None:
        loaded = with_passages(loaded, options.documents, warn=lambda line: print(f"warning: {line}", file=sys.stderr),
                               questions=lambda source: len(load_heldout(source)))
    loaded = with_knowledge(loaded, warn=lambda line: print(f"warning: {line}", file=sys.stderr))  # InstructLab's
    return with_per_leaf(loaded, options.per_leaf) if options.per_leaf else loaded


def default_out(loaded: LoadedTaxonomy) -> Path:
    return Path("runs") / loaded.name


class ItemExecutor(Protocol):
    """Runs a run's items somewhere other than this process (`distill.executors.generation_executor`)."""

    def open(self, store: RunStore, loaded: LoadedTaxonomy, options: GenerateOptions,
             progress: GenerationProgress) -> ItemRun: ...


class ItemRun(Protocol):
    """One run's items under way elsewhere: `run` may be called more than once (the pre-flight sample, then the
    rest); each answer and outcome is in the store when it returns."""

    def run(self, items: list[PlanItem]) -> None: ...

    def close(self) -> None: ...


@dataclass
class PreparedRun:
    """A generation checked and planned, before anything is written or sent."""

    options: GenerateOptions
    loaded: LoadedTaxonomy
    plan: list[PlanItem]
    api: bool  # an HTTP API teacher built here (not one handed in): cache, preflight and budget apply
    teacher_factory: Callable[[], Teacher] | None = None
    executor: ItemExecutor | None = None  # None: the items run in this process


def generate(options: GenerateOptions, teacher_factory: Callable[[], Teacher] | None = None,
             executor: ItemExecutor | None = None) -> RunReport:
    """Run (or resume) generation and write the run directory (`distill generate`, `distill.generate()`):
    the folder, `options.out` or runs/<taxonomy name>, is claimed once everything is checked. Returns the
    report the CLI prints.

    The items run in this process, or with `executor` (the one `options.executor` names, which the entry
    point chose: `distill.executors.generation_executor`)."""
    job = _prepare(options, teacher_factory, executor)
    run_dir = RunDir.claim(options.out or default_out(job.loaded), force=options.force)
    return _run(run_dir, job)


def run(run_dir: RunDir, options: GenerateOptions, executor: ItemExecutor | None = None,
        prepared: PreparedRun | None = None) -> RunReport:
    """The generation stage in a run folder already claimed (`distill run` claims it for its whole job):
    every item asked (here, or with `executor`), every answer in run.db, then the run's files rebuilt from it
    (`finish_run`). `prepared`: what `prepare` checked of these options, so nothing is read twice."""
    return _run(run_dir, prepared or _prepare(options, None, executor))


def prepare(options: GenerateOptions, executor: ItemExecutor | None = None) -> PreparedRun:
    """Every input of the generation checked (taxonomy, seeds, documents, held-out sets, templates) before
    a run folder is claimed, so a mistake in them leaves no folder behind; pass the result to `run`."""
    return _prepare(options, None, executor)


def _prepare(options: GenerateOptions, teacher_factory: Callable[[], Teacher] | None,
             executor: ItemExecutor | None) -> PreparedRun:
    """Everything a run reads (taxonomy, seeds, held-out sets, prompt templates, the response cache) checked
    before the run folder is touched or the first teacher call."""
    check_flags(options)
    if options.executor == "ray" and teacher_factory is not None:
        raise DistillError("executor='ray' builds a teacher on every worker from the spec: pass teacher=SPEC, "
                           "not a teacher object")
    if (executor is None) != (options.executor == "local"):
        raise DistillError(f"executor={options.executor!r} runs with the executor it names: call distill.generate(), "
                           "or pass executor=distill.executors.generation_executor(options.executor)")
    loaded = _load_taxonomy(options, code=True)
    plan = build_plan(loaded, seed=options.seed, limit=options.limit)
    check_inputs(loaded, plan)
    _check_curate_options(options, loaded)
    if user_teacher_spec(options, loaded) is not None and options.executor == "ray":
        raise DistillError("a user teacher (--user-teacher, conversation.user_teacher) runs with --executor local "
                           "only for now; the Ray workers build the run's teacher alone")
    api = options.teacher.api and teacher_factory is None
    if api and options.cache:  # checked now: the cache is opened only once the teacher is built
        writable_folder(options.cache_dir or default_cache_dir(), "--cache-dir")
    return PreparedRun(options, loaded, plan, api, teacher_factory, executor)


def _run(run_dir: RunDir, job: PreparedRun) -> RunReport:
    """One run at a time holds the directory."""
    try:
        with run_dir.lock(), run_dir.store_errors():
            return _generate_locked(job.options, job.loaded, job.plan, run_dir, job.api, job.teacher_factory,
                                    job.executor)
    finally:
        job.loaded.task.close()  # a conversation's tool process, started when its tools were checked


def _generate_locked(options: GenerateOptions, loaded: LoadedTaxonomy, plan: list[PlanItem], run_dir: RunDir,
                     api: bool, teacher_factory: Callable[[], Teacher] | None,
                     executor: ItemExecutor | None) -> RunReport:
    store = run_dir.open_store()
    try:
        plan += store.regenerated_plan_items()  # a leaf asked again after review stays in the run
        plan += store.improve_plan_items()  # and so do the items `distill improve` added for its rounds
        _check_same_taxonomy(store, loaded, run_dir.root)
        store.set_info(taxonomy=loaded.name, taxonomy_file=str(loaded.file), seed=options.seed,
                       teacher=options.teacher.text, task=loaded.task.name)
        write_snapshot(loaded, run_dir)  # what review and export show of the taxonomy: they never load it again
        if loaded.documents is not None:  # a resumed run without --documents keeps the record it has
            run_dir.write_documents(loaded.documents)
        store.add_plan(plan)
        todo = _todo(store, plan, options.retry_failed)
        budget = None
        if todo and executor is not None:
            progress = GenerationProgress(enabled=options.progress)
            try:
                _generate_elsewhere(executor, store, loaded, todo, options, progress, run_preflight=api
                                    and options.preflight and not store.info().get("preflight_ok"))
            finally:
                progress.close()
        elif todo:
            progress = GenerationProgress(enabled=options.progress)
            teacher = progress.starting(options.teacher, lambda: _handed_in(teacher_factory, store) if teacher_factory
                                        else _make_teacher(options.teacher, options, store=store))
            user_teacher = _user_teacher(options, loaded, store)
            try:
                if teacher.stream_tokens(progress.stream_tokens):  # in-process teachers count tokens as they decode
                    progress.advise_once(partial(switch_hint.advice, options.teacher))
                budget = _budget(store, teacher, options)
                with _fewer_gc_passes():
                    asyncio.run(_generate_all(store, loaded, todo, teacher, options, budget, progress,
                                              run_preflight=api and options.preflight and not store.info().get("preflight_ok"),
                                              user_teacher=user_teacher))
            finally:
                progress.close()
                if teacher_factory is None:  # a teacher handed in stays the caller's to close
                    teacher.close()
                if user_teacher is not None:
                    user_teacher.close()
        with stage_progress(enabled=options.progress) as curate_progress:
            report = finish_run(store, loaded, plan, run_dir, curate=options.curate,
                                curate_settings=_curate_settings(options), judge=_judge(store, options),
                                progress=curate_progress)
        if budget is not None and budget.stopped:
            raise budget.error(sum(s == PENDING for s in store.statuses().values()))
        _fail_when_items_failed(store, report)
        return report
    except KeyboardInterrupt:
        # Everything answered is already committed; export what there is so the files match run.db.
        finish_run(store, loaded, plan, run_dir, curate=False)
        raise
    finally:
        store.close()


def _fail_when_items_failed(store: RunStore, report: RunReport) -> None:
    """A run that kept nothing because its items failed, or whose items failed because the teacher could not
    be reached, could not finish (exit 1), whatever it exported: the line says why and names --retry-failed.
    Items one request at a time fails (a refusal, a bad request) leave a finished run with them counted."""
    counts = report.stats["counts"]
    if not counts["failed"]:
        return
    scope = {item_id for item_id, status in store.statuses().items() if status == FAILED}
    details = Counter(r.detail for r in store.latest_generation_rejects(scope))
    away = Counter({detail: n for detail, n in details.items() if unreachable(detail)})
    if counts["kept"] and not away:
        return
    example = f"; e.g. {(away or details).most_common(1)[0][0]}" if details else ""
    because = " because the teacher stopped answering" if away else ""
    if not counts["kept"]:
        raise RunFailed(f"nothing was kept: {counts['failed']} of {counts['planned']} items failed{because}{example}. "
                        "Fix the cause (teacher, base URL, key, server), then run again with --retry-failed; the "
                        f"exports in {report.out} show what there is")
    raise RunFailed(f"{counts['failed']} of {counts['planned']} items failed{because}{example}. Once it answers "
                    "again, run the same command with --retry-failed to ask for those items again; the "
                    f"{counts['kept']} kept so far are in {report.files['dataset']}")


def _make_teacher(spec: TeacherSpec, options: GenerateOptions, store: RunStore | None = None,
                  online: bool = False) -> Teacher:
    """A teacher from its spec, built by the one builder: an API teacher answers from the shared response
    cache first; `online`: never a provider batch job."""
    cache_dir = (options.cache_dir or default_cache_dir()) if options.cache else None
    return build_teacher(spec.text, options.teacher_options, cache_dir=cache_dir, store=store, online=online)


def user_teacher_spec(options: GenerateOptions, loaded: LoadedTaxonomy) -> TeacherSpec | None:
    """The teacher that plays a conversation's user when it is not the run's teacher: --user-teacher, else the
    task's `conversation.user_teacher`; None for the run's teacher (and for tasks that are not conversations)."""
    conversation = loaded.task.spec.conversation
    if conversation is None:
        if options.user_teacher is not None or options.user_base_url is not None:
            raise DistillError(f"--user-teacher and --user-base-url are for conversation tasks; {loaded.name!r} is "
                               f"task {loaded.task.name!r}")
        return None
    spec = options.user_teacher or (TeacherSpec.parse(conversation.user_teacher) if conversation.user_teacher
                                    else None)
    if spec is None and options.user_base_url is not None:
        raise DistillError("--user-base-url goes with a user teacher: give --user-teacher SPEC")
    return spec


def _user_teacher(options: GenerateOptions, loaded: LoadedTaxonomy, store: RunStore) -> Teacher | None:
    """The user teacher, built like the run's teacher: the run's settings, its own server where given."""
    spec = user_teacher_spec(options, loaded)
    if spec is None:
        return None
    settings = options.teacher_options
    if options.user_base_url is not None:
        settings = settings.model_copy(update={"base_url": options.user_base_url})
    elif spec.kind != options.teacher.kind:  # another provider's server would not understand it
        settings = settings.model_copy(update={"base_url": None})
    return build_teacher(spec.text, TeacherOptions.for_teacher(spec, settings),
                         cache_dir=(options.cache_dir or default_cache_dir()) if options.cache else None,
                         store=store)


def _check_curate_options(options: GenerateOptions, loaded: LoadedTaxonomy) -> None:
    """Mistakes in the curation options fail before any teacher call, not after the whole run."""
    if options.label_check and not loaded.taxonomy.labels:
        raise DistillError(f"--label-check is for classification taxonomies; {loaded.name!r} is task "
                           f"{loaded.task.name!r} (--judge SPEC checks every task's topics)")
    if unknown := unknown_checks(options.skip_checks):
        raise DistillError(unknown)
    if options.judge:
        options.judge.check()


def _curate_settings(options: GenerateOptions) -> dict:
    return {"label_check": options.label_check, "topic_judge": options.judge is not None,
            "faithful_judge": options.judge_faithfulness,
            "skip_checks": list(options.skip_checks)}


def _judge(store: RunStore, options: GenerateOptions):
    """The teacher of the judged checks, its calls recorded in run.db like generation's; None when off."""
    if not options.curate or not (options.label_check or options.judge or options.judge_faithfulness):
        return None
    spec = options.judge or options.teacher
    # Verdicts go out online, one request each: never as a provider batch job.
    return Judge(spec.text, lambda: _make_teacher(spec, options, online=True), store)


@contextmanager
def _fewer_gc_passes():
    """Python's cyclic GC, tuned down while the event loop runs.

    At 256 requests in flight each item's objects outlive many young-generation passes, and every
    full pass rescans what start-up loaded (~200k objects: the SDKs, pydantic models): GC took
    ~0.25 ms of CPU a request. Start-up is frozen out of the scans and the young generation is
    collected every 20,000 allocations instead of 700: ~0.02 ms. Both are restored afterwards.
    """
    threshold = gc.get_threshold()
    # A caller who froze objects of their own keeps them frozen: we neither freeze nor unfreeze then.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(20_000, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if freeze:
            gc.unfreeze()


def estimate_run(options: GenerateOptions) -> Estimate:
    """`--dry-run`: what the run would send (items not yet done, their calls, tokens, cost); sends nothing."""
    check_flags(options)
    loaded = _load_taxonomy(options, code=False)
    run_dir = RunDir(options.out or default_out(loaded), "--out")
    plan = build_plan(loaded, seed=options.seed, limit=options.limit)
    check_inputs(loaded, plan)
    todo = plan
    if run_dir.run_db.exists():  # a resumed run only pays for what is left
        with run_dir.store_errors():
            store = run_dir.open_store()
            try:
                todo = _todo(store, plan, options.retry_failed)
            finally:
                store.close()
    teacher = options.teacher_options
    prices = PriceTable((teacher.api_config or {}).get("prices"))
    return asyncio.run(estimate_items(loaded, todo, options.teacher, prices, batch=bool(teacher.batch)))


def check_flags(options: GenerateOptions) -> None:
    """Refuse settings that would be ignored without a word: API settings for an in-process teacher and
    the like. A user who passed one expected it to do something."""
    api = options.teacher.api
    teacher = options.teacher_options
    api_only = {"--base-url": teacher.base_url, "--concurrency": teacher.concurrency, "--timeout": teacher.timeout_s,
                "--max-retries": teacher.max_retries, "--rpm": teacher.rpm, "--tpm": teacher.tpm,
                "--batch": teacher.batch or None, "--sender-process": teacher.sender_process,
                "--api-config": teacher.api_config or None, "--budget-usd": options.budget_usd,
                "--cache-dir": options.cache_dir, "--no-cache": None if options.cache else True,
                "--no-preflight": None if options.preflight else True}
    given = [flag for flag, value in api_only.items() if value is not None]
    if not api and given:
        raise DistillError(f"{', '.join(given)}: only for API teachers (openai:, anthropic:); the teacher "
                           f"{options.teacher.text!r} runs in this process, costs nothing and caches nothing: drop "
                           f"{'them' if len(given) > 1 else 'it'}")
    if api and teacher.batch_size is not None and not teacher.batch:
        raise DistillError("--batch-size: only for in-process teachers and --batch jobs; for API requests in flight "
                           "use --concurrency")
    if options.executor == "ray":
        local_only = {"--batch": teacher.batch or None, "--budget-usd": options.budget_usd,
                      "--sender-process": teacher.sender_process or None}
        if given := [flag for flag, value in local_only.items() if value is not None]:
            raise DistillError(f"{', '.join(given)}: not with --executor ray yet (each worker sends its own "
                               "requests); use --executor local")
    elif options.ray_workers or options.ray_gpus_per_worker:
        raise DistillError("--ray-workers and --ray-gpus-per-worker are for --executor ray")
    if teacher.batch and teacher.sender_process:
        raise DistillError("--sender-process: not with --batch (batch jobs are sent from the run itself)")


def _handed_in(teacher_factory: Callable[[], Teacher], store: RunStore) -> Teacher:
    teacher = teacher_factory()
    if not isinstance(teacher, Teacher):
        raise TypeError(f"teacher_factory made a {type(teacher).__name__}, not a distill.teachers.base.Teacher")
    teacher.attach_store(store)
    return teacher


def _check_same_taxonomy(store: RunStore, loaded: LoadedTaxonomy, out: Path) -> None:
    info = store.info()
    if info.get("taxonomy") not in (None, loaded.name):
        raise DistillError(
            f"{out} holds a run of taxonomy {info['taxonomy']!r}, not {loaded.name!r}; choose another --out"
        )


def _budget(store: RunStore, teacher: Teacher, options: GenerateOptions) -> Budget | None:
    if options.budget_usd is None:
        return None
    if teacher.price_request(GenerationRequest(key="probe", messages=[])) is None:
        raise DistillError(f"--budget-usd needs a price for {options.teacher.text!r}: add it under prices: in --api-config "
                           "(USD per million input and output tokens)")
    return Budget(options.budget_usd, spent_usd=store.usage_totals()["cost_usd"])


def _split_preflight(loaded: LoadedTaxonomy, items: list[PlanItem]) -> tuple[list[PlanItem], list[PlanItem]]:
    """The pre-flight sample and the items after it; no sample when it would be the whole run."""
    sample = preflight.choose_sample(items, preflight.sample_size(len(loaded.leaves)))
    if len(sample) >= len(items):
        return [], items
    chosen = {item.id for item in sample}
    return sample, [item for item in items if item.id not in chosen]


def _pass_preflight(store: RunStore, sample: list[PlanItem]) -> None:
    """Stop the run (DistillError) when most of the sample failed; else remember that it passed."""
    preflight.check(store, sample)
    store.set_info(preflight_ok=True)


async def _generate_all(store: RunStore, loaded: LoadedTaxonomy, items: list[PlanItem], teacher: Teacher,
                        options: GenerateOptions, budget: Budget | None, progress: GenerationProgress,
                        run_preflight: bool, user_teacher: Teacher | None = None) -> None:
    progress.start(len(items))
    try:
        sample, items = _split_preflight(loaded, items) if run_preflight else ([], items)
        if sample:
            await _generate_items(store, loaded, sample, teacher, budget, progress, user_teacher)
            if budget is None or not budget.stopped:
                _pass_preflight(store, sample)
        await _generate_items(store, loaded, items, teacher, budget, progress, user_teacher)
    finally:
        await teacher.aclose()  # async HTTP clients close inside the loop that owns them
        if user_teacher is not None:
            await user_teacher.aclose()


def _generate_elsewhere(executor: ItemExecutor, store: RunStore, loaded: LoadedTaxonomy, items: list[PlanItem],
                        options: GenerateOptions, progress: GenerationProgress, run_preflight: bool) -> None:
    """`_generate_all` with another executor (Ray's workers): the same preflight, the same items."""
    run = progress.starting(options.teacher, lambda: executor.open(store, loaded, options, progress))
    try:
        progress.start(len(items))
        sample, items = _split_preflight(loaded, items) if run_preflight else ([], items)
        if sample:
            run.run(sample)
            _pass_preflight(store, sample)
        run.run(items)
    finally:
        run.close()


def _todo(store: RunStore, plan: list[PlanItem], retry_failed: bool) -> list[PlanItem]:
    statuses = store.statuses()
    wanted = {PENDING, FAILED} if retry_failed else {PENDING}
    return [item for item in plan if statuses.get(item.id, PENDING) in wanted]


async def _generate_items(store: RunStore, loaded: LoadedTaxonomy, items: list[PlanItem], teacher: Teacher,
                          budget: Budget | None, progress: GenerationProgress,
                          user_teacher: Teacher | None = None) -> None:
    # A leaf's items side by side: they share prompt beginnings (system and seed turns), which the
    # in-process teacher computes once while they are in its prefix cache (providers cache them too).
    items = sorted(items, key=lambda item: item.node_path)
    # Enough items in flight to fill every concurrent batch twice over, so the teacher never waits on us.
    in_flight = asyncio.Semaphore(max(2, teacher.batch_size * teacher.concurrency * 2))
    async with AsyncExitStack() as stack:
        main_dispatcher = await stack.enter_async_context(Dispatcher(teacher))
        user_dispatcher = await stack.enter_async_context(Dispatcher(user_teacher)) if user_teacher else None

        async def call(item: PlanItem, rank: int, hold: ItemHold | None, step: str,
                       request: GenerationRequest) -> GenerationResult:
            # A conversation's user turns go to the user teacher when there is one (`user_teacher_spec`).
            asked, dispatcher = (user_teacher, user_dispatcher) if step == "user" and user_teacher is not None \
                and user_dispatcher is not None else (teacher, main_dispatcher)
            fingerprint = request.fingerprint(asked.spec)
            stored = store.find_call(fingerprint)
            if stored is not None:  # answered in an earlier (maybe killed) run: never pay twice
                return stored.model_copy(update={"key": request.key})
            result = None
            # (A budget is refused for a teacher without a price: `_budget`.)
            reserved = budget.reserve(cast(float, asked.price_request(request) or 0.0), hold, step) \
                if budget is not None else 0.0
            try:
                # An item's place in the run is its priority: its later steps go ahead of new items' first ones.
                result = await dispatcher.submit(request, priority=rank)
            finally:
                if budget is not None:
                    # Cached answers cost nothing new; a failed call is not billed.
                    budget.settle(reserved, None if result is None or result.cached else result.usage.cost_usd)
            store.add_call(item.id, step, asked.spec, request, fingerprint, result)
            progress.add_tokens(result.usage.prompt_tokens, result.usage.completion_tokens)
            if not result.ok:
                raise TeacherFailed(step, result.error or "no text")
            return result

        async def process(rank: int, item: PlanItem) -> None:
            async with in_flight:
                hold = None
                try:
                    hold = await budget.start_item() if budget is not None else None
                    outcome = await run_item(loaded, item, teacher.spec,
                                             lambda step, request: call(item, rank, hold, step, request))
                except BudgetStop:
                    return  # never sent: the item stays pending for a run with more budget
                finally:
                    if budget is not None and hold is not None:
                        await budget.end_item(hold)
                save_outcome(store, outcome)
                progress.advance(kept=outcome.example is not None, failed=outcome.failed)

        await asyncio.gather(*(process(rank, item) for rank, item in enumerate(items)))
