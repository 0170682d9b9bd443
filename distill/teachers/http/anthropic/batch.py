"""Anthropic's Message Batches (`--batch`) for `anthropic:` teachers: the provider's side of `wrappers/batch.py`.

A job is a list of Messages API params, one per custom_id; results come back as JSONL once the batch
has ended. Message Batches carry no metadata, so a lookup after a lost create reply adopts the one batch
created around the attempt's time (+-CLOCK_SKEW_S, up to the create's timeout after it) with the same
number of requests and an id not in run.db. Another client making a batch of that size in that window
makes it ambiguous; then the requests fail saying which batches to check (cancelled ones are never
adopted), and nothing is guessed.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from distill.teachers.base import GenerationRequest
from distill.teachers.http.limits import CallFailed
from distill.teachers.wrappers.batch import CLOCK_SKEW_S, LIST_PAGE, TRANSFER_S, BatchApi, JobState, Outcome, Submission


class AnthropicBatches(BatchApi):
    """Anthropic's Message Batches: Messages API params per custom_id, results as JSONL when the batch ends."""

    teacher: Any  # an AnthropicTeacher (teacher.py imports this module, so it is not named here)

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        return self.teacher.params(request)

    async def prepare(self, bodies: dict[str, dict[str, Any]], submission: str) -> list[dict[str, Any]]:
        return [{"custom_id": custom_id, "params": params} for custom_id, params in bodies.items()]

    async def create(self, requests: list[dict[str, Any]], submission: str) -> JobState:
        # Message Batches take no metadata: `submission` stays ours alone (see find).
        batch = await self.teacher.next_client().messages.batches.create(requests=requests, timeout=TRANSFER_S)
        return self.state(batch)

    async def find(self, submission: Submission, recorded: set[str]) -> JobState | None:
        # A create attempt that started at `at` made its batch before its timeout ran out, give or take skew.
        earliest, latest = submission.first - CLOCK_SKEW_S, submission.last + TRANSFER_S + CLOCK_SKEW_S
        client = self.teacher.next_client()
        matches: list[Any] = []
        page = await self.call(lambda: client.messages.batches.list(limit=LIST_PAGE))  # newest first
        while True:
            for batch in page.data:
                created = batch.created_at.timestamp()
                if created < earliest:
                    return self._one(matches, submission, earliest, latest)
                if created <= latest and batch.id not in recorded and batch.cancel_initiated_at is None \
                        and size(batch) == submission.count:
                    matches.append(batch)
            if not page.has_next_page():
                return self._one(matches, submission, earliest, latest)
            page = await self.call(page.get_next_page)

    def _one(self, matches: list[Any], submission: Submission, earliest: float, latest: float) -> JobState | None:
        if len(matches) > 1:  # another client's batch of the same size in the same minutes: do not guess
            window = " and ".join(datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
                                  for t in (earliest, latest))
            raise CallFailed(
                f"cannot tell which Anthropic batch, if any, this run created (its create got no reply): "
                f"{', '.join(b.id for b in matches)} each hold {submission.count} requests, were created between "
                f"{window} and are not in run.db; Message Batches carry no tag to tell them apart. Nothing was "
                f"submitted again: check those batches in the Console, cancel the ones that are not this run's "
                f"(cancelled batches are never adopted), then re-run with --retry-failed")
        return self.state(matches[0]) if matches else None

    async def poll(self, job_id: str) -> JobState:
        client = self.teacher.next_client()
        return self.state(await self.call(lambda: client.messages.batches.retrieve(job_id)))

    def state(self, batch: Any) -> JobState:
        return JobState(batch.processing_status, batch.processing_status == "ended", batch)

    async def collect(self, state: JobState, mode: int | None) -> dict[str, Outcome]:
        client = self.teacher.next_client()

        async def fetch() -> list[dict[str, Any]]:
            lines = await client.messages.batches.results(state.info.id, timeout=TRANSFER_S)
            return [line.to_dict() async for line in lines]

        return {row["custom_id"]: self.outcome(row.get("result") or {}) for row in await self.call(fetch)
                if isinstance(row.get("custom_id"), str)}

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


def size(batch: Any) -> int:
    """An Anthropic batch's number of requests: its counts always add up to it."""
    c = batch.request_counts
    return c.processing + c.succeeded + c.errored + c.canceled + c.expired
