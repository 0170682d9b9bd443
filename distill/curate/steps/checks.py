"""The content checks as a step: each example alone, against `curate/checks.py`'s ordered list."""

from __future__ import annotations

import numpy as np

from distill.curate.checks import CheckSettings, first_failure
from distill.curate.steps.base import Batch, Step, Verdict


class Checks(Step):
    """Rejects an example at its first failing check. References (--against rows) are not checked: they are
    only compared with."""

    name = "checks"
    stage = "check"

    def __init__(self, settings: CheckSettings):
        self.settings = settings

    def map_batch(self, batch: Batch) -> Batch:
        examples = batch["example"]
        for i in np.flatnonzero(~batch["protected"]).tolist():
            failure = first_failure(examples[i], self.settings)
            if failure is not None:
                self.reject(batch, i, Verdict(failure.reason, failure.detail))
        return batch
