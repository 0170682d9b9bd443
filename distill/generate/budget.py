"""The spend cap (`--budget-usd`) and the dry-run estimate (`--dry-run`).

The cap is hard: before a request is sent, its worst case (prompt estimated high, every allowed
output token) is reserved; a request whose reservation could take spent + in flight past the cap is
not sent. The cap covers the whole run directory, across resumes, so re-running cannot reset it.

Items that start finish: an item starts only when the budget can also hold the worst case of its
later steps (a QA item asks twice), learnt from the items before it; the first item runs alone to
learn it. Without this every item's first step went out before any second step, and a small cap
was spent with nothing finished (`--budget-usd 0.01 --limit 10`: 53% spent, 0 items).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from distill.errors import BudgetExceeded
from distill.records import PlanItem
from distill.tasks.parse import Rejected
from distill.taxonomy import LoadedTaxonomy
from distill.teachers.base import GenerationRequest, GenerationResult
from distill.teachers.http.cost import PriceTable, estimate_prompt_tokens
from distill.teachers.registry import TeacherSpec


class BudgetStop(Exception):
    """Raised instead of sending a request the budget cannot cover; the item stays pending."""


@dataclass
class ItemHold:
    """What the budget set aside for one started item, and what its requests reserved so far."""

    left: float
    reserved: dict[str, float] = field(default_factory=dict)  # step -> worst case reserved


class Budget:
    def __init__(self, cap_usd: float, spent_usd: float = 0.0):
        self.cap, self.spent, self.in_flight = cap_usd, spent_usd, 0.0
        self.held = 0.0  # set aside for the requests that started items have still to send
        self.step_worst: dict[str, float] = {}  # the most one request of each step reserved
        self.running = 0  # items started and not ended
        self.stopped = False
        self._changed = asyncio.Condition()

    @property
    def item_worst(self) -> float | None:
        return sum(self.step_worst.values()) if self.step_worst else None

    async def start_item(self) -> ItemHold:
        """Wait until the budget can carry one more item to its end; BudgetStop when it never will."""
        async with self._changed:
            while True:
                need = self.item_worst
                if self.stopped:
                    raise BudgetStop()
                if need is None and self.running == 0:
                    need = 0.0  # the first item alone: its requests reserve as they go, and teach the rest
                    break
                if need is not None and self.spent + self.in_flight + self.held + need <= self.cap:
                    break
                if self.running == 0:  # nothing left to settle: it will never fit
                    self.stop()
                    raise BudgetStop()
                await self._changed.wait()
            self.held += need
            self.running += 1
            return ItemHold(need)

    async def end_item(self, hold: ItemHold) -> None:
        async with self._changed:
            self.held -= hold.left
            self.running -= 1
            for step, worst in hold.reserved.items():
                self.step_worst[step] = max(self.step_worst.get(step, 0.0), worst)
            self._changed.notify_all()

    def reserve(self, worst_usd: float, hold: ItemHold | None = None, step: str = "") -> float:
        taken = min(worst_usd, hold.left) if hold is not None else 0.0
        if self.stopped or self.spent + self.in_flight + self.held - taken + worst_usd > self.cap:
            self.stop()  # stop dispatching for good: later, cheaper requests would starve items
            raise BudgetStop()
        self.in_flight += worst_usd
        if hold is not None:
            hold.left -= taken
            self.held -= taken
            hold.reserved[step] = hold.reserved.get(step, 0.0) + worst_usd
        return worst_usd

    def settle(self, reserved: float, cost_usd: float | None) -> None:
        self.in_flight -= reserved
        self.spent += cost_usd or 0.0

    def stop(self) -> None:
        self.stopped = True
        # Items waiting to start hear it at their next wake-up: end_item wakes them all, and so does this
        # when a loop is running (a waiter's next look at `stopped` raises BudgetStop).
        try:
            asyncio.get_running_loop().create_task(self._wake_all())
        except RuntimeError:
            pass

    async def _wake_all(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def error(self, pending: int) -> BudgetExceeded:
        return BudgetExceeded(
            f"budget of ${self.cap:.4f} reached: spent ${self.spent:.4f}; {pending} plan items not finished are "
            "saved as pending; raise --budget-usd and run the same command again to continue"
        )


@dataclass
class Estimate:
    items: int
    calls: int
    prompt_tokens: int
    max_completion_tokens: int
    cost_usd: float | None  # at most, if every reply used all its max_tokens; None for an unknown price
    cost_typical_usd: float | None  # replies at half their max_tokens
    unestimated: list[str] = field(default_factory=list)  # steps after one whose schema is Python not imported


async def estimate_items(loaded: LoadedTaxonomy, items: list[PlanItem], teacher_spec: TeacherSpec,
                         prices: PriceTable, batch: bool = False) -> Estimate:
    """Render every request the run would send, answering each with a stand-in instead of a teacher."""
    task = loaded.task
    seen: list[GenerationRequest] = []

    async def stand_in(step: str, request: GenerationRequest) -> GenerationResult:
        seen.append(request)
        return GenerationResult(key=request.key, text=task.stand_in_answer(step), finish_reason="stop")

    for item in items:
        try:
            await task.run(loaded, item, teacher_spec.text, stand_in)
        except Rejected:
            pass
    prompt = sum(estimate_prompt_tokens(r.messages, r.tools) for r in seen)
    completion = sum(r.sampling.max_tokens for r in seen)
    model = teacher_spec.model
    # A dry run never imports the taxonomy's Python: past a step whose schema is a model in a file, the stand-in
    # answer has no known shape, and the steps after it are neither rendered nor counted.
    deferred = next((n for n, step in enumerate(task.steps) if step.schema is not None and step.schema.deferred), None)
    return Estimate(items=len(items), calls=len(seen), prompt_tokens=prompt, max_completion_tokens=completion,
                    cost_usd=prices.cost(model, prompt, completion, batch=batch),
                    cost_typical_usd=prices.cost(model, prompt, completion // 2, batch=batch),
                    unestimated=[step.name for step in task.steps[deferred + 1:]] if deferred is not None else [])


def print_estimate(console, estimate: Estimate) -> None:
    def usd(value: float | None) -> str:
        return "unknown (no price for this model; add one under prices: in --api-config)" if value is None \
            else f"${value:,.4f}"

    console.print(f"dry run: {estimate.items} items to generate, {estimate.calls} teacher calls; nothing was sent")
    console.print(f"  prompt tokens   ~{estimate.prompt_tokens:,} (estimated high, no tokenizer)")
    console.print(f"  output tokens   at most {estimate.max_completion_tokens:,} (every reply at max_tokens)")
    console.print(f"  cost            at most {usd(estimate.cost_usd)}; typically {usd(estimate.cost_typical_usd)}")
    if estimate.unestimated:
        console.print(f"  not counted     step(s) {', '.join(estimate.unestimated)}: they read a step whose schema is "
                      "a Python model, which only generating imports", highlight=False)
