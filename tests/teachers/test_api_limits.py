"""Client-side limits a user relies on: rpm/tpm spacing, AIMD, retry-after, bounded retries, learned limits.

The rate arithmetic runs on an injected clock (instant and exact); what crosses HTTP runs against the
loopback server through the real SDKs, timing each attempt as it leaves the client.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from datetime import datetime, timedelta, timezone

import httpx2
import openai
import pytest

from cli_helpers import TINY
from distill.errors import RunFailed
from distill.generate.runner import GenerateOptions, generate
from distill.records import Message
from distill.store import RunStore
from distill.teachers.base import GenerationRequest, GenerationResult
from distill.teachers.http.anthropic.teacher import AnthropicTeacher
from distill.teachers.http.limits import (
    AdaptiveConcurrency,
    ApiSettings,
    CallFailed,
    RateLimiter,
    RetryPolicy,
    parse_reset,
    with_retries,
)
from distill.teachers.http.openai.teacher import OpenAITeacher
from distill.teachers.registry import teacher_options
from fakeapi import FakeAPI, Faults


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-limits")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-limits")
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


class FakeClock:
    """Virtual time for one caller at a time: sleeping moves the clock instead of waiting."""

    def __init__(self, now: float = 0.0):
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        # Wake at the deadline: callers sleeping side by side do not add up their waits.
        deadline = self.now + max(0.0, seconds)
        self.slept.append(seconds)
        await asyncio.sleep(0)
        self.now = max(self.now, deadline)


def acquire_times(limiter: RateLimiter, clock: FakeClock, n: int, tokens: int = 0) -> list[float]:
    async def go() -> list[float]:
        times = []
        for _ in range(n):
            await limiter.acquire(tokens)
            times.append(clock.now)
        return times

    return asyncio.run(go())


def status_error(status: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    """The exception the real SDK raises for an HTTP error answer."""
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    return openai.APIStatusError(f"injected {status}", response=response, body={"error": {"message": f"injected {status}"}})


# rpm / tpm


def test_rpm_limit_spaces_requests_from_the_first_one():
    clock = FakeClock()
    limiter = RateLimiter(rpm=120, clock=clock, sleep=clock.sleep)
    times = acquire_times(limiter, clock, 10)
    assert times[:2] == [0.0, 0.0]  # one second's allowance may go at once
    gaps = [b - a for a, b in zip(times[1:], times[2:])]
    assert all(0.49 <= gap <= 0.52 for gap in gaps), gaps  # then 60 / 120 s apart


def test_rpm_limit_holds_over_every_minute_window():
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, clock=clock, sleep=clock.sleep)
    times = acquire_times(limiter, clock, 150)
    busiest = max(sum(1 for t in times if start <= t < start + 60) for start in times)
    assert busiest <= 61  # the limit plus one second's burst, never a minute's worth twice
    assert 140 <= times[-1] <= 152  # and not much slower than the limit either


def test_tpm_limit_spaces_requests_by_their_tokens():
    clock = FakeClock()
    limiter = RateLimiter(tpm=6000, clock=clock, sleep=clock.sleep)  # 100 tokens a second
    small = acquire_times(limiter, clock, 6, tokens=50)
    assert small[:2] == [0.0, 0.0]
    assert all(0.49 <= b - a <= 0.52 for a, b in zip(small[2:], small[3:]))  # 50 tokens = 0.5 s
    clock.now += 10  # idle: the bucket refills to one second's worth, no more
    start = clock.now
    big = acquire_times(limiter, clock, 5, tokens=300)  # each bigger than the bucket: goes, leaves a debt
    assert big[0] == start
    assert all(2.95 <= b - a <= 3.05 for a, b in zip(big, big[1:]))  # 300 tokens at 100/s


def test_no_limits_cost_nothing():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    assert acquire_times(limiter, clock, 1000, tokens=10_000)[-1] == 0.0 and not clock.slept


# AIMD


def test_aimd_halves_on_overload_and_grows_back_after_successes():
    clock = FakeClock(100.0)
    gate = AdaptiveConcurrency(16, clock=clock)
    gate.overload()
    assert gate.limit == 8
    gate.overload()  # the same burst of 429s: one signal
    assert gate.limit == 8
    clock.now += 1.5
    gate.overload()
    assert gate.limit == 4
    for _ in range(5):  # +1/limit each: about one more slot per `limit` successes
        gate.success()
    assert int(gate.limit) == 5
    successes = 5
    while gate.limit < 16:
        gate.success()
        successes += 1
    assert gate.limit == 16 and successes < 130  # back to the maximum, never past it
    gate.success()
    assert gate.limit == 16


def test_aimd_limit_bounds_requests_in_flight():
    gate = AdaptiveConcurrency(8)
    gate.overload()
    in_flight = peak = 0

    async def request() -> None:
        nonlocal in_flight, peak
        async with gate:
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.005)
            in_flight -= 1

    async def go() -> None:
        await asyncio.gather(*(request() for _ in range(40)))

    asyncio.run(go())
    assert peak == 4


# retry-after, bounded retries


def test_a_429_pauses_every_request_for_its_retry_after_and_halves_concurrency():
    clock = FakeClock(50.0)
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    gate = AdaptiveConcurrency(16, clock=clock)
    attempts: list[float] = []

    async def send() -> str:
        attempts.append(clock.now)
        if len(attempts) == 1:
            raise status_error(429, {"retry-after": "3"})
        return "answer"

    async def go() -> tuple[str, float]:
        value = await with_retries(send, limiter=limiter, gate=gate, policy=RetryPolicy(), sleep=clock.sleep)
        await limiter.acquire()  # anyone else asking now: the pause is over
        return value, clock.now

    value, other = asyncio.run(go())
    assert value == "answer" and len(attempts) == 2
    assert attempts[1] - attempts[0] >= 3.0  # retry-after, not the 0.5 s backoff
    assert limiter.paused_until >= attempts[0] + 3.0 and other >= attempts[0] + 3.0
    assert gate.limit < 16  # halved, then one success added back 1/8


def test_retries_are_bounded_and_fail_with_the_last_error():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    statuses = iter([500, 503, 502, 504])

    async def send() -> str:
        raise status_error(next(statuses))

    async def go() -> None:
        await with_retries(send, limiter=limiter, gate=AdaptiveConcurrency(4, clock=clock),
                           policy=RetryPolicy(max_retries=2, base_s=0.5, cap_s=30.0), sleep=clock.sleep)

    with pytest.raises(CallFailed) as failed:
        asyncio.run(go())
    assert failed.value.status == 502 and "HTTP 502" in failed.value.message
    assert "after 3 attempts" in failed.value.message
    assert next(statuses) == 504  # never asked a fourth time
    assert len(clock.slept) == 2 and clock.slept[0] <= 0.5 and clock.slept[1] <= 1.0  # jittered backoff


def test_an_error_that_cannot_improve_is_not_retried():
    clock = FakeClock()
    calls = 0

    async def send() -> str:
        nonlocal calls
        calls += 1
        raise status_error(400)

    async def go() -> None:
        await with_retries(send, limiter=RateLimiter(clock=clock, sleep=clock.sleep),
                           gate=AdaptiveConcurrency(4), policy=RetryPolicy(), sleep=clock.sleep)

    with pytest.raises(CallFailed, match="HTTP 400"):
        asyncio.run(go())
    assert calls == 1 and not clock.slept


# through the SDKs and the loopback server


def request(text: str) -> GenerationRequest:
    return GenerationRequest(key=text, messages=[Message(role="user", content=text)])


def timed(teacher, clock=time.monotonic) -> list[float]:
    """The times at which each HTTP attempt leaves the client (after limits and gate)."""
    times: list[float] = []
    send = teacher._send

    async def timed_send(params):
        times.append(clock())
        return await send(params)

    teacher._send = timed_send
    return times


def openai_teacher(api: FakeAPI, **settings) -> OpenAITeacher:
    values = dict(base_url=api.url + "/v1", timeout_s=5.0, max_retries=3, retry_base_s=0.01, concurrency=8)
    values.update(settings)
    return OpenAITeacher("openai:gpt-4o-mini", "gpt-4o-mini", ApiSettings(**values))


def on_virtual_time(teacher, wall: float | None = None) -> FakeClock:
    """The teacher's limiter and backoff on a virtual clock: waits are measured exactly, whatever the load.
    HTTP still goes over real sockets; only waiting is virtual. `wall` fixes the wall clock (reset headers)."""
    clock = FakeClock(1000.0)
    teacher.limiter = RateLimiter(clock=clock, sleep=clock.sleep, wall=(lambda: wall) if wall else time.time)
    teacher.sleep = clock.sleep
    return clock


def ask_in_rounds(teacher, *rounds: list[str]):
    async def go():
        try:
            return [await teacher.generate([request(text) for text in texts]) for texts in rounds]
        finally:
            await teacher.aclose()

    return asyncio.run(go())


def test_retry_after_from_the_server_is_honoured():
    with FakeAPI(Faults(script=[429], retry_after="0.6")) as api:
        teacher = openai_teacher(api)
        times = timed(teacher, on_virtual_time(teacher))
        [[result]] = ask_in_rounds(teacher, ["How do I reset my password?"])
    assert result.ok and len(times) == 2
    assert 0.6 <= times[1] - times[0] <= 0.6 + 0.07  # retry-after plus at most its jitter (10% + 10 ms)
    assert teacher.gate.limit < 8  # the 429 halved the requests in flight


def test_failed_item_records_the_last_error_after_bounded_retries(tmp_path):
    with FakeAPI(Faults(script=[500, 503, 502])) as api:
        options = GenerateOptions(
            taxonomy=TINY / "qa.yaml", teacher="openai:gpt-4o-mini", out=tmp_path / "run", curate=False,
            progress=False, preflight=False,
            teacher_options=teacher_options(base_url=api.url + "/v1", timeout_s=2.0, max_retries=2,
                                            retry_base_s=0.01, concurrency=4))
        with pytest.raises(RunFailed, match="nothing was kept: 4 of 4 items failed"):
            generate(options)
    assert set(api.requests.values()) == {3} and api.total_paid() == 0  # 1 try + 2 retries, then stop
    store = RunStore(tmp_path / "run" / "run.db")
    try:
        statuses = set(store.statuses().values())
    finally:
        store.close()
    assert statuses == {"failed"}
    rejected = [json.loads(line) for line in (tmp_path / "run" / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == 4
    for row in rejected:
        assert row["reason"] == "teacher_failed"
        assert "HTTP 502: injected 502 after 3 attempts" in row["detail"]  # the last error, not the first


def test_learned_rpm_from_x_ratelimit_headers_slows_the_client():
    texts = [f"Question {i} about my invoice?" for i in range(8)]
    with FakeAPI() as api:  # no headers: the second round goes at once
        teacher = openai_teacher(api)
        times = timed(teacher, on_virtual_time(teacher))
        ask_in_rounds(teacher, ["warm-up?"], texts)
    assert max(times[1:]) == min(times[1:]) and teacher.limiter.rpm is None  # no wait at all

    headers = {"x-ratelimit-limit-requests": "300", "x-ratelimit-remaining-requests": "299",
               "x-ratelimit-reset-requests": "200ms", "x-ratelimit-limit-tokens": "1000000"}
    with FakeAPI(Faults(ratelimit_headers=headers)) as api:
        teacher = openai_teacher(api)
        times = timed(teacher, on_virtual_time(teacher))
        results = ask_in_rounds(teacher, ["warm-up?"], texts)
    assert [r.ok for r in results[1]] == [True] * 8
    assert teacher.limiter.rpm == 300 and teacher.limiter.tpm == 1_000_000
    second = sorted(times[1:])
    # 300 rpm: one second's worth (5) at once, then one every 0.2 s (each wait has up to 10 ms of jitter).
    assert second[4] == second[0]
    gaps = [b - a for a, b in zip(second[4:], second[5:])]
    assert all(0.19 <= gap <= 0.22 for gap in gaps), gaps


def test_no_requests_left_pauses_until_the_openai_reset():
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "500ms"}
    with FakeAPI(Faults(ratelimit_headers=headers)) as api:
        teacher = openai_teacher(api)
        times = timed(teacher, on_virtual_time(teacher))
        ask_in_rounds(teacher, ["first?"], ["second?"])
    assert len(times) == 2 and 0.5 <= times[1] - times[0] <= 0.51  # its reset, not a guessed second


def test_anthropic_reset_timestamps_pause_until_then():
    with FakeAPI() as api:
        teacher = AnthropicTeacher("anthropic:claude-haiku-4-5", "claude-haiku-4-5",
                                   ApiSettings(base_url=api.url, timeout_s=5.0, max_retries=3, retry_base_s=0.01))
        now = datetime.now(timezone.utc)
        clock = on_virtual_time(teacher, wall=now.timestamp())  # the reset header is a wall-clock time
        sent = timed(teacher, clock)
        reset = now + timedelta(seconds=1.6)  # past the 1 s we would guess without it
        api.faults.ratelimit_headers = {
            "anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": reset.isoformat().replace("+00:00", "Z")}
        ask_in_rounds(teacher, ["first?"], ["second?"])
    assert teacher.limiter.rpm == 50
    assert len(sent) == 2 and 1.6 <= sent[1] - sent[0] <= 1.61  # paused until the reset, exactly


def test_anthropic_token_budget_exhausted_pauses_until_its_reset():
    clock, wall = FakeClock(10.0), datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp()
    limiter = RateLimiter(clock=clock, wall=lambda: wall, sleep=clock.sleep)
    limiter.observe({"anthropic-ratelimit-tokens-limit": "40000", "anthropic-ratelimit-tokens-remaining": "0",
                     "anthropic-ratelimit-tokens-reset": "2025-01-01T00:00:04Z", "content-type": "application/json"})
    assert limiter.tpm == 40000 and limiter.paused_until == 14.0
    limiter.observe({"Anthropic-Ratelimit-Requests-Limit": "100"})  # header names are case-insensitive
    assert limiter.rpm == 100
    limiter.observe({"anthropic-ratelimit-requests-limit": "1000"})  # a higher limit never loosens ours
    assert limiter.rpm == 100


@pytest.mark.parametrize("value, seconds", [
    ("2", 2.0), ("0.5", 0.5), ("1s", 1.0), ("6m0s", 360.0), ("1m30s", 90.0), ("250ms", 0.25),
    ("2025-01-01T00:00:03Z", 3.0), ("2025-01-01T00:00:01.5+00:00", 1.5), ("2025-01-01T01:00:02+01:00", 2.0),
    ("2024-12-31T23:59:00Z", 0.0),  # already past: no wait
    ("Wed, 01 Jan 2025 00:00:07 GMT", 7.0),  # retry-after as an HTTP date
    ("soon", None), (None, None),
])
def test_reset_headers_parse_to_seconds_from_now(value, seconds):
    parsed = parse_reset(value, datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp())
    assert parsed is None if seconds is None else parsed == pytest.approx(seconds)


# group commit (distill.commits.CommitWindow): what kill -9 can lose


def test_answers_reach_the_disk_within_the_commit_window(tmp_path):
    import sqlite3

    from distill.commits import COMMIT_WINDOW_S, CommitWindow
    from distill.teachers.base import GenerationResult

    store = RunStore(tmp_path / "run.db")
    clock = FakeClock(100.0)  # the window is measured on it: a slow machine cannot stretch it
    store.window = CommitWindow(store.db, clock=clock)
    reader = sqlite3.connect(tmp_path / "run.db")  # what a resumed run would see after a kill

    def on_disk() -> int:
        return reader.execute("SELECT COUNT(*) FROM teacher_calls").fetchone()[0]

    def answer(n: int) -> None:
        store.add_call("item", "draft", "openai:m", request(f"q{n}?"), f"fp{n}", GenerationResult(key="k", text="a"))

    async def go() -> None:
        answer(1)
        assert on_disk() == 1  # after a quiet spell: committed at once
        clock.now += COMMIT_WINDOW_S / 4
        answer(2)
        answer(3)
        assert on_disk() == 1  # within the window: grouped into one commit
        await asyncio.sleep(COMMIT_WINDOW_S * 3)  # the timer fires (real time) at the window's end
        assert on_disk() == 3  # the window's timer committed them
        clock.now += COMMIT_WINDOW_S * 2
        answer(4)
        assert on_disk() == 4  # quiet again: at once
        clock.now += COMMIT_WINDOW_S / 4
        answer(5)

    asyncio.run(go())
    assert on_disk() == 4  # answer 5 waits in the window that the loop's end cut short...
    answer(6)  # ...until the next write (outside an event loop: at once) or close
    assert on_disk() == 6
    store.close()
    reader.close()


def test_a_failed_write_in_a_group_leaves_no_half_behind(tmp_path):
    """An example whose status update fails must not land alone: the item would stay pending and be paid again."""
    from distill.records import Example

    store = RunStore(tmp_path / "run.db")

    async def go() -> None:
        store.add_call("item", "draft", "openai:m", request("q1?"), "fp1", GenerationResult(key="k", text="a"))
        broken = Example.model_validate({"id": "x", "messages": [{"role": "user", "content": "q"},
                                                                {"role": "assistant", "content": "a"}],
                                         "meta": {"taxonomy": "t", "taxonomy_path": "a/b", "plan_item_id": "x"}})
        original = store.set_status

        def fail(*args, **kwargs):
            raise RuntimeError("disk full")

        store.set_status = fail
        with pytest.raises(RuntimeError):
            store.add_example(broken)
        store.set_status = original
        store.add_call("item", "draft", "openai:m", request("q2?"), "fp2", GenerationResult(key="k", text="b"))

    asyncio.run(go())
    store.close()
    db = sqlite3.connect(tmp_path / "run.db")
    assert db.execute("SELECT COUNT(*) FROM examples").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM teacher_calls").fetchone()[0] == 2  # the group's other writes stay
