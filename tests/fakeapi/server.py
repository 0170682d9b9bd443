"""The loopback fake: OpenAI chat completions, files and batches; Anthropic messages and message batches.

A plain asyncio HTTP/1.1 server (keep-alive, Content-Length bodies) in a background thread, so the
real SDKs talk to it over real sockets. Every request is counted per prompt, so tests can assert
that nothing was paid twice. Faults are scripted per prompt attempt (`Faults.script`) or chosen per
prompt by hash (`Faults.content`), so runs are deterministic.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

from .agent import (
    AgentReply,
    AgentView,
    anthropic_agent_request,
    anthropic_content,
    anthropic_view,
    default_agent,
    openai_message,
    openai_view,
)

WORDS = ("inhaler wheeze trigger pollen dose fever cough mucus sinus rest fluids steroid spacer peak flow "
         "allergy smoke exercise night chest tight breath nurse clinic relief viral rhinitis throat honey zinc "
         "refund invoice charge card login password reset email account locked order parcel late double "
         "billing statement coupon warranty code screen error browser phone token session").split()


@dataclass
class Faults:
    latency_s: float = 0.0
    # Per prompt, attempt n gets script[n] (an HTTP status, "slow", "malformed", "disconnect", "trickle");
    # then success.
    script: list[Any] = field(default_factory=list)
    retry_after: str | None = "0.05"
    slow_s: float = 2.0
    trickle_s: float = 0.02  # "trickle": a valid answer sent one byte at a time, this pause after each
    # Fraction of prompts (chosen by hash) answered badly: length, refusal, filter, empty, truncated_json, fenced, prose.
    content: dict[str, float] = field(default_factory=dict)
    reject_json_schema: bool = False  # like llama.cpp: 400 on response_format json_schema
    ratelimit_headers: dict[str, str] = field(default_factory=dict)
    expect_key: str | None = None
    # A gateway's key as a query parameter (name, value): a wrong one is a 401 that echoes it whole.
    expect_query_key: tuple[str, str] | None = None
    batch_delay_s: float = 0.05
    batch_fail_first: int = 0  # per prompt, the first n batch attempts end errored
    batch_expire_first: int = 0  # per prompt, the first n batch attempts end expired
    # Batch create n gets batch_create_script[n]: a 4xx or "drop" (connection dropped) refuses it, no job
    # made; a 5xx, "disconnect" or "hold" (held slow_s, then dropped) loses the reply to a job that was
    # made and will run.
    batch_create_script: list[Any] = field(default_factory=list)
    # Jobs of other clients made right after each of ours: listed, never run. OpenAI lookups page past
    # them; Anthropic ones of our size (batch_neighbour_requests) make a lost create ambiguous.
    batch_neighbours: int = 0
    batch_neighbour_requests: int = 1
    batch_list_delay_s: float = 0.0  # a new job shows in the list endpoints only this long after it was made
    # Verdict requests (a schema whose properties are an enum or a boolean: the label round trip, the topic
    # judge) are answered with verdict(request, schema) as JSON when it returns a dict; the default is the
    # first enum value / true. Tests script agreeing and disagreeing answers with it.
    verdict: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | None] | None = None
    # Let this many realtime requests through, then hold every later one (as `hold()` does) until
    # `release()`: a run stops at a known count however slowly the machine runs it.
    hold_after: int | None = None
    # A request that declares tools (OpenAI `tools`; Anthropic tools besides distill's structured-output one) is
    # answered by this tool-calling assistant (tests/fakeapi/agent.py; None: `default_agent`).
    agent: Callable[[AgentView], AgentReply] | None = None
    # Answers without tools carry this reasoning apart from their text, as a reasoning model does: OpenAI's
    # `reasoning_content` (vLLM serving one), an Anthropic `thinking` block when the request asked for thinking.
    reasoning: str | None = None
    # A request without tools for which this returns text is answered with that text (a simulated user's turn,
    # tests/fakeapi/support.py); None leaves the request to the answers above.
    user: Callable[[dict[str, Any]], str | None] | None = None
    # The same for a teacher's text answers (tests/fakeapi/documents.py: an extractive teacher of the shipped
    # clinic documents, for the measured document recipe).
    teacher: Callable[[dict[str, Any]], str | None] | None = None


@dataclass
class Trickle:
    """An answer body for `_connection` to send a byte at a time (the "trickle" fault)."""

    data: bytes


class FakeAPI:
    def __init__(self, faults: Faults | None = None):
        self.faults = faults or Faults()
        self.requests: Counter[str] = Counter()  # prompt -> HTTP (or batch line) attempts
        self.paid: Counter[str] = Counter()  # prompt -> successful, billable answers
        self.log: list[dict[str, Any]] = []  # every request's path and headers (for key checks)
        self.bodies: list[dict[str, Any]] = []  # every realtime request body as sent, faulted ones included
        self.kinds: dict[str, str | None] = {}  # conversation_key -> the content fault its answer carried
        self.answered_at: list[float] = []  # monotonic times of answers (the benchmark's clock)
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.anthropic_batches: dict[str, dict[str, Any]] = {}
        self.batch_creates = 0  # create calls received, both providers
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0
        self.holding = False  # hold(): requests wait unanswered; release() drops them (never answered or billed)
        self.held = 0  # requests dropped that way
        self.past_latency = 0  # realtime requests past their latency (see arrived_all)
        self.hold_at = self.faults.hold_after  # None once released
        self.let_through = 0  # realtime requests that passed while hold_at was set
        self.trickled: list[float] = []  # seconds each "trickle" answer was sent for, until done or the client left

    # lifecycle
    def start(self) -> FakeAPI:
        self.thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024), self.loop).result()
        self.server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close():
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(close(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()

    def __enter__(self) -> FakeAPI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def hold(self) -> None:
        """From now on requests wait unanswered (a server that stalls), until `release`."""
        self.holding = True

    def arrived_all(self) -> bool:
        """Every realtime request received so far is past its latency: answered, failed or held (a test releases
        held requests only then, else one still in its latency would be answered to a client that is gone)."""
        with self.lock:
            return self.past_latency == sum(self.requests.values())

    def release(self) -> None:
        """Drop every held request's connection (the client sees a reset and retries) and answer again."""
        self.hold_at = None
        self.holding = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def total_paid(self) -> int:
        return sum(self.paid.values())

    # HTTP
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                path, _, query = target.partition("?")
                status, extra, payload = await self._route(method, path, headers, body, query)
                if status == 0:  # "disconnect": drop the connection without an answer
                    writer.close()
                    return
                if isinstance(payload, Trickle):
                    await self._trickle(reader, writer, payload.data)
                    return
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                ctype = "application/json" if not isinstance(payload, bytes) else "application/octet-stream"
                out = [f"HTTP/1.1 {status} X", f"content-type: {ctype}", f"content-length: {len(data)}",
                       "connection: keep-alive", *(f"{k}: {v}" for k, v in extra.items())]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _trickle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> None:
        """A whole, valid answer a byte at a time: every read gets a byte well within a per-read timeout."""
        started = time.monotonic()
        head = ["HTTP/1.1 200 X", "content-type: application/json", f"content-length: {len(data)}",
                "connection: close"]
        try:
            for byte in ("\r\n".join(head) + "\r\n\r\n").encode() + data:
                if reader.at_eof():  # the client hung up
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(self.faults.trickle_s)
        finally:
            self.trickled.append(time.monotonic() - started)
            writer.close()

    async def _route(self, method: str, path: str, headers: dict[str, str], body: bytes, query: str = ""):
        self.log.append({"path": path, "headers": headers, "query": dict(parse_qsl(query, keep_blank_values=True))})
        key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        if self.faults.expect_key is not None and key != self.faults.expect_key:
            masked = key[:3] + "***" + key[-2:] if len(key) > 6 else "***"
            msg = f"Incorrect API key provided: {masked}"
            return 401, {}, {"type": "error", "error": {"type": "authentication_error", "message": msg}}
        if self.faults.expect_query_key is not None:
            name, value = self.faults.expect_query_key
            given = self.log[-1]["query"].get(name)
            if given != value:
                msg = f"Access denied: invalid {name} {given!r} for this endpoint"
                return 401, {}, {"type": "error", "error": {"type": "authentication_error", "message": msg}}
        if path == "/v1/chat/completions":
            return await self._answer("openai", json.loads(body))
        if path == "/v1/messages":
            return await self._answer("anthropic", json.loads(body))
        if path == "/v1/files" and method == "POST":
            return self._upload(headers, body)
        if (m := re.fullmatch(r"/v1/files/([\w-]+)/content", path)) and m.group(1) in self.files:
            return 200, {}, self.files[m.group(1)]
        if path == "/v1/batches" and method == "POST":
            return await self._batch_create("openai", lambda: self._openai_batch_create(json.loads(body)))
        if path == "/v1/batches" and method == "GET":
            page, more = page_of(self._listed(self.batches), dict(parse_qsl(query)), "after")
            return 200, {}, {"object": "list", "data": [self._openai_batch_poll(i) for i in page], "has_more": more,
                             "first_id": page[0] if page else None, "last_id": page[-1] if page else None}
        if (m := re.fullmatch(r"/v1/batches/([\w-]+)", path)) and m.group(1) in self.batches:
            return 200, {}, self._openai_batch_poll(m.group(1))
        if path == "/v1/messages/batches" and method == "POST":
            return await self._batch_create("anthropic", lambda: self._anthropic_batch_create(json.loads(body)))
        if path == "/v1/messages/batches" and method == "GET":
            page, more = page_of(self._listed(self.anthropic_batches), dict(parse_qsl(query)), "after_id")
            return 200, {}, {"data": [self._anthropic_batch_poll(i) for i in page], "has_more": more,
                             "first_id": page[0] if page else None, "last_id": page[-1] if page else None}
        m = re.fullmatch(r"/v1/messages/batches/([\w-]+)(/results)?", path)
        if m and m.group(1) in self.anthropic_batches:
            batch = self.anthropic_batches[m.group(1)]
            if not m.group(2):
                return 200, {}, self._anthropic_batch_poll(m.group(1))
            if batch["results"] is not None:
                return 200, {}, batch["results"]
        return 404, {}, {"type": "error", "error": {"type": "not_found_error", "message": f"no route {method} {path}"}}

    # realtime answers
    async def _answer(self, provider: str, request: dict[str, Any]):
        prompt = prompt_id(request)
        self.bodies.append(request)
        with self.lock:
            attempt = self.requests[prompt]
            self.requests[prompt] += 1
        if self.faults.latency_s:
            await asyncio.sleep(self.faults.latency_s)
        with self.lock:
            self.past_latency += 1
            if self.hold_at is not None:
                if self.let_through >= self.hold_at:
                    self.holding = True
                else:
                    self.let_through += 1
        if self.holding:
            while self.holding:
                await asyncio.sleep(0.01)
            self.held += 1
            return 0, {}, b""
        fault = self.faults.script[attempt] if attempt < len(self.faults.script) else None
        if fault == "slow":  # past the client's timeout: it has gone, so nothing is delivered or billed
            await asyncio.sleep(self.faults.slow_s)
            return 0, {}, b""
        if fault == "trickle":  # answered, but too slowly to be of use: never billed, as "slow"
            return 200, {}, Trickle(json.dumps(self.compose(provider, request, prompt)).encode())
        if fault == "malformed":
            return 200, {}, b'{"id": "chatcmpl-1", "choices": [{"mess'
        elif fault == "disconnect":
            return 0, {}, b""
        elif isinstance(fault, int):
            headers = {"retry-after": self.faults.retry_after} if self.faults.retry_after else {}
            kind = "overloaded_error" if fault == 529 else "rate_limit_error" if fault == 429 else "api_error"
            return fault, headers, {"type": "error", "error": {"type": kind, "message": f"injected {fault}"}}
        if provider == "openai" and self.faults.reject_json_schema and \
                (request.get("response_format") or {}).get("type") == "json_schema":
            return 400, {}, {"error": {"message": "response_format type json_schema is not supported", "type": "invalid_request_error"}}
        with self.lock:
            self.paid[prompt] += 1
        answer = self.compose(provider, request, prompt)
        self.answered_at.append(time.monotonic())
        return 200, dict(self.faults.ratelimit_headers), answer

    def compose(self, provider: str, request: dict[str, Any], prompt: str) -> dict[str, Any]:
        if provider == "openai" and request.get("tools"):
            return self.compose_agent(request, prompt)
        if provider == "anthropic" and anthropic_agent_request(request):
            return self.compose_anthropic_agent(request, prompt)
        said = None
        for handler in (self.faults.user, self.faults.teacher):
            if said is None and handler is not None and not request.get("tools"):
                said = handler(request)
        kind = None if said is not None else self.content_kind(prompt)
        self.kinds[conversation_key(request.get("messages") or [], request.get("seed"))] = kind
        structured = wants_json(request)
        words = [WORDS[int(prompt[i:i + 2], 16) % len(WORDS)] for i in range(0, 40, 2)]
        schema = requested_schema(request)
        if said is not None:
            text = said
        elif structured and is_verdict(schema):
            verdict = self.faults.verdict(request, schema) if self.faults.verdict else None
            text = json.dumps(verdict if verdict is not None else default_verdict(schema))
        elif structured:
            properties = (schema or {}).get("properties") or {}
            if "medications" in properties:  # taxonomies/clinical-extraction.yaml: extract from the note
                obj = extract_medications(last_user(request), invent=kind == "hallucinated")
            elif properties and set(properties) != {"text", "rationale"}:  # any other task: its schema's shape
                obj = fill_schema(schema, words)
            else:
                obj = {"text": f"My {words[0]} {words[1]} problem: " + " ".join(words[2:10]),
                       "rationale": "The customer mentions " + " and ".join(words[10:13])}
            text = json.dumps(obj)
            if kind == "fenced":
                text = f"Here you go:\n```json\n{text}\n```"
            elif kind == "truncated_json":
                text = text[: len(text) // 2]
            elif kind == "prose":
                text = "Sure! The customer is unhappy about " + " ".join(words[:6]) + "."
        elif JUDGE_ASK in last_user(request):  # `distill eval --judge`: the longer answer wins, a tie is "A"
            a, b = judged_pair(last_user(request))
            text = "A" if len(a) >= len(b) else "B"
        elif NOTE_ASK in last_user(request):  # the note step of the clinical-extraction task
            text = clinical_note(prompt, last_user(request))
        elif last_user(request).rstrip().endswith("?"):
            text = ("Usually " + " ".join(words[:8]) + ". See a clinician if " + " ".join(words[8:14])
                    + " gets worse or lasts more than a week.")
        elif kind == "prose":
            text = "Here are some thoughts about " + " ".join(words[:6]) + "."
        else:
            text = f"How does {words[0]} affect {words[1]} {words[2]} when {words[3]} {words[4]} {words[5]}?"
        finish = "stop"
        if kind == "length":
            finish, text = "length", text[:20]
        elif kind == "filter":
            finish, text = "content_filter", ""
        elif kind == "empty":
            text = ""
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in request.get("messages", [])) // 4 + 1
        completion_tokens = len(text) // 4 + 1
        if provider == "openai":
            message = {"role": "assistant", "content": text, "refusal": None}
            if kind == "refusal":
                message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
            if self.faults.reasoning is not None:
                message["reasoning_content"] = self.faults.reasoning
            return {"id": "chatcmpl-" + prompt[:12], "object": "chat.completion", "created": int(time.time()),
                    "model": request.get("model"), "choices": [{"index": 0, "message": message,
                                                                 "finish_reason": finish, "logprobs": None}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens}}
        stop = {"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal"}[finish]
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        if kind == "refusal":
            stop, content = "refusal", [{"type": "text", "text": "I can't help with that."}]
        elif request.get("tools") and kind not in ("truncated_json", "fenced", "prose") and finish == "stop":
            stop = "tool_use"
            content = [{"type": "tool_use", "id": "toolu_" + prompt[:10], "name": request["tools"][0]["name"],
                        "input": json.loads(text)}]
        if self.faults.reasoning is not None and request.get("thinking"):
            content.insert(0, {"type": "thinking", "thinking": self.faults.reasoning, "signature": "sig"})
        return {"id": "msg_" + prompt[:12], "type": "message", "role": "assistant", "model": request.get("model"),
                "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens}}

    def compose_agent(self, request: dict[str, Any], prompt: str) -> dict[str, Any]:
        """A tool-calling assistant's answer (`Faults.agent`), in OpenAI's wire format."""
        reply = (self.faults.agent or default_agent)(openai_view(request))
        message, finish = openai_message(reply, prompt[:8])
        prompt_tokens = len(json.dumps(request.get("messages"))) // 4 + 1
        completion_tokens = len(json.dumps(message)) // 4 + 1
        return {"id": "chatcmpl-" + prompt[:12], "object": "chat.completion", "created": int(time.time()),
                "model": request.get("model"), "choices": [{"index": 0, "message": message, "finish_reason": finish,
                                                             "logprobs": None}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    def compose_anthropic_agent(self, request: dict[str, Any], prompt: str) -> dict[str, Any]:
        """A tool-calling assistant's answer (`Faults.agent`), in Anthropic's wire format."""
        reply = (self.faults.agent or default_agent)(anthropic_view(request))
        content, stop = anthropic_content(reply, prompt[:8], thinking=bool(request.get("thinking")))
        return {"id": "msg_" + prompt[:12], "type": "message", "role": "assistant", "model": request.get("model"),
                "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": len(json.dumps(request.get("messages"))) // 4 + 1,
                          "output_tokens": len(json.dumps(content)) // 4 + 1}}

    def content_kind(self, prompt: str) -> str | None:
        position = int(prompt[:8], 16) / 2 ** 32
        edge = 0.0
        for kind, share in self.faults.content.items():
            edge += share
            if position < edge:
                return kind
        return None

    # OpenAI batch
    def _upload(self, headers: dict[str, str], body: bytes):
        boundary = headers["content-type"].split("boundary=")[1].strip('"').encode()
        content = b""
        for part in body.split(b"--" + boundary):
            if b'name="file"' in part:
                content = part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = content
        return 200, {}, {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                         "filename": "batch.jsonl", "purpose": "batch", "status": "processed"}

    def _openai_batch_create(self, request: dict[str, Any]):
        if request.get("input_file_id") not in self.files:
            return 404, {}, {"error": {"message": "No such File object", "type": "invalid_request_error"}}
        batch_id = f"batch_{len(self.batches) + 1}"
        lines = [json.loads(line) for line in self.files[request["input_file_id"]].splitlines() if line.strip()]
        self.batches[batch_id] = {"request": request, "lines": lines, "created": time.time(), "done": None}
        return 200, {}, self._openai_batch_poll(batch_id)

    def _openai_batch_poll(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        status, counts = "in_progress", {"total": len(batch["lines"]), "completed": 0, "failed": 0}
        if time.time() - batch["created"] >= self.faults.batch_delay_s and not batch.get("foreign"):
            if batch["done"] is None:
                batch["done"] = self._run_openai_batch(batch["request"], batch["lines"])
            status, counts = batch["done"]["status"], batch["done"]["counts"]
        obj = {"id": batch_id, "object": "batch", "endpoint": batch["request"].get("endpoint"),
               "errors": (batch["done"] or {}).get("errors"), "input_file_id": batch["request"]["input_file_id"],
               "completion_window": "24h", "status": status, "created_at": int(batch["created"]),
               "request_counts": counts, "metadata": batch["request"].get("metadata")}
        if batch["done"]:
            obj.update(output_file_id=batch["done"]["output"], error_file_id=batch["done"]["error"])
        return obj

    def _run_openai_batch(self, request: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
        # Validation first, as the real service does: a bad file fails the whole batch, nothing is run.
        problems = []
        ids = [line.get("custom_id") for line in lines]
        if len(set(ids)) != len(ids):
            problems.append({"code": "duplicate_custom_id", "message": "custom_id values must be unique", "line": None})
        for n, line in enumerate(lines, start=1):
            if line.get("method") != "POST" or line.get("url") != request.get("endpoint"):
                problems.append({"code": "invalid_request", "message": "url does not match the endpoint", "line": n})
        if problems or request.get("endpoint") != "/v1/chat/completions" or request.get("completion_window") != "24h":
            problems = problems or [{"code": "invalid_request", "message": "bad endpoint or window", "line": None}]
            return {"status": "failed", "output": None, "error": None, "errors": {"object": "list", "data": problems},
                    "counts": {"total": len(lines), "completed": 0, "failed": 0}}
        out, errors, expired = [], [], False
        for line in lines:
            prompt = prompt_id(line["body"])
            attempt = self.batch_attempt(prompt)
            if attempt < self.faults.batch_expire_first:
                expired = True  # never processed: the error file says so, per request
                errors.append({"id": "r", "custom_id": line["custom_id"], "response": None,
                               "error": {"code": "batch_expired", "message": "This request could not be executed "
                                                                             "before the completion window expired."}})
                continue
            if attempt < self.faults.batch_expire_first + self.faults.batch_fail_first:
                errors.append({"id": "r", "custom_id": line["custom_id"], "error": None,
                               "response": {"status_code": 500, "request_id": "req", "body": {"error": {
                                   "message": "injected batch failure", "type": "server_error"}}}})
                continue
            if self.faults.reject_json_schema and \
                    (line["body"].get("response_format") or {}).get("type") == "json_schema":
                errors.append({"id": "r", "custom_id": line["custom_id"], "error": None,
                               "response": {"status_code": 400, "request_id": "req", "body": {"error": {
                                   "message": "response_format type json_schema is not supported",
                                   "type": "invalid_request_error"}}}})
                continue
            self.paid[prompt] += 1
            out.append({"id": "r", "custom_id": line["custom_id"], "error": None,
                        "response": {"status_code": 200, "request_id": "req",
                                     "body": self.compose("openai", line["body"], prompt)}})
        ids = {}
        for name, rows in (("output", out), ("error", errors)):
            if rows:
                ids[name] = f"file-{len(self.files) + 1}"
                self.files[ids[name]] = "\n".join(json.dumps(r) for r in rows).encode() + b"\n"
            else:
                ids[name] = None
        return {"status": "expired" if expired else "completed", **ids, "errors": None,
                "counts": {"total": len(lines), "completed": len(out), "failed": len(errors)}}

    def batch_attempt(self, prompt: str) -> int:
        with self.lock:
            attempt = self.requests[prompt]
            self.requests[prompt] += 1
        return attempt

    # batch create faults
    async def _batch_create(self, provider: str, create: Callable[[], tuple]) -> tuple:
        """A create under Faults.batch_create_script (see there); jobs of other clients follow each of ours."""
        with self.lock:
            n = self.batch_creates
            self.batch_creates += 1
        script = self.faults.batch_create_script
        fault = script[n] if n < len(script) else None
        error = {"type": "error", "error": {"type": "api_error", "message": f"injected {fault}"}}
        if isinstance(fault, int) and fault < 500:  # refused: no job
            headers = {"retry-after": self.faults.retry_after} if fault == 429 and self.faults.retry_after else {}
            return fault, headers, error
        if fault == "drop":
            return 0, {}, b""
        reply = create()
        if reply[0] != 200:
            return reply
        for _ in range(self.faults.batch_neighbours):
            self._neighbour(provider)
        if fault == "hold":  # the client times out, or is killed, first
            await asyncio.sleep(self.faults.slow_s)
            return 0, {}, b""
        if fault == "disconnect":
            return 0, {}, b""
        return (fault, {}, error) if isinstance(fault, int) else reply

    def _listed(self, batches: dict[str, dict[str, Any]]) -> list[str]:
        """Job ids newest first, as list endpoints give them; a job shows only `batch_list_delay_s` after it was made."""
        shown_before = time.time() - self.faults.batch_list_delay_s
        return [job_id for job_id in reversed(batches) if batches[job_id]["created"] <= shown_before]

    def _neighbour(self, provider: str) -> None:
        """Another client's job in the same account: listed, never run."""
        if provider == "openai":
            request = {"input_file_id": "file-other", "endpoint": "/v1/chat/completions",
                       "metadata": {"source": "someone-else"}}
            self.batches[f"batch_{len(self.batches) + 1}"] = {"request": request, "lines": [], "created": time.time(),
                                                               "done": None, "foreign": True}
        else:
            requests = [{"custom_id": f"other-{i}", "params": {}} for i in range(self.faults.batch_neighbour_requests)]
            self.anthropic_batches[f"msgbatch_{len(self.anthropic_batches) + 1}"] = {
                "requests": requests, "created": time.time(), "results": None, "counts": None, "foreign": True}

    # Anthropic batch
    def _anthropic_batch_create(self, request: dict[str, Any]):
        ids = [entry.get("custom_id") or "" for entry in request.get("requests") or []]
        if not ids or len(set(ids)) != len(ids) or not all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", i) for i in ids):
            return 400, {}, {"type": "error", "error": {"type": "invalid_request_error",
                                                        "message": "requests: custom_id must be unique and match "
                                                                   "^[a-zA-Z0-9_-]{1,64}$"}}
        batch_id = f"msgbatch_{len(self.anthropic_batches) + 1}"
        self.anthropic_batches[batch_id] = {"requests": request["requests"], "created": time.time(), "results": None,
                                            "counts": None}
        return 200, {}, self._anthropic_batch_poll(batch_id)

    def _anthropic_batch_poll(self, batch_id: str) -> dict[str, Any]:
        batch = self.anthropic_batches[batch_id]
        ended = time.time() - batch["created"] >= self.faults.batch_delay_s and not batch.get("foreign")
        if ended and batch["results"] is None:
            rows = []
            for entry in batch["requests"]:
                prompt = prompt_id(entry["params"])
                attempt = self.batch_attempt(prompt)
                if attempt < self.faults.batch_expire_first:
                    result = {"type": "expired"}
                elif attempt < self.faults.batch_expire_first + self.faults.batch_fail_first:
                    result = {"type": "errored", "error": {"type": "error", "error": {"type": "api_error",
                                                                                        "message": "injected"}}}
                else:
                    self.paid[prompt] += 1
                    result = {"type": "succeeded", "message": self.compose("anthropic", entry["params"], prompt)}
                rows.append({"custom_id": entry["custom_id"], "result": result})
            batch["results"] = "\n".join(json.dumps(r) for r in rows).encode() + b"\n"
            batch["counts"] = Counter(row["result"]["type"] for row in rows)
        n = len(batch["requests"])
        stamp = "2025-01-01T00:00:00Z"
        created = datetime.fromtimestamp(batch["created"], timezone.utc).isoformat()  # lookups compare it
        counts = batch["counts"] or {}
        return {"id": batch_id, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
                "request_counts": {"processing": 0 if ended else n, **{kind: counts.get(kind, 0) for kind in
                                                                        ("succeeded", "errored", "canceled", "expired")}},
                "ended_at": stamp if ended else None, "created_at": created, "expires_at": stamp,
                # "cancelled": a test sets it, as a user cancelling the batch in the Console would
                "archived_at": None, "cancel_initiated_at": stamp if batch.get("cancelled") else None,
                "results_url": f"{self.url}/v1/messages/batches/{batch_id}/results" if ended else None}


def page_of(ids: list[str], query: dict[str, str], after_key: str) -> tuple[list[str], bool]:
    """One page of `ids` (newest first) and whether more lie beyond it, as both providers' list cursors pick it:
    after `after_key` (older), else before `before_id` (newer, Anthropic), else from the newest."""
    limit = int(query.get("limit") or 20)
    after, before = query.get(after_key), query.get("before_id")
    if after in ids:
        rest = ids[ids.index(after) + 1:]
        return rest[:limit], len(rest) > limit
    if before in ids:
        rest = ids[:ids.index(before)]
        return rest[-limit:], len(rest) > limit
    return ids[:limit], len(ids) > limit


def prompt_id(request: dict[str, Any]) -> str:
    """What identifies one prompt: its messages (and system), sampling seed and token cap."""
    key = json.dumps([request.get("system"), request.get("messages"), request.get("seed"),
                      request.get("max_tokens") or request.get("max_completion_tokens")], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


JUDGE_ASK = "Reply with exactly one word: A, B, or tie."


def judged_pair(prompt: str) -> tuple[str, str]:
    """The two answers in a pairwise judge prompt (distill.evaluate.report.JUDGE_PROMPT)."""
    a = prompt.split("Answer A:\n", 1)[1].split("\n\nAnswer B:\n", 1)[0]
    b = prompt.split("\n\nAnswer B:\n", 1)[1].rsplit("\n\n" + JUDGE_ASK, 1)[0]
    return a, b


def conversation_key(messages: list[dict[str, Any]], seed: int | None) -> str:
    """A prompt as both sides can name it: its user and assistant turns and the sampling seed sent (the
    system turns differ between providers and structured-output modes)."""
    turns = [[m.get("role"), m.get("content") if isinstance(m.get("content"), str)
              else " ".join(part.get("text", "") for part in m.get("content") or [])]
             for m in messages if m.get("role") != "system"]
    return json.dumps([turns, seed])


def is_verdict(schema: dict[str, Any] | None) -> bool:
    properties = (schema or {}).get("properties") or {}
    return bool(properties) and all("enum" in p or p.get("type") == "boolean" for p in properties.values())


def default_verdict(schema: dict[str, Any]) -> dict[str, Any]:
    return {name: p["enum"][0] if "enum" in p else True for name, p in schema["properties"].items()}


def wants_json(request: dict[str, Any]) -> bool:
    if request.get("response_format") or request.get("tools"):
        return True
    return any("JSON" in str(m.get("content", "")) for m in request.get("messages", []) if m.get("role") == "system")


def last_user(request: dict[str, Any]) -> str:
    users = [m for m in request.get("messages", []) if m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    if isinstance(content, list):
        content = " ".join(part.get("text", "") for part in content)
    return content


def requested_schema(request: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema a request asks for: OpenAI json_schema, Anthropic tool input, or the prompt's hint."""
    response_format = request.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return response_format["json_schema"].get("schema")
    if request.get("tools"):
        return request["tools"][0].get("input_schema")
    for message in request.get("messages", []):
        content = str(message.get("content", ""))
        if message.get("role") == "system" and SCHEMA_HINT in content:
            return json.loads(content.split(SCHEMA_HINT, 1)[1])
    return None


SCHEMA_HINT = "matching this JSON schema: "


def fill_schema(schema: dict[str, Any], words: list[str], depth: int = 0) -> Any:
    """A value of the schema's shape, made of the prompt's words (enums: a value picked by them)."""
    if schema.get("enum"):
        return schema["enum"][len(words[depth % len(words)]) % len(schema["enum"])]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {name: fill_schema(sub, words[5 * i + 1:] + words[:5 * i + 1], depth + 1)  # each field its own words
                for i, (name, sub) in enumerate((schema.get("properties") or {}).items())}
    if kind == "array":
        return [fill_schema(schema.get("items") or {}, words[i:] + words[:i], depth + 1) for i in range(2)]
    if kind == "integer":
        return len(words[0]) + len(words[1])
    if kind == "number":
        return 0.5 + len(words[0])
    if kind == "boolean":
        return len(words[0]) % 2 == 0
    return " ".join(words[:6]).capitalize() + "."


# The clinical-extraction task's teacher: a note naming drugs, then the drugs read back from the note.
NOTE_ASK = "Reply with the note only."
DRUGS = [("metoprolol", 25, "mg", "oral", "twice daily"), ("ramipril", 5, "mg", "oral", "once daily"),
         ("metformin", 500, "mg", "oral", "twice daily"),
         ("insulin glargine", 20, "units", "subcutaneous", "once daily"),
         ("amoxicillin", 500, "mg", "oral", "three times daily"), ("paracetamol", 1, "g", "oral", "four times daily"),
         ("morphine sulfate", 10, "mg", "oral", "every 4 hours as needed"),
         ("enoxaparin", 40, "mg", "subcutaneous", "once daily")]
DOSE = re.compile(r"([a-z][a-z ]*?) (\d+(?:\.\d+)?) (mg|g|mcg|units) (oral|subcutaneous|intravenous) ([a-z0-9 ]+?)[;.]")


NOTE_TOPIC = re.compile(r" about (.+?): (.+?)\.\n")


def clinical_note(prompt: str, ask: str = "") -> str:
    """A note about the topic the request names (as a teacher's would be: curation's off_topic check reads it),
    with its own medications and words drawn from the prompt's hash."""
    count = 1 + int(prompt[:2], 16) % 3
    start = int(prompt[2:4], 16) % len(DRUGS)
    chosen = [DRUGS[(start + i) % len(DRUGS)] for i in range(count)]
    plan = "; ".join(f"{name} {dose} {unit} {route} {frequency}" for name, dose, unit, route, frequency in chosen)
    words = [WORDS[int(prompt[i:i + 2], 16) % len(WORDS)] for i in range(4, 40, 2)]  # every note its own words
    setting = ("clinic", "the emergency department", "a home visit", "the ward round")[int(prompt[40:42], 16) % 4]
    topic = NOTE_TOPIC.search(ask)
    about = f" Review of {topic.group(1)}: {topic.group(2).lower()}." if topic else ""
    return (f"Seen in {setting} today.{about} Reports {words[0]}, {words[1]} and {words[2]} for {3 + int(prompt[42], 16)} "
            f"days, worse with {words[3]} and {words[4]}; no {words[5]} or {words[6]}. Examination notable for "
            f"{words[7]} {words[8]}. Plan: {plan}. Aspirin was stopped last month. Review in "
            f"{2 + int(prompt[43], 16) % 6} weeks about {words[9]} and {words[10]} {words[11]}.")


def extract_medications(note: str, invent: bool = False) -> dict[str, Any]:
    found = [{"name": m.group(1).split("; ")[-1].strip(), "dose": float(m.group(2)), "unit": m.group(3),
              "route": m.group(4), "frequency": m.group(5)} for m in DOSE.finditer(note.split("Plan: ", 1)[-1])]
    if invent:  # content fault "hallucinated": a drug the note never names
        found.append({"name": "warfarin", "dose": 3.0, "unit": "mg", "route": "oral", "frequency": "once daily"})
    return {"medications": found}
