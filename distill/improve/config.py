"""The `improve:` section of a `distill run` config: how `distill improve` plans its rounds."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from distill.improve.plan import MASTERED
from distill.userfiles import load_yaml_mapping, located


class ImproveSettings(BaseModel):
    """- new_items: new plan items a round, split over the leaves by need (None: half the taxonomy's plan).
    - mastered: a leaf whose interval's lower end is at or above this gets nothing new.
    - attempts_per_leaf: training items of each targeted leaf the student answers before a round (its failures
      condition the new items).
    - stop_early: start no round after one in which no leaf improved past its interval.
    - dpo: after SFT, also train on preference pairs from the student's failed attempts (the integrator's hook:
      distill/improve/rounds.py names the place)."""

    model_config = ConfigDict(extra="forbid")

    new_items: int | None = Field(None, gt=0)
    mastered: float = Field(MASTERED, gt=0, le=1)
    attempts_per_leaf: int = Field(8, ge=0)
    stop_early: bool = True
    dpo: bool = False


def load_improve_settings(path: Path, section: dict) -> ImproveSettings:
    """The config's `improve:` section, checked, its mistakes located at their line."""
    try:
        return ImproveSettings(**section)
    except ValidationError as exc:
        data = load_yaml_mapping(path, "run config", "taxonomy:, out:, generate:, train:, eval: and improve:")
        raise located(exc, data, path, prefix=("improve",), page="docs/improve.md#the-improve-section") from None
