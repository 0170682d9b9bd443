"""The spend cap (`--budget-usd`) and the dry-run estimate (`--dry-run`).

The cap is hard: before a request is sent, its worst case (prompt estimated high, every allowed
output token) is reserved; a request whose reservation could take spent + in flight past the cap is
not sent. The cap covers the whole run directory, across resumes, so re-running cannot reset it.
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.errors import BudgetExceeded
from distill.tasks.parse import Rejected
from distill.records import PlanItem
from distill.taxonomy import LoadedTaxonomy
from distill.teachers.base import GenerationRequest, GenerationResult
from distill.teachers.cost import PriceTable, estimate_prompt_tokens


class BudgetStop(Exception):
    """Raised instead of sending a request the budget cannot cover; the item stays pending."""


class Budget:
    def __init__(self, cap_usd: float, spent_usd: float = 0.0):
        self.cap, self.spent, self.in_flight = cap_usd, spent_usd, 0.0
        self.stopped = False

    def reserve(self, worst_usd: float) -> float:
        if self.stopped or self.spent + self.in_flight + worst_usd > self.cap:
            self.stopped = True  # stop dispatching for good: later, cheaper requests would starve items
            raise BudgetStop()
        self.in_flight += worst_usd
        return worst_usd

    def settle(self, reserved: float, cost_usd: float | None) -> None:
        self.in_flight -= reserved
        self.spent += cost_usd or 0.0

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


async def estimate_items(loaded: LoadedTaxonomy, items: list[PlanItem], teacher_spec: str,
                         prices: PriceTable, batch: bool = False) -> Estimate:
    """Render every request the run would send, answering each with a stand-in instead of a teacher."""
    task = loaded.task
    seen: list[GenerationRequest] = []

    async def stand_in(step: str, request: GenerationRequest) -> GenerationResult:
        seen.append(request)
        return GenerationResult(key=request.key, text=task.stand_in_answer(step), finish_reason="stop")

    for item in items:
        try:
            await task.run(loaded, item, teacher_spec, stand_in)
        except Rejected:
            pass
    prompt = sum(estimate_prompt_tokens(r.messages) for r in seen)
    completion = sum(r.sampling.max_tokens for r in seen)
    model = teacher_spec.partition(":")[2]
    return Estimate(items=len(items), calls=len(seen), prompt_tokens=prompt, max_completion_tokens=completion,
                    cost_usd=prices.cost(model, prompt, completion, batch=batch),
                    cost_typical_usd=prices.cost(model, prompt, completion // 2, batch=batch))


def print_estimate(console, estimate: Estimate) -> None:
    def usd(value: float | None) -> str:
        return "unknown (no price for this model; add one under prices: in --api-config)" if value is None \
            else f"${value:,.4f}"

    console.print(f"dry run: {estimate.items} items to generate, {estimate.calls} teacher calls; nothing was sent")
    console.print(f"  prompt tokens   ~{estimate.prompt_tokens:,} (estimated high, no tokenizer)")
    console.print(f"  output tokens   at most {estimate.max_completion_tokens:,} (every reply at max_tokens)")
    console.print(f"  cost            at most {usd(estimate.cost_usd)}; typically {usd(estimate.cost_typical_usd)}")
