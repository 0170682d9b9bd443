"""The text dedup and decontamination compare: the whole conversation, the prompt or the response."""

from __future__ import annotations

from typing import Literal

import numpy as np

from distill.curate.dataset_io import dedup_text
from distill.curate.steps.base import Batch, Step, in_play


class ComparedText(Step):
    """Adds the `text` column. A row already rejected gets "": it is never hashed or shingled (one runaway 6 MB
    answer took ~830 MB that way)."""

    name = "compared text"

    def __init__(self, on: Literal["conversation", "prompt", "response"] = "conversation"):
        self.on = on

    def map_batch(self, batch: Batch) -> Batch:
        live = in_play(batch)
        text = np.empty(len(live), dtype=object)
        for i, (example, keep) in enumerate(zip(batch["example"], live.tolist())):
            text[i] = dedup_text(example, self.on) if keep else ""
        batch["text"] = text
        return batch
