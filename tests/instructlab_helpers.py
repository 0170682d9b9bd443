"""InstructLab qna.yaml files written in a test: the taxonomy tests' and the owned-outputs tests' trees."""

from __future__ import annotations

from pathlib import Path

import yaml

POEMS = [{"question": f"Write a two-line poem about {theme}.", "answer": f"The {theme} came by,\nand so did I."}
         for theme in ("rain", "the sun", "snow", "the wind", "fog")]


def skill(task: str, seeds: list[dict]) -> dict:
    return {"version": 3, "created_by": "tester", "task_description": task, "seed_examples": seeds}


def write(root: Path, folder: str, data: dict | str) -> Path:
    path = root / folder / "qna.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path
