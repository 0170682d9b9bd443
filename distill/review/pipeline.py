"""The review as a stage of `distill run`: queue once after generation, then wait for the gate."""

from __future__ import annotations

from distill.review.feedback import rebuild
from distill.review.gate import require_pass
from distill.review.ledger import ReviewLedger
from distill.review.model import ReviewSettings
from distill.review.queue import build_queue
from distill.rundir import RunDir


def run(run_dir: RunDir, settings: ReviewSettings | None, force: bool = False, say=print) -> None:
    """Build the queue a `review:` section asks for (once), then stop (ReviewPending) until the gate
    passes; once it passes (or is forced) the run's files are rebuilt from the review (`feedback.rebuild`)."""
    with ReviewLedger.open(run_dir.root) as ledger:
        has_queue = ledger.has_queue()
        stored = ledger.settings() if has_queue else None
        if stored is not None and settings is not None:
            # The gate follows the config; the queue's sampling stays as it was built.
            ledger.save_settings(stored.model_copy(update=settings.model_dump(
                include={"threshold", "confidence", "interval"})))
    if settings is None and not has_queue:
        return
    if not has_queue:
        report = build_queue(run_dir.root, settings)
        say(f"review: queued {report.queued} of {report.population} items ({report.risk} for a risk signal, "
            f"{report.leaves} leaves)")
    result = require_pass(run_dir.root, force=force, say=say)
    say(f"review: {result.message}")
    rebuild(run_dir, say=say)
