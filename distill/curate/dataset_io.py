"""Read datasets to curate: our own `dataset.jsonl`, or common instruction formats converted to it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from distill.errors import DistillError, explain
from distill.records import Example, iter_jsonl
from distill.rundir import DATASET, DATASET_PARTS

SHARD_SUFFIXES = (".jsonl", ".ndjson", ".parquet")


def dataset_files(path: str | Path) -> list[Path]:
    """The files a dataset is read from, in order: a JSONL or Parquet file as given; in a folder, its
    `dataset.jsonl`, else its `dataset/` shard folder, else the folder's own shards (what Ray, Spark or
    datatrove write: part files of JSONL or Parquet), sorted by name."""
    path = Path(path)
    if not path.exists():
        raise DistillError("file not found", path=path)
    if path.is_dir():
        if (path / DATASET).is_file():
            return [path / DATASET]
        folder = path / DATASET_PARTS if (path / DATASET_PARTS).is_dir() else path
        shards = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SHARD_SUFFIXES)
        if not shards:
            raise DistillError("no dataset.jsonl, dataset/ shards or .jsonl/.parquet files in this folder; "
                               "pass a run directory, a dataset file or a folder of shards", path=path)
        return shards
    if path.suffix.lower() not in SHARD_SUFFIXES:
        raise DistillError("expected a .jsonl or .parquet dataset, a folder of them, or a run directory", path=path)
    return [path]


def iter_rows(path: Path):
    """(line or row number, row dict) of one JSONL or Parquet file."""
    if path.suffix.lower() != ".parquet":
        yield from iter_jsonl(path)
        return
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise DistillError("reading Parquet needs pyarrow: pip install 'distill[ray]'", path=path) from None
    number = 0
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=10_000)
        for batch in batches:
            for row in batch.to_pylist():
                number += 1
                yield number, drop_nulls(row)
    except (pa.ArrowException, OSError) as exc:  # a truncated or overwritten file: the footer or a page
        raise unreadable_parquet(exc, path, number) from None


def unreadable_parquet(exc: Exception, path: Path, rows_read: int = 0) -> DistillError:
    """One line for a Parquet file pyarrow cannot read (truncated, overwritten, not Parquet at all)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return explain(exc, path)  # the file system's error (permission denied ...), not the file's
    after = f" after row {rows_read}" if rows_read else ""
    reason = " ".join(str(exc).split())[:200]
    return DistillError(f"not a readable Parquet file{after} ({reason}); write the file again", path=path)


def parquet_row(value):
    """A row as Parquet can store it: without nulls and empty maps (Parquet has no struct without
    fields); read back, both come out as the field's default."""
    if isinstance(value, dict):
        return {k: parquet_row(v) for k, v in value.items() if v is not None and v != {}}
    if isinstance(value, list):
        return [parquet_row(v) for v in value]
    return value


def drop_nulls(value):
    """A Parquet row without its nulls: a Parquet file gives every row every column (and every struct
    field) of its file, where a JSONL row leaves out what it does not have."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


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
    """Every row of a dataset (a file, a run directory or a folder of shards) as an `Example`; ids are
    made from content when a row has none."""
    return [example_from_row(row, file, number) for file in dataset_files(path) for number, row in iter_rows(file)]


def example_from_row(row: dict[str, Any], path: Path, number: int) -> Example:
    """One row as an `Example` (Alpaca and prompt/completion rows converted); a bad row is a
    `DistillError` naming file and line."""
    row = _as_messages(row)
    if "messages" not in row:
        raise DistillError(
            "missing field 'messages' (also accepted: instruction/output, prompt/completion)", path=path, line=number
        )
    if "id" not in row:
        digest = hashlib.sha256(json.dumps(row["messages"], sort_keys=True).encode()).hexdigest()[:16]
        row = {**row, "id": f"{path.stem}-{number}-{digest}"}
    try:
        return Example.model_validate(row)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DistillError(f"field {where}: {first['msg']}", path=path, line=number) from None


def dedup_text(example: Example, on: str = "conversation") -> str:
    """The text dedup and decontamination compare: user and assistant turns, not the system prompt."""
    if on == "prompt":
        return example.prompt
    if on == "response":
        return example.response
    return "\n".join(m.content for m in example.messages if m.role != "system")
