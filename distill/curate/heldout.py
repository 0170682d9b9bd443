"""Load held-out evaluation sets (JSONL, JSON, CSV, Parquet, a `datasets` folder, a Hub-layout folder) into text
items. Rows of a chat or instruction format (distill/formats.py) give their user turns unless fields are named."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from distill.curate.dataset_io import hub_files, iter_rows, unreadable_parquet
from distill.errors import DistillError
from distill.formats import detect, row_messages
from distill.records import HELDOUT_SUFFIXES, HeldoutSource, iter_jsonl
from distill.userfiles import read_text

# How a user names the fields of a set, wherever they listed it.
NAME_FIELDS = "--heldout PATH:field1,field2 on the command line, `fields: [...]` where a YAML file lists the set"
# Tried in order when the user names no fields.
DEFAULT_FIELDS = ["question", "QUESTION", "prompt", "instruction", "input", "text", "problem"]


@dataclass
class HeldoutItem:
    id: str
    text: str
    source: str


def parse_heldout_option(value: str) -> HeldoutSource:
    """`PATH` or `PATH:field1,field2` (the form `--heldout` takes on the command line)."""
    path, sep, fields = value.rpartition(":")
    if sep and path and "/" not in fields and not Path(value).exists():
        try:
            return HeldoutSource(path=path, fields=fields.split(","))
        except ValidationError as exc:
            raise DistillError(f"--heldout {value!r}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    return HeldoutSource(path=value)


def check_source(source: HeldoutSource, option: str = "--heldout") -> None:
    """A held-out source that exists and whose format is known, or one line: checked before anything is written,
    so a mistyped --heldout leaves no output folder behind."""
    if not Path(source.path).exists():
        raise DistillError(f"{option}: file not found ({Path(source.path).resolve()}; a relative path starts from the "
                           "current folder)", path=source.path)
    _format_of(source)


def _format_of(source: HeldoutSource) -> str:
    if source.format != "auto":
        return source.format
    path = Path(source.path)
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            return "datasets"
        if hub_files(path, "test"):
            return "hub"
        raise DistillError(
            "a folder, but not a `datasets` save_to_disk folder (no dataset_info.json) nor one of .jsonl/.parquet "
            "files; name a file instead",
            path=path,
        )
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix.lower() not in HELDOUT_SUFFIXES:
        raise DistillError(
            f"unknown held-out format {suffix or '(no extension)'!r}; use .jsonl, .json, .csv, .parquet or a datasets folder",
            path=path,
        )
    return HELDOUT_SUFFIXES[suffix.lower()]


def _rows_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    return list(iter_jsonl(path))


def _rows_json(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        data = json.loads(read_text(path, "held-out file"))
    except json.JSONDecodeError as err:
        raise DistillError(f"not valid JSON ({err.msg}); for one object a line, name the file .jsonl", path=path, line=err.lineno) from None
    if isinstance(data, dict):  # keyed by id, as PubMedQA ships
        return [(i, {"id": key, **value}) for i, (key, value) in enumerate(data.items(), 1) if isinstance(value, dict)]
    if isinstance(data, list):
        return [(i, row) for i, row in enumerate(data, 1) if isinstance(row, dict)]
    raise DistillError("expected a JSON list of objects or an object of objects", path=path)


def _rows_csv(path: Path, fields: list[str] | None) -> list[tuple[int, dict[str, Any]]]:
    with io.StringIO(read_text(path, "held-out file"), newline="") as handle:  # not UTF-8: file:line
        sample = handle.read(65536)
        handle.seek(0)
        dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
        numbered = fields is not None and all(f.isdigit() for f in fields)
        if fields is None:
            try:
                numbered = not csv.Sniffer().has_header(sample)
            except csv.Error:
                numbered = True
        reader = csv.reader(handle, dialect)
        rows: list[tuple[int, dict[str, Any]]] = []
        header: list[str] | None = None
        try:
            for number, cells in enumerate(reader, 1):
                if not cells:
                    continue
                if numbered:
                    rows.append((number, {str(i): c for i, c in enumerate(cells)}))
                elif header is None:
                    header = cells
                else:
                    rows.append((number, dict(zip(header, cells))))
        except csv.Error as err:
            raise DistillError(f"not valid CSV ({err})", path=path, line=reader.line_num) from None
    return rows


def _rows_table(table, path: Path) -> list[tuple[int, dict[str, Any]]]:
    return [(i, row) for i, row in enumerate(table.to_pylist(), 1)]


def _rows_parquet(path: Path) -> list[tuple[int, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return _rows_table(pq.read_table(path), path)
    except (pa.ArrowException, OSError) as exc:  # a truncated or overwritten file
        raise unreadable_parquet(exc, path) from None


def _rows_datasets(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        from datasets import DatasetDict, load_from_disk
    except ImportError:
        raise DistillError("reading a `datasets` folder needs `pip install datasets` (the train extra)", path=path) from None
    try:
        data = load_from_disk(str(path))
        if isinstance(data, DatasetDict):
            split = "test" if "test" in data else next(iter(data))
            data = data[split]
        return [(i, row) for i, row in enumerate(data, 1)]
    except (OSError, ValueError) as exc:  # no state.json, an .arrow file cut short (pyarrow's ValueError), bad JSON
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DistillError(f"not a readable `datasets` folder ({reason}); save it again with save_to_disk",
                           path=path) from None


def _rows_hub(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The test split's JSONL and Parquet files of a folder laid out as on the Hub (all of them when none is
    named test), rows numbered through the files in order."""
    rows = [row for file in hub_files(path, "test") for _, row in iter_rows(file)]
    return list(enumerate(rows, 1))


def _text_of(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(_text_of(v) for v in value)
    if isinstance(value, dict):
        return " ".join(_text_of(v) for v in value.values())
    return "" if value is None else str(value)


def load_heldout(source: HeldoutSource) -> list[HeldoutItem]:
    """Every row of the file as a text item made of the chosen fields."""
    path = Path(source.path)
    if not path.exists():
        raise DistillError(f"held-out file not found ({path.resolve()}); a relative --heldout path starts from the "
                           "current folder, one in a taxonomy from the taxonomy file's folder", path=path)
    fmt = _format_of(source)
    readers = {
        "jsonl": lambda: _rows_jsonl(path),
        "json": lambda: _rows_json(path),
        "csv": lambda: _rows_csv(path, source.fields),
        "parquet": lambda: _rows_parquet(path),
        "datasets": lambda: _rows_datasets(path),
        "hub": lambda: _rows_hub(path),
    }
    rows = readers[fmt]()
    if not rows:
        raise DistillError("the held-out file has no rows", path=path)
    fields = source.fields
    name = source.name or path.stem
    if fields is None and fmt != "csv" and detect(rows[0][1]):
        return _conversation_items(rows, path, name)
    if fields is None:
        if fmt == "csv" and all(k.isdigit() for k in rows[0][1]):
            fields = list(rows[0][1])
        else:
            fields = [f for f in DEFAULT_FIELDS if f in rows[0][1]][:1]
            if not fields:
                raise DistillError(
                    f"no text field to match; name one ({NAME_FIELDS}; columns: {', '.join(map(str, rows[0][1]))})",
                    path=path,
                )
    items = []
    for number, row in rows:
        missing = [f for f in fields if f not in row]
        if missing:
            raise DistillError(
                f"field {missing[0]!r} missing (has: {', '.join(map(str, row))}); name the right fields ({NAME_FIELDS})",
                path=path,
                line=number,
            )
        text = " ".join(_text_of(row[f]) for f in fields).strip()
        if text:
            row_id = row.get("id", number)
            items.append(HeldoutItem(id=f"{name}:{row_id}", text=text, source=str(path)))
    return items


def _conversation_items(rows: list[tuple[int, dict[str, Any]]], path: Path, name: str) -> list[HeldoutItem]:
    """Chat or instruction rows (distill/formats.py): each row's user turns are what a training example must not
    copy (a held-out answer alone says little)."""
    items = []
    for number, row in rows:
        turns = row_messages(row, path, number, force_with=f"the fields to compare ({NAME_FIELDS})")
        text = "\n".join(_text_of(turn.get("content")) for turn in turns if turn.get("role") == "user").strip()
        if text:
            items.append(HeldoutItem(id=f"{name}:{row.get('id', number)}", text=text, source=str(path)))
    return items


def load_all(sources: list[HeldoutSource]) -> list[HeldoutItem]:
    items: list[HeldoutItem] = []
    for source in sources:
        items.extend(load_heldout(source))
    return items
