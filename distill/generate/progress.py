"""What a generation run shows while it works: its phase, then items, tokens/s, rates and ETA that tell the truth.

Phases first (loading the model, the embedded model's one-time conversion), each with a spinner and
its time. Then the bar: items done, items/s and ETA over a moving window, generated tokens/s as the
teacher decodes (in-process teachers report every decoding step, so the figure moves during a batch),
and how many were kept so far.

A rate is the count within the last `window_s` seconds over the time the window covers, and the window
never starts before generation did. rich's own speed divides by the time between its last samples:
eight items landing at once after seven minutes read "4746.55 items/s, eta 0:00:01". Here they read
8 / 420 s. No rate is shown before `min_interval_s` of generating, and items answered from run.db
before the teacher's first answer (a resumed run) count as done but not toward the rate.

rich renders the same display in a terminal and in a Jupyter notebook.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from distill.models import needs_conversion
from distill.teachers.registry import TeacherSpec

MIN_INTERVAL_S = 5.0  # no rate before this much generating: a few seconds say nothing about a long run


class MovingRate:
    """Events per second over the last `window_s` seconds, never over less than `min_interval_s`."""

    def __init__(self, window_s: float, clock: Callable[[], float], min_interval_s: float | None = None):
        self.window_s, self.clock = window_s, clock
        self.min_interval_s = MIN_INTERVAL_S if min_interval_s is None else min_interval_s
        self.start: float | None = None
        self.total = 0
        self._events: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()  # decoding threads add; the display thread reads

    def begin(self, now: float | None = None) -> None:
        self.start = self.clock() if now is None else now

    def add(self, count: int = 1) -> None:
        now = self.clock()
        with self._lock:
            self.total += count
            self._events.append((now, count))

    def rate(self) -> float | None:
        if self.start is None:
            return None
        now = self.clock()
        if now - self.start < self.min_interval_s:
            return None
        cutoff = now - self.window_s  # the window is (cutoff, now], and starts no earlier than `start`
        with self._lock:
            while self._events and self._events[0][0] <= cutoff:
                self._events.popleft()
            count = sum(n for _, n in self._events)
        return count / (now - max(self.start, cutoff))


class _Count(MofNCompleteColumn):
    """done/total while generating; nothing for a phase, which has no count."""

    def render(self, task: Task) -> Text:
        return super().render(task) if task.total is not None else Text("")


class _Figures(ProgressColumn):
    """items/s, tokens/s and ETA, computed when the display draws (about 4 times a second)."""

    def __init__(self, progress: GenerationProgress):
        super().__init__()
        self.run = progress

    def render(self, task: Task) -> Text:
        if not task.fields.get("generating"):
            return Text("")
        items, tokens, eta = self.run.items_per_s(), self.run.tokens_per_s(), self.run.eta_s()
        shown = [f"{items:.3g} items/s" if items else "-- items/s",
                 f"{tokens:.1f} tok/s" if tokens else "-- tok/s",
                 f"eta {timedelta(seconds=round(eta))}" if eta is not None else "eta --"]
        return Text("  ".join(shown), style="cyan")


def default_console() -> Console:
    """Progress goes to stderr (stdout carries the report); in a notebook rich draws it as a widget."""
    return Console(stderr=True)


class GenerationProgress:
    def __init__(self, enabled: bool = True, console: Console | None = None, window_s: float = 120.0,
                 token_window_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.enabled, self.clock = enabled, clock
        self.tokens_in = self.tokens_out = self.ok = self.bad = self.failed = self.replayed = 0
        self.total = 0
        self.items = MovingRate(window_s, clock)
        self.generated = MovingRate(token_window_s, clock)
        self.streaming = False  # the teacher reports tokens as it decodes (else: as answers arrive)
        self.answered = False  # the teacher has answered once (items done before came from run.db)
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), _Count(),
            TimeElapsedColumn(), _Figures(self), TextColumn("{task.fields[detail]}"),
            console=console or default_console(), disable=not enabled, refresh_per_second=4,
        )
        self.task: TaskID | None = None
        self._shown = 0.0  # when the detail text was last rebuilt
        self._live = False
        self._advice: Callable[[GenerationProgress], str | None] | None = None
        self._advise_after: tuple[float, int] = (60.0, 3)

    # -- phases ------------------------------------------------------------------------------------

    def open(self) -> None:
        if not self._live:
            self.progress.start()
            self._live = True

    def close(self) -> None:
        if self._live:
            self._refresh(force=True)
            self.progress.stop()
            self._live = False

    def __enter__(self) -> GenerationProgress:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def phase(self, description: str):
        """A spinner and a clock while something slow happens; one line saying how long it took after."""
        self.open()
        task = self.progress.add_task(description, total=None, detail="", generating=False)
        started = self.clock()
        try:
            yield
        finally:
            self.progress.remove_task(task)
        if self.enabled:
            self.progress.console.print(f"{description}: {self.clock() - started:.1f} s", highlight=False)

    def starting(self, teacher_spec: TeacherSpec, make: Callable[[], object]):
        """Open the display and make the teacher under its phase (loading a model takes a while)."""
        try:
            with self.phase(start_phase(teacher_spec)):
                return make()
        except BaseException:
            self.close()
            raise

    # -- generating --------------------------------------------------------------------------------

    def start(self, total: int) -> None:
        self.open()
        self.total = total
        self.task = self.progress.add_task("generating", total=total, detail="", generating=True)
        self.items.begin()
        self.generated.begin()

    def stream_tokens(self, count: int) -> None:
        """New tokens from a decoding step (called from the teacher's thread)."""
        self.streaming = True
        self.generated.add(count)

    def add_tokens(self, prompt: int, completion: int) -> None:
        self.answered = True
        self.tokens_in += prompt
        self.tokens_out += completion
        if not self.streaming:
            self.generated.add(completion)
        self._refresh()

    def advance(self, kept: bool, failed: bool = False) -> None:
        if kept:
            self.ok += 1
        elif failed:
            self.failed += 1
        else:
            self.bad += 1
        if self.answered:
            self.items.add()
        else:
            self.replayed += 1
        if self.task is not None:
            self.progress.advance(self.task)
        self._refresh()
        self._maybe_advise()

    def advise_once(self, advice: Callable[[GenerationProgress], str | None], after_s: float = 60.0,
                    after_items: int = 3) -> None:
        """Ask `advice` once, when the run has generated for `after_s` and answered `after_items` items;
        print the line it returns, if any."""
        self._advice, self._advise_after = advice, (after_s, after_items)

    def _maybe_advise(self) -> None:
        after_s, after_items = self._advise_after
        if self._advice is None or self.items.total < after_items or self.items.start is None \
                or self.clock() - self.items.start < after_s:
            return
        advice, self._advice = self._advice, None
        line = advice(self)
        if line:
            self.say(line)

    @property
    def done(self) -> int:
        return self.ok + self.bad + self.failed

    def items_per_s(self) -> float | None:
        return self.items.rate()

    def tokens_per_s(self) -> float | None:
        return self.generated.rate()

    def eta_s(self) -> float | None:
        rate = self.items.rate()
        return (self.total - self.done) / rate if rate else None

    def say(self, line: str) -> None:
        """One line above the bar, or on its own when the bar is off."""
        self.progress.console.print(line, highlight=False, soft_wrap=True)

    def tokens_per_item(self) -> float | None:
        """Generated tokens an answered item took, on average (every step of it)."""
        return self.tokens_out / self.items.total if self.items.total else None

    def _refresh(self, force: bool = False) -> None:
        # rich redraws 4 times a second; rebuilding the text for each of hundreds of answers a
        # second is wasted work on the event loop that also drives the requests.
        now = self.clock()
        if not self.enabled or self.task is None or (not force and now - self._shown < 0.1):
            return
        self._shown = now
        detail = f"tok {self.tokens_in:,} in / {self.tokens_out:,} out  valid {self.ok}  rejected {self.bad}"
        if self.failed:
            detail += f"  failed {self.failed}"
        self.progress.update(self.task, detail=detail)


def start_phase(teacher_spec: TeacherSpec) -> str:
    """What starting this teacher is doing, in words."""
    prefix = teacher_spec.kind
    if prefix == "local":
        if needs_conversion("local"):
            return "converting the embedded model (once, about 20 s) and loading it"
        return "loading the model"
    if prefix in ("hf", "vllm"):
        return "loading the model"
    return "starting the teacher"
