"""`--batch`: a provider's batch API behind the teacher protocol, billed at about half price.

The dispatcher gathers a round of requests (`collect_s`) into one `generate` call, which becomes one
job: submitted through the official SDK, polled every `poll_s`, then collected. A request's
custom_id is its fingerprint (64 hex characters, within Anthropic's limit), so a re-run after a kill
that asks for the same request finds the job in run.db and collects it instead of submitting (and
paying) again. Requests that errored or expired are resubmitted, `attempts` times in all; then they
fail with their last error. Each answer goes through the online teacher's own parser, so rejects
(length, refusal, filter, empty) and prices (batch rates) are the same as online.

Creating a job is not idempotent, so it happens at most once per submission:
- the intent is committed to run.db first (state 'submitting', a uuid4 submission id, the
  custom_ids), and the provider's job id is added the moment it is known;
- a create whose reply may have been lost after the provider accepted it (timeout, dropped
  connection, 5xx) is not retried blindly: the job is looked up first and created again only when
  absent. A clear refusal (4xx) made no job; a 429 is retried under the limits as any request;
- a run that finds a row still 'submitting' (killed mid-create) looks the job up the same way.
How a lookup finds the job is the provider's (`BatchApi.find`: by a tag in the job's metadata for
OpenAI, by creation time and size for Anthropic, whose batches carry none). Creates (and these
lookups) run one at a time, so a lookup never meets a job of ours not yet on record.

A provider with several structured-output modes (`BatchApi.modes`: OpenAI's json_schema, json_object,
the schema in the prompt) may refuse one in a job's lines; its adapter steps the online teacher's mode
forward, and those requests go out again in the next mode without using up one of their `attempts`:
they were never run. Each provider's adapter lives with its provider (`teachers/http/<provider>/batch.py`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from distill.teachers.base import GenerationRequest, GenerationResult, WrappedTeacher
from distill.teachers.http.base import ApiTeacher
from distill.teachers.http.limits import CallFailed, classify, with_retries

T = TypeVar("T")
TRANSFER_S = 600.0  # uploading or downloading a large job takes longer than one answer does
CLOCK_SKEW_S = 120.0  # our clock against the provider's, when a lookup compares creation times
LIST_PAGE = 100  # jobs per page when looking one up (OpenAI's most)
LOOKUP_WAITS = (2, 8, 30)  # after a lost create reply, lookups this many retry bases apart


@dataclass
class BatchSettings:
    poll_s: float = 30.0  # between status checks of an open job
    collect_s: float = 2.0  # how long the dispatcher gathers requests into one job
    attempts: int = 3  # submissions of one request in all (errored / expired ones are resubmitted)
    size: int = 10_000  # requests per job at most (OpenAI takes 50,000, Anthropic 100,000)

    @classmethod
    def from_options(cls, options: Any, provider: str) -> BatchSettings:
        """From options (`--batch-size`, `batch_poll_s` ...) or the provider's part of `--api-config`."""
        config = (getattr(options, "api_config", None) or {}).get(provider) or {}

        def pick(name: str, default: Any) -> Any:
            value = getattr(options, name, None)
            value = config.get(name) if value is None else value
            return default if value is None else value

        return cls(poll_s=float(pick("batch_poll_s", cls.poll_s)),
                   collect_s=float(pick("batch_collect_s", cls.collect_s)),
                   attempts=int(pick("batch_attempts", cls.attempts)), size=int(pick("batch_size", cls.size)))


@dataclass
class Outcome:
    """What a job said about one request: an answer, or an error (and whether resubmitting may help)."""

    result: GenerationResult | None = None
    error: str | None = None
    retry: bool = False
    free: bool = False  # resubmitting it uses up none of its attempts: it was never run (see _settle)


@dataclass
class JobState:
    status: str  # the provider's word for it
    ended: bool
    info: Any = None  # the provider's job object, for collecting
    error: str | None = None  # why the whole job failed, when it did


@dataclass(eq=False)
class Job:
    custom_ids: set[str]
    job_id: str | None = None  # the provider's id, once accepted
    row: int | None = None  # its row in run.db's batch_jobs
    submission: str | None = None  # our id for its creation (uuid4 hex), on record before the create call
    first: float = 0.0  # when its first create attempt started (time.time()): a lookup looks back to here
    at: float = 0.0  # when its last create attempt started: a lookup looks forward to its timeout
    mode: int | None = None  # the json mode its OpenAI bodies were built with (None: a job from before run.db kept it)
    task: asyncio.Task | None = field(default=None, repr=False)  # submit/poll/collect -> {custom_id: Outcome}


@dataclass
class Submission:
    """What a lookup knows of one create: our id for it, when its first and last attempts started, its size.

    Any attempt may have made the job (a 429 between them does not say the earlier one did not), so the
    window runs from the first attempt to the last one's timeout."""

    id: str
    first: float
    last: float
    count: int


class NotCreated(CallFailed):
    """The provider refused the create outright (a 4xx, or the upload failed): it holds no job for it."""


class LostReply(Exception):
    """A create the provider may have accepted. with_retries does not retry it (not a retryable kind)."""


def maybe_created(exc: BaseException) -> bool:
    """Could the provider hold the job although the create failed? Only a clear refusal says no: a 4xx,
    or 529 (Anthropic's overloaded, refused like a 429)."""
    status = getattr(exc, "status_code", None)
    return status is None or (status >= 500 and status != 529)


class BatchApi:
    """One provider's batch wire: request lines, create, find, poll, collect. Wraps that provider's online teacher."""

    modes = 1  # structured-output modes `mode` may step through (see the module docstring)

    def __init__(self, teacher: ApiTeacher):
        self.teacher = teacher

    async def call(self, send: Callable[[], Awaitable[T]]) -> T:
        """One SDK call under the teacher's limits and retries; raises CallFailed (its message scrubbed)."""
        t = self.teacher
        return await with_retries(send, limiter=t.limiter, gate=t.gate, policy=t.policy, scrub=t.scrub)

    def mode(self) -> int:
        """The structured-output mode `body` builds with now (only OpenAI has more than one)."""
        return 0

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        raise NotImplementedError

    async def prepare(self, bodies: dict[str, dict[str, Any]], submission: str) -> Any:
        """What `create` sends. Retried as any call: only the create itself costs money."""
        raise NotImplementedError

    async def create(self, prepared: Any, submission: str) -> JobState:
        """One create call, tagged with `submission` where the provider allows; never retried here (see _create)."""
        raise NotImplementedError

    async def find(self, submission: Submission, recorded: set[str]) -> JobState | None:
        """The job this submission created, if the provider holds one; `recorded` ids are other submissions'."""
        raise NotImplementedError

    async def poll(self, job_id: str) -> JobState:
        raise NotImplementedError

    async def collect(self, state: JobState, mode: int | None) -> dict[str, Outcome]:
        raise NotImplementedError


class BatchTeacher(WrappedTeacher):
    """The teacher protocol over a provider's batch API; jobs are recorded in run.db (`attach_store`).

    Spec, cache namespace, prices and concurrency (jobs in flight at once) are the online teacher's."""

    def __init__(self, api: BatchApi, settings: BatchSettings):
        online = api.teacher
        super().__init__(online)
        online.batch = True  # batch prices for budget reservations and for every answer
        # (not `self.api`: that is Teacher's flag for an HTTP API)
        self.batch_api, self.online, self.settings = api, online, settings
        self.store = None
        self.latest: dict[str, Job] = {}  # custom_id -> the last job that carried it
        self.recorded: set[str] = set()  # provider job ids on record: never adopted by another submission
        self.creating = asyncio.Lock()  # one create (or lookup) at a time: see the module docstring

    def attach_store(self, store) -> None:
        """Know every job this run submitted before (a killed run's open ones included)."""
        self.store = store
        self.recorded = store.batch_job_ids()
        for row in store.batch_jobs(self.cache_namespace):
            if row["job_id"] is None and row["finished_at"] is not None:
                continue  # a submission that is known never to have become a job
            job = Job(set(row["custom_ids"]), row["job_id"], row["row"], row["submission"], row["submitted_at"],
                      row["attempted_at"] or row["submitted_at"], row["json_mode"])
            for custom_id in job.custom_ids:
                self.latest[custom_id] = job

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        return self.settings.size

    @property
    def collect_s(self) -> float:  # type: ignore[override]
        return self.settings.collect_s

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        ids = [request.fingerprint(self.spec) for request in requests]
        outcomes = await self._settle(dict(zip(ids, requests)))  # one line per custom_id: ids must be unique
        results = []
        for request, custom_id in zip(requests, ids):
            outcome = outcomes[custom_id]
            if outcome.result is not None:
                results.append(outcome.result.model_copy(update={"key": request.key}))
            else:
                error = self.online.scrub(outcome.error or "no answer")[:500]
                results.append(GenerationResult(key=request.key, error=error))
        return results

    async def _settle(self, wanted: dict[str, GenerationRequest]) -> dict[str, Outcome]:
        """Each request's final outcome: from a job that already carries it, else from a new one; resubmit
        what errored or expired until its attempts run out. A free resubmission (a refused output format, a
        job never created) uses up none: nothing was run, so the request has not had its chance."""
        attempts = max(1, self.settings.attempts)
        final: dict[str, Outcome] = {}
        tried: dict[str, Job] = {}  # the job whose answer for a custom_id was last read
        spent: Counter[str] = Counter()  # attempts used, per custom_id
        pending = list(wanted)
        # Resubmissions that cost no attempt (a format step each, one for a job never created) bound the loop.
        for _ in range(attempts + self.batch_api.modes + 1):
            groups: dict[Job, list[str]] = {}
            fresh = [cid for cid in pending if self.latest.get(cid) in (None, tried.get(cid))]
            for cid in pending:
                if cid not in fresh:
                    groups.setdefault(self.latest[cid], []).append(cid)
            if fresh:
                groups[self._submit({cid: wanted[cid] for cid in fresh})] = fresh
            answers = await asyncio.gather(*(self._outcomes(job) for job in groups))
            pending = []
            for (job, cids), outcomes in zip(groups.items(), answers):
                for cid in cids:
                    outcome = outcomes[cid]
                    tried[cid], final[cid] = job, outcome
                    spent[cid] += not outcome.free
                    if outcome.retry and spent[cid] < attempts:
                        pending.append(cid)
            if not pending:
                break
        return final

    def _submit(self, requests: dict[str, GenerationRequest]) -> Job:
        job = Job(set(requests))
        for custom_id in requests:
            self.latest[custom_id] = job  # a twin request arriving meanwhile joins this job
        job.task = asyncio.create_task(self._run(job, requests))
        return job

    async def _outcomes(self, job: Job) -> dict[str, Outcome]:
        if job.task is None:  # a job from an earlier run: find and collect it, never submit it again
            job.task = asyncio.create_task(self._run(job, None))
        return await asyncio.shield(job.task)

    async def _run(self, job: Job, requests: dict[str, GenerationRequest] | None) -> dict[str, Outcome]:
        try:
            if job.job_id is None:
                if await self._place(job, requests) is None:  # an earlier run's create that made no job
                    self._record(job, "not_created", finished=True)
                    return {cid: Outcome(error="its batch job was never created", retry=True, free=True)
                            for cid in job.custom_ids}
            state = await self._poll(job)
            outcomes = await self.batch_api.collect(state, job.mode)
        except Exception as exc:  # the job's requests fail with the reason; the run goes on
            failed = exc if isinstance(exc, CallFailed) else \
                CallFailed(self.online.scrub(f"{type(exc).__name__}: {exc}")[:500])
            if job.job_id is None:
                # A refused create made no job: closed. Otherwise the provider may hold one we could not
                # find: the row stays 'submitting', so a later run looks for it again rather than creating it.
                refused = isinstance(failed, NotCreated)
                self._record(job, "refused" if refused else "submitting", finished=refused, error=failed.message)
                return {cid: Outcome(error=failed.message, retry=refused and failed.status == 404)
                        for cid in job.custom_ids}
            # A job the provider no longer knows (404) is resubmitted; otherwise it stays open in run.db
            # for a later run to collect, and its requests fail now with the reason.
            self._record(job, "unreachable" if failed.status == 404 else "collect_failed", error=failed.message)
            return {cid: Outcome(error=failed.message, retry=failed.status == 404) for cid in job.custom_ids}
        error = self.online.scrub(state.error) if state.error else None  # the provider's text may echo a key
        self._record(job, state.status, finished=True, error=error)
        unanswered = f"batch {job.job_id} ended {state.status} without answering this request"
        for cid in job.custom_ids:  # expired, cancelled or failed jobs leave some out: those are resubmitted
            outcomes.setdefault(cid, Outcome(error=f"{unanswered}: {error}" if error else unanswered,
                                             retry=True))
        return outcomes

    async def _place(self, job: Job, requests: dict[str, GenerationRequest] | None) -> JobState | None:
        """The provider's job for `job`, its id recorded: created now, or (requests None: an earlier run's
        submission) found. None when that earlier submission never became a job."""
        if requests is None:
            async with self.creating:
                state = await self.batch_api.find(self._submission(job), self.recorded)
        else:
            state = await self._create(job, requests)
        if state is not None:
            job.job_id = state.info.id
            self.recorded.add(job.job_id)
            if self.store is not None and job.row is not None:
                self.store.accept_batch_job(job.row, job.job_id, state.status)
        return state

    async def _create(self, job: Job, requests: dict[str, GenerationRequest]) -> JobState:
        """Create the job at most once: on record before the call; after a reply that may have been lost,
        looked up before any new attempt. Raises NotCreated when the provider refused it outright."""
        job.submission, job.mode, job.at = uuid.uuid4().hex, self.batch_api.mode(), time.time()
        job.first = job.at
        bodies = {cid: self.batch_api.body(request) for cid, request in requests.items()}
        if self.store is not None:
            job.row = self.store.begin_batch_job(self.cache_namespace, job.submission, requests, job.at, job.mode)
        try:
            prepared = await self.batch_api.prepare(bodies, job.submission)
        except CallFailed as failed:
            raise NotCreated(failed.message, failed.status) from None
        lost: list[str] = []  # why each attempt that may have made the job failed
        creates = self.online.policy.max_retries + 1
        async with self.creating:
            for _ in range(creates):
                before = len(lost)
                try:
                    return await self.batch_api.call(lambda: self._create_once(job, prepared, lost))
                except CallFailed as failed:
                    if len(lost) == before:  # refused now; but an earlier lost attempt may yet show up
                        raise (CallFailed if lost else NotCreated)(failed.message, failed.status) from None
                found = await self._look_for(job)
                if found is not None:
                    return found
        raise CallFailed(f"{lost[-1]}; the job was not found at the provider after {creates} tries: a later run "
                         f"looks for it again before creating it")

    async def _look_for(self, job: Job) -> JobState | None:
        """After a reply that may have been lost: a few lookups, spaced out (1, 4 and 15 s at the default
        0.5 s retry base), before anyone creates the job again. A provider may list a new job only a moment
        after making it, or still be making it when our timeout gave up on the reply."""
        for factor in LOOKUP_WAITS:
            await asyncio.sleep(factor * self.online.policy.base_s)
            found = await self.batch_api.find(self._submission(job), self.recorded)
            if found is not None:
                return found
        return None

    async def _create_once(self, job: Job, prepared: Any, lost: list[str]) -> JobState:
        job.at = time.time()
        if self.store is not None and job.row is not None:
            self.store.batch_create_attempt(job.row, job.at)  # committed first: a lookup's window starts here
        try:
            return await self.batch_api.create(prepared, job.submission or "")  # (set by _create)
        except Exception as exc:
            if not maybe_created(exc):
                raise  # refused: with_retries retries a 429 under the limits, gives up on the rest
            lost.append(self.online.scrub(classify(exc).message)[:500])
            raise LostReply() from None

    def _submission(self, job: Job) -> Submission:
        return Submission(job.submission or "", job.first or job.at, job.at, len(job.custom_ids))

    async def _poll(self, job: Job) -> JobState:
        job_id = cast(str, job.job_id)  # polled once placed: the provider accepted it
        status = None
        while True:
            state = await self.batch_api.poll(job_id)
            if state.ended:
                return state
            if state.status != status:
                status = state.status
                self._record(job, status)
            await asyncio.sleep(self.settings.poll_s)

    def _record(self, job: Job, status: str, finished: bool = False, error: str | None = None) -> None:
        if self.store is not None and job.row is not None:
            self.store.update_batch_job(job.row, status, finished=finished, error=error)


