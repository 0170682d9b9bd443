"""`--batch`: provider batch APIs (OpenAI Batch API, Anthropic Message Batches), billed at about half price.

The dispatcher gathers a round of requests (`collect_s`) into one `generate` call, which becomes one
job: submitted through the official SDK, its id written to run.db the moment the provider accepts
it, polled every `poll_s`, then collected. A request's custom_id is its fingerprint (64 hex
characters, within Anthropic's limit), so a re-run after a kill that asks for the same request finds
the job in run.db and collects it instead of submitting (and paying) again. Requests that errored
or expired are resubmitted, `attempts` times in all; then they fail with their last error. Each
answer goes through the online teacher's own parser, so rejects (length, refusal, filter, empty)
and prices (batch rates) are the same as online.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from distill.teachers.api_teacher import ApiTeacher
from distill.teachers.base import GenerationRequest, GenerationResult
from distill.teachers.limits import RETRYABLE_STATUS, CallFailed, with_retries

T = TypeVar("T")
TRANSFER_S = 600.0  # uploading or downloading a large job takes longer than one answer does


@dataclass
class BatchSettings:
    poll_s: float = 30.0  # between status checks of an open job
    collect_s: float = 2.0  # how long the dispatcher gathers requests into one job
    attempts: int = 3  # submissions of one request in all (errored / expired ones are resubmitted)
    size: int = 10_000  # requests per job at most (OpenAI takes 50,000, Anthropic 100,000)

    @classmethod
    def from_options(cls, options: Any, provider: str) -> BatchSettings:
        """From options (`--batch-size`, `batch_poll_s` ...) or the provider's part of `--api-config`."""
        extra = options.model_extra or {}
        config = (extra.get("api_config") or {}).get(provider) or {}

        def pick(name: str, default: Any) -> Any:
            value = getattr(options, name, None) if name == "batch_size" else extra.get(name)
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
    task: asyncio.Task | None = field(default=None, repr=False)  # submit/poll/collect -> {custom_id: Outcome}


class BatchApi:
    """One provider's batch wire: request lines, submit, poll, collect. Wraps that provider's online teacher."""

    def __init__(self, teacher: ApiTeacher):
        self.teacher = teacher

    async def call(self, send: Callable[[], Awaitable[T]]) -> T:
        """One SDK call under the teacher's limits and retries; raises CallFailed (its message scrubbed)."""
        t = self.teacher
        return await with_retries(send, limiter=t.limiter, gate=t.gate, policy=t.policy, scrub=t.scrub)

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        raise NotImplementedError

    async def submit(self, bodies: dict[str, dict[str, Any]]) -> JobState:
        """Send one job; returns its state with `info.id` the provider's job id."""
        raise NotImplementedError

    async def poll(self, job_id: str) -> JobState:
        raise NotImplementedError

    async def collect(self, state: JobState) -> dict[str, Outcome]:
        raise NotImplementedError


class OpenAIBatches(BatchApi):
    """OpenAI's Batch API: a JSONL file of /v1/chat/completions requests, results in output and error files."""

    ENDED = {"completed", "expired", "cancelled", "failed"}

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        # json_schema first, as online; the online fallbacks need a per-request reply, which a job has not.
        return {"method": "POST", "url": "/v1/chat/completions",
                "body": self.teacher.params(request, self.teacher.json_mode)}

    async def submit(self, bodies: dict[str, dict[str, Any]]) -> JobState:
        client = self.teacher.next_client()
        lines = "".join(json.dumps({"custom_id": custom_id, **body}, ensure_ascii=False) + "\n"
                        for custom_id, body in bodies.items()).encode()
        upload = await self.call(lambda: client.files.create(file=("distill-batch.jsonl", lines, "application/jsonl"),
                                                             purpose="batch", timeout=TRANSFER_S))
        batch = await self.call(lambda: client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                                              completion_window="24h", metadata={"source": "distill"}))
        return JobState(batch.status, batch.status in self.ENDED, batch)

    async def poll(self, job_id: str) -> JobState:
        client = self.teacher.next_client()
        batch = await self.call(lambda: client.batches.retrieve(job_id))
        errors = [f"{e.code}: {e.message}" for e in ((batch.errors.data if batch.errors else None) or [])]
        return JobState(batch.status, batch.status in self.ENDED, batch, "; ".join(errors) or None)

    async def collect(self, state: JobState) -> dict[str, Outcome]:
        client, batch, outcomes = self.teacher.next_client(), state.info, {}
        # Expired or cancelled jobs still deliver what they finished; what they did not is resubmitted.
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                content = await self.call(lambda: client.files.content(file_id, timeout=TRANSFER_S))
                for line in content.content.splitlines():
                    try:
                        row = json.loads(line)
                    except ValueError:
                        continue  # a line we cannot read leaves its request unanswered: it is resubmitted
                    if isinstance(row, dict):
                        outcomes[row.get("custom_id")] = self.outcome(row)
        return outcomes

    def outcome(self, row: dict[str, Any]) -> Outcome:
        error, response = row.get("error"), row.get("response") or {}
        if error:  # batch_expired, batch_cancelled, server errors: nothing was answered
            return Outcome(error=f"batch request {error.get('code')}: {error.get('message')}", retry=True)
        status, body = response.get("status_code"), response.get("body") or {}
        if status != 200:
            message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
            return Outcome(error=f"HTTP {status}: {message}", retry=status in RETRYABLE_STATUS)
        try:
            body["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            return Outcome(error="malformed response in the batch output", retry=True)
        return Outcome(result=self.teacher.result("", body))


class AnthropicBatches(BatchApi):
    """Anthropic's Message Batches: Messages API params per custom_id, results as JSONL when the batch ends."""

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        return self.teacher.params(request)

    async def submit(self, bodies: dict[str, dict[str, Any]]) -> JobState:
        client = self.teacher.next_client()
        requests = [{"custom_id": custom_id, "params": params} for custom_id, params in bodies.items()]
        batch = await self.call(lambda: client.messages.batches.create(requests=requests, timeout=TRANSFER_S))
        return JobState(batch.processing_status, batch.processing_status == "ended", batch)

    async def poll(self, job_id: str) -> JobState:
        client = self.teacher.next_client()
        batch = await self.call(lambda: client.messages.batches.retrieve(job_id))
        return JobState(batch.processing_status, batch.processing_status == "ended", batch)

    async def collect(self, state: JobState) -> dict[str, Outcome]:
        client = self.teacher.next_client()

        async def fetch() -> list[dict[str, Any]]:
            lines = await client.messages.batches.results(state.info.id, timeout=TRANSFER_S)
            return [line.to_dict() async for line in lines]

        return {row.get("custom_id"): self.outcome(row.get("result") or {}) for row in await self.call(fetch)}

    def outcome(self, result: dict[str, Any]) -> Outcome:
        kind = result.get("type")
        if kind == "succeeded":
            message = result.get("message")
            if not isinstance(message, dict) or "content" not in message:
                return Outcome(error="malformed message in the batch results", retry=True)
            return Outcome(result=self.teacher.result("", message))
        if kind == "errored":
            error = (result.get("error") or {}).get("error") or {}
            return Outcome(error=f"batch request errored: {error.get('type')}: {error.get('message')}",
                           retry=error.get("type") != "invalid_request_error")
        return Outcome(error=f"batch request {kind}", retry=True)  # expired, canceled: never processed


class BatchTeacher:
    """The teacher protocol over a provider's batch API; jobs are recorded in run.db (`attach_store`)."""

    def __init__(self, api: BatchApi, settings: BatchSettings):
        online = api.teacher
        online.batch = True  # batch prices for budget reservations and for every answer
        self.api, self.online, self.settings = api, online, settings
        self.spec, self.cache_namespace = online.spec, online.cache_namespace
        self.batch_size, self.collect_s = settings.size, settings.collect_s
        self.concurrency = online.concurrency  # jobs in flight at once
        self.store = None
        self.latest: dict[str, Job] = {}  # custom_id -> the last job that carried it

    def attach_store(self, store) -> None:
        """Know every job this run submitted before (a killed run's open ones included)."""
        self.store = store
        for row in store.batch_jobs(self.cache_namespace):
            job = Job(set(row["custom_ids"]), row["job_id"], row["row"])
            for custom_id in job.custom_ids:
                self.latest[custom_id] = job

    def price_request(self, request: GenerationRequest) -> float | None:
        return self.online.price_request(request)

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
        what errored or expired until the attempts run out."""
        final: dict[str, Outcome] = {}
        tried: dict[str, Job] = {}  # the job whose answer for a custom_id was last read
        pending = list(wanted)
        for _ in range(max(1, self.settings.attempts)):
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
                    tried[cid], final[cid] = job, outcomes[cid]
                    if final[cid].retry:
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
        if job.task is None:  # a job from an earlier run: collect it, never submit it again
            job.task = asyncio.create_task(self._run(job, None))
        return await asyncio.shield(job.task)

    async def _run(self, job: Job, requests: dict[str, GenerationRequest] | None) -> dict[str, Outcome]:
        try:
            if job.job_id is None:
                state = await self.api.submit({cid: self.api.body(r) for cid, r in requests.items()})
                job.job_id = state.info.id
                if self.store is not None:
                    job.row = self.store.add_batch_job(self.cache_namespace, job.job_id, requests, state.status)
            state = await self._poll(job)
            outcomes = await self.api.collect(state)
        except Exception as exc:  # the job's requests fail with the reason; the run goes on
            failed = exc if isinstance(exc, CallFailed) else \
                CallFailed(self.online.scrub(f"{type(exc).__name__}: {exc}")[:500])
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

    async def _poll(self, job: Job) -> JobState:
        status = None
        while True:
            state = await self.api.poll(job.job_id)
            if state.ended:
                return state
            if state.status != status:
                status = state.status
                self._record(job, status)
            await asyncio.sleep(self.settings.poll_s)

    def _record(self, job: Job, status: str, finished: bool = False, error: str | None = None) -> None:
        if self.store is not None and job.row is not None:
            self.store.update_batch_job(job.row, status, finished=finished, error=error)

    async def aclose(self) -> None:
        await self.online.aclose()

    def close(self) -> None:
        self.online.close()
