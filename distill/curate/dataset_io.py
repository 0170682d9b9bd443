"""Read datasets to curate: our own `dataset.jsonl`, or common instruction formats converted to it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from distill.curate.conversation import turn_text
from distill.errors import DistillError, explain
from distill.formats import AUTO, as_example_row
from distill.records import Example, iter_jsonl
from distill.rundir import DATASET, DATASET_PARTS

SHARD_SUFFIXES = (".jsonl", ".ndjson", ".parquet")


SAVED_MARKERS = ("state.json", "dataset_dict.json")  # what `datasets.save_to_disk` writes (a Dataset, a DatasetDict)


def dataset_files(path: str | Path) -> list[Path]:
    """The files a dataset is read from, in order: a JSONL or Parquet file as given; in a folder, its
    `dataset.jsonl`, else the folder itself when `datasets.save_to_disk` wrote it, else its `dataset/` shard
    folder, else the folder's own shards (what Ray, Spark or datatrove write: part files of JSONL or Parquet),
    sorted by name, else the train split's shards as the Hugging Face Hub lays them out (`data/train-*.parquet`)."""
    path = Path(path)
    if not path.exists():
        raise DistillError("file not found", path=path)
    if path.is_dir():
        if (path / DATASET).is_file():
            return [path / DATASET]
        if saved_by_datasets(path):
            return [path]
        folder = path / DATASET_PARTS if (path / DATASET_PARTS).is_dir() else path
        shards = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SHARD_SUFFIXES)
        shards = of_split(shards, folder, "train") or hub_files(path, "train")
        if not shards:
            raise DistillError("no dataset.jsonl, dataset/ shards, .jsonl/.parquet files or `datasets` save_to_disk "
                               "files in this folder; pass a run directory, a dataset file or a folder of shards",
                               path=path)
        return shards
    if path.suffix.lower() not in SHARD_SUFFIXES:
        raise DistillError("expected a .jsonl or .parquet dataset, a folder of them, or a run directory", path=path)
    return [path]


def check_first_rows(path: str | Path, input_format: str = AUTO) -> None:
    """The first row of each file of a dataset is of a format distill reads, or one line naming it: a file of
    the wrong format stops the command before its output folder is made (a later bad row stops it there)."""
    for file in dataset_files(path):
        for number, row in iter_rows(file):
            example_from_row(row, file, number, input_format)
            break


def saved_by_datasets(folder: Path) -> bool:
    return any((folder / marker).is_file() for marker in SAVED_MARKERS)


def hub_files(folder: Path, split: str) -> list[Path]:
    """JSONL and Parquet files below `folder` as a Hub dataset repository holds them (`data/train-00000-of-00002.
    parquet`, `default/train/0000.parquet`, `train.jsonl`): those of `split` when any file names it, else all."""
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SHARD_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    return of_split(found, folder, split)


def of_split(files: list[Path], folder: Path, split: str) -> list[Path]:
    """The files whose name or folder names `split` (train, train-00000-of-00002, train.jsonl), or all of them
    when none does (part files of Ray or Spark name no split)."""
    def names(path: Path) -> bool:
        parts = [*path.relative_to(folder).parent.parts, path.stem]
        return any(part == split or part.startswith((f"{split}-", f"{split}.", f"{split}_")) for part in parts)

    return [p for p in files if names(p)] or files


def iter_rows(path: Path, split: str = "train"):
    """(line or row number, row dict) of one JSONL or Parquet file, or of a `datasets.save_to_disk` folder (its
    `split` when it holds several, else its first)."""
    if path.is_dir():
        yield from _saved_rows(path, split)
        return
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


def _saved_rows(path: Path, split: str):
    try:
        from datasets import DatasetDict, load_from_disk
    except ImportError:
        raise DistillError("reading a `datasets` folder needs `pip install datasets` (the train extra)",
                           path=path) from None
    try:
        data = load_from_disk(str(path))
    except (OSError, ValueError) as exc:  # no state.json, an .arrow file cut short (pyarrow's ValueError), bad JSON
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DistillError(f"not a readable `datasets` folder ({reason}); save it again with save_to_disk",
                           path=path) from None
    if isinstance(data, DatasetDict):
        data = data[split if split in data else next(iter(data))]
    for number, row in enumerate(data, 1):
        yield number, drop_nulls(row)


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


def load_examples(path: str | Path, input_format: str = AUTO) -> list[Example]:
    """Every row of a dataset (a file, a run directory or a folder of shards) as an `Example`; ids are
    made from content when a row has none. `input_format`: the row format (distill/formats.py), else detected."""
    return [example_from_row(row, file, number, input_format)
            for file in dataset_files(path) for number, row in iter_rows(file)]


def example_from_row(row: dict[str, Any], path: Path, number: int, input_format: str = AUTO) -> Example:
    """One row as an `Example` (ShareGPT, Alpaca and prompt/completion rows converted, every turn kept); a bad
    row is a `DistillError` naming file and line."""
    row = as_example_row(row, path, number, input_format)
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
    """The text dedup and decontamination compare: every turn but the system prompt, a turn's tool calls written
    out after its text (`curate/conversation.py`'s `turn_text`); "prompt": every user turn, "response": every
    assistant turn. A single-turn example's text is its turns' content, as it was before conversations."""
    if on == "prompt":
        return "\n".join(m.content for m in example.messages if m.role == "user")
    if on == "response":
        return "\n".join(turn_text(m) for m in example.messages if m.role == "assistant")
    return "\n".join(turn_text(m) for m in example.messages if m.role != "system")
