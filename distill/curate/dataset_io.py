"""Read datasets to curate: our own `dataset.jsonl`, or common instruction formats converted to it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from distill.errors import DistillError
from distill.records import Example, iter_jsonl


def dataset_file(path: str | Path) -> Path:
    """A JSONL file as given, or the `dataset.jsonl` inside a run directory."""
    path = Path(path)
    if path.is_dir():
        inside = path / "dataset.jsonl"
        if not inside.exists():
            raise DistillError("no dataset.jsonl in this folder; pass a run directory or a JSONL file", path=path)
        return inside
    if not path.exists():
        raise DistillError("file not found", path=path)
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        raise DistillError("expected a .jsonl dataset file or a run directory", path=path)
    return path


def _as_messages(row: dict[str, Any]) -> dict[str, Any]:
    """Alpaca (instruction/input/output) and prompt/completion rows become chat messages."""
    if "messages" in row:
        return row
    if "instruction" in row and "output" in row:
        prompt = row["instruction"] + (("\n\n" + row["input"]) if row.get("input") else "")
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]
    elif "prompt" in row and ("completion" in row or "response" in row):
        answer = row.get("completion", row.get("response"))
        messages = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": answer}]
    else:
        return row
    rest = {k: v for k, v in row.items() if k in ("id", "meta")}
    return {**rest, "messages": messages}


def load_examples(path: str | Path) -> list[Example]:
    """Every line as an `Example`; ids are made from content when a row has none."""
    path = dataset_file(path)
    examples = []
    for number, row in iter_jsonl(path):
        row = _as_messages(row)
        if "messages" not in row:
            raise DistillError(
                "missing field 'messages' (also accepted: instruction/output, prompt/completion)", path=path, line=number
            )
        if "id" not in row:
            digest = hashlib.sha256(json.dumps(row["messages"], sort_keys=True).encode()).hexdigest()[:16]
            row = {**row, "id": f"{path.stem}-{number}-{digest}"}
        try:
            examples.append(Example.model_validate(row))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise DistillError(f"field {where}: {first['msg']}", path=path, line=number) from None
    return examples


def dedup_text(example: Example, on: str = "conversation") -> str:
    """The text dedup and decontamination compare: user and assistant turns, not the system prompt."""
    if on == "prompt":
        return example.prompt
    if on == "response":
        return example.response
    return "\n".join(m.content for m in example.messages if m.role != "system")
