"""OpenAI's Batch API (`--batch`) for `openai:` teachers: the provider's side of `wrappers/batch.py`.

A job is a JSONL file of /v1/chat/completions bodies, built by the online teacher in its current
structured-output mode; results come back in an output and an error file. Each job carries our
submission id in its metadata (`TAG`), so a lookup after a lost create reply is exact. A server that
refuses the mode in a job's lines (HTTP 400/422 about response_format) steps the teacher's mode
forward, as online, and those requests go out again at no cost to their attempts.
"""

from __future__ import annotations

import json
from typing import Any

from distill.teachers.base import GenerationRequest
from distill.teachers.http.limits import RETRYABLE_STATUS
from distill.teachers.http.openai.formats import JSON_MODES, about_format
from distill.teachers.wrappers.batch import CLOCK_SKEW_S, LIST_PAGE, TRANSFER_S, BatchApi, JobState, Outcome, Submission

TAG = "distill_submission"  # the job metadata key that carries our submission id


class OpenAIBatches(BatchApi):
    """OpenAI's Batch API: a JSONL file of /v1/chat/completions requests, results in output and error files."""

    ENDED = {"completed", "expired", "cancelled", "failed"}
    modes = len(JSON_MODES)
    teacher: Any  # an OpenAITeacher (teacher.py imports this module, so it is not named here)

    def mode(self) -> int:
        return self.teacher.json_mode

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        # The teacher's current mode: json_schema first, stepped forward by collect() when a server refuses it.
        return {"method": "POST", "url": "/v1/chat/completions",
                "body": self.teacher.params(request, self.teacher.json_mode)}

    async def prepare(self, bodies: dict[str, dict[str, Any]], submission: str) -> str:
        client = self.teacher.next_client()
        lines = "".join(json.dumps({"custom_id": custom_id, **body}, ensure_ascii=False) + "\n"
                        for custom_id, body in bodies.items()).encode()
        upload = await self.call(lambda: client.files.create(file=("distill-batch.jsonl", lines, "application/jsonl"),
                                                             purpose="batch", timeout=TRANSFER_S))
        return upload.id

    async def create(self, file_id: str, submission: str) -> JobState:
        batch = await self.teacher.next_client().batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h",
            metadata={"source": "distill", TAG: submission})
        return self.state(batch)

    async def find(self, submission: Submission, recorded: set[str]) -> JobState | None:
        client = self.teacher.next_client()
        page = await self.call(lambda: client.batches.list(limit=LIST_PAGE))  # newest first
        while True:
            for batch in page.data:
                if (batch.metadata or {}).get(TAG) == submission.id:
                    return self.state(batch)
                if batch.created_at < submission.first - CLOCK_SKEW_S:
                    return None  # older than the submission, and so is everything after it
            if not page.has_next_page():
                return None
            page = await self.call(page.get_next_page)

    async def poll(self, job_id: str) -> JobState:
        client = self.teacher.next_client()
        return self.state(await self.call(lambda: client.batches.retrieve(job_id)))

    def state(self, batch: Any) -> JobState:
        errors = [f"{e.code}: {e.message}" for e in ((batch.errors.data if batch.errors else None) or [])]
        return JobState(batch.status, batch.status in self.ENDED, batch, "; ".join(errors) or None)

    async def collect(self, state: JobState, mode: int | None) -> dict[str, Outcome]:
        client, batch, outcomes = self.teacher.next_client(), state.info, {}
        mode = self.teacher.json_mode if mode is None else mode
        # Expired or cancelled jobs still deliver what they finished; what they did not is resubmitted.
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                content = await self.call(lambda: client.files.content(file_id, timeout=TRANSFER_S))
                for line in content.content.splitlines():
                    try:
                        row = json.loads(line)
                    except ValueError:
                        continue  # a line we cannot read leaves its request unanswered: it is resubmitted
                    if isinstance(row, dict) and isinstance(row.get("custom_id"), str):
                        outcomes[row["custom_id"]] = self.outcome(row, mode)
        return outcomes

    def outcome(self, row: dict[str, Any], mode: int) -> Outcome:
        error, response = row.get("error"), row.get("response") or {}
        if error:  # batch_expired, batch_cancelled, server errors: nothing was answered
            return Outcome(error=f"batch request {error.get('code')}: {error.get('message')}", retry=True)
        status, body = response.get("status_code"), response.get("body") or {}
        if status != 200:
            message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
            if status in (400, 422) and mode < len(JSON_MODES) - 1 and about_format(message or ""):
                # As online: the server cannot do this structured-output mode, so every later request
                # (this one resubmitted included) uses the next one. Nothing ran, so no attempt is used.
                self.teacher.json_mode = max(self.teacher.json_mode, mode + 1)
                return Outcome(error=f"HTTP {status}: {message}", retry=True, free=True)
            return Outcome(error=f"HTTP {status}: {message}", retry=status in RETRYABLE_STATUS)
        try:
            body["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            return Outcome(error="malformed response in the batch output", retry=True)
        return Outcome(result=self.teacher.result("", body))
