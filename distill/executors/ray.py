"""The Ray executor: a curation's steps as Ray Data tasks on a cluster, with the local executor's result.

1. read: each file of the input (and of `--against`) is split into blocks of rows, each row tagged with an
   order key (source, file, line) that stands for its place in the local executor's list;
2. prepare (`map_batches`): each block parsed and put through every step's `map_batch`; its examples travel on
   as JSON records, and the whole is kept in the object store;
3. each step's whole-set phase, through `RayRows`: a group by key is a hash partition of the rows
   (`groupby(...).map_groups`), pairs sharing a band key one row per (band, key) partitioned by key, a scan a
   `map_batches` with the shared index sent once; what comes back is small (duplicates, candidate pairs,
   sparse hits) and is decided on the driver;
4. sort out and write: each block applies the verdicts, sorts its rows out with the one result builder and
   writes its kept rows and rejects as one part file of `dataset/` and `rejected/` (JSONL or Parquet),
   returning its counts per node and reason.

Order keys make the result independent of how Ray splits and schedules blocks: ties break as locally (the
first occurrence wins, then the lowest position), so the kept set is the same. A step that declares itself
local only (`Step.local_only`) is refused before the cluster starts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from distill.curate.dataset_io import dataset_files, example_from_row, iter_rows, parquet_row
from distill.curate.minhash import bucket_pairs
from distill.curate.pipeline import Curation
from distill.curate.result import CurateResult, sort_out
from distill.curate.steps.base import Batch, Verdict, index_bits, new_batch
from distill.errors import DistillError
from distill.executors.ray_cluster import ensure_ray
from distill.formats import AUTO
from distill.owned import OwnedFolder
from distill.records import Example
from distill.rundir import DATASET_PARTS, REJECTED_PARTS

# Order key: source (0 the input, 1.. each --against) | file within the source | line (or row) number.
_SOURCE_SHIFT, _FILE_SHIFT = 56, 40
_READ_BLOCK = 5_000  # rows per block out of the reader: enough blocks for every core, few enough to schedule
_BATCH = 2_000  # rows per prepare batch: the numpy batch size of the local executor
_ROWS_PER_PARTITION = 250_000  # keyed rows per shuffle partition (~10 MB of keys)
OUTPUT_FORMATS = ("jsonl", "parquet")


class RayExecutor:
    """Runs any `Curation` whose steps may run on Ray; writes `dataset/` and `rejected/` shard folders into `out`
    (reserved there by the caller). The result's `kept` and `rejects` stay in those shards."""

    def __init__(self, out: Path, output_format: str = "jsonl", address: str | None = None,
                 rows_per_part: int = 100_000):
        if output_format not in OUTPUT_FORMATS:
            raise DistillError(f"unknown output format {output_format!r}; use one of: {', '.join(OUTPUT_FORMATS)}")
        self.out, self.output_format, self.address, self.rows_per_part = Path(out), output_format, address, rows_per_part

    def check(self, curation: Curation) -> None:
        """Refuse, in the step's own words, a list holding a step that runs only in this process."""
        if refusals := curation.local_only():
            raise DistillError(refusals[0])

    def run(self, curation: Curation, source: str | Path) -> CurateResult:
        """Curate a dataset (a file, a run directory or a folder of JSONL / Parquet shards)."""
        self.check(curation)
        sources = [dataset_files(source)] + [dataset_files(path) for path in curation.against]
        ray = ensure_ray(self.address)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # part files in input order
        # Sort-based shuffle for the groupbys: the default hash shuffle keeps aggregator actors that hold
        # CPUs, and on 2 CPUs the map tasks then waited for them: a 100,000-row groupby took 80-107 s
        # against 8 s sort-based (Ray 2.60, load average ~10).
        context.shuffle_strategy = "sort_shuffle_pull_based"
        try:
            return self._run(ray, curation, sources)
        except Exception as exc:  # a user mistake found inside a task (a bad row) is still one line
            mistake = _user_mistake(exc)
            if mistake is None:
                raise
            raise mistake from None

    def _run(self, ray, curation: Curation, sources: list[list[Path]]) -> CurateResult:
        files = [{"source": s, "file": f, "path": str(path)} for s, paths in enumerate(sources) for f, path in enumerate(paths)]
        base = (
            ray.data.from_items(files, override_num_blocks=len(files))
            .map_batches(_read_files, batch_size=1)
            .map_batches(_prepare, batch_size=_BATCH, batch_format="numpy", fn_kwargs={"curation": curation})
            .materialize()
        )
        rows = RayRows(ray, base)
        found = curation.resolve(rows)
        owned = OwnedFolder.claim(self.out, "curated")  # the caller reserved dataset/ and rejected/ in it
        for folder in (DATASET_PARTS, REJECTED_PARTS):
            owned.remove(folder)  # parts of an earlier run must not mix in
            owned.reserve(folder).mkdir(parents=True)
        counts = _gather(base.map_batches(
            _sort_out_and_write, batch_format="numpy", batch_size=self.rows_per_part,
            fn_kwargs={"verdicts": ray.put(rows.verdicts), "out": str(self.out), "output_format": self.output_format}))
        outcomes: Counter = Counter()
        for node, reached, reason, count in zip(*(counts.get(c, np.empty(0)).tolist()
                                                  for c in ("node", "reached", "reason", "count"))):
            outcomes[node or None, int(reached), reason or None] += int(count)  # counts come per block: add them up
        return curation.result(found, [], [], outcomes, references=rows.n_references)


class RayRows:
    """`Rows` kept in Ray's object store (the prepared dataset); what the whole-set phases reject is kept on the
    driver and sent to each task that needs to know what is still in play."""

    def __init__(self, ray, base):
        self.ray, self.base = ray, base
        # Which rows passed the checks, kept here (10 bytes a row): counting what is in play takes no pass
        flags = _gather(base.select_columns(["order", "protected", "reason"]))
        self.n_rows = len(flags.get("order", []))
        self._orders = flags["order"] if self.n_rows else np.empty(0, np.int64)
        self._references = flags["protected"].astype(bool) if self.n_rows else np.empty(0, bool)
        self._checked = flags["reason"] == "" if self.n_rows else np.empty(0, bool)
        self.n_references = int(np.sum(self._references))
        self.verdicts: dict[int, tuple[str, str, str]] = {}  # order -> (stage, reason, detail)
        self._out = np.empty(0, np.int64)  # sorted order keys of those rows
        self._sample = base.take_batch(1, batch_format="numpy") if self.n_rows else {}
        self.cpus = max(2, int(ray.cluster_resources().get("CPU", 2)))

    def _in_play(self, references: bool) -> dict[str, Any]:
        return {"out": self.ray.put(self._out), "references": references}

    def _reading(self, *columns: str):
        """The prepared rows with only these columns (and those that say what is in play): a task converts what
        it reads out of Arrow, and the JSON records are most of each row."""
        return self.base.select_columns(sorted({"order", "reason", "protected", *columns}))

    def _empty(self, columns: list[str]) -> Batch:
        return {c: self._sample[c][:0] if c in self._sample else np.empty(0, dtype=object) for c in columns}

    def count(self, references: bool = False) -> int:
        live = self._checked & ~_member(self._out, self._orders)
        return int(np.sum(live if references else live & ~self._references))

    def gather(self, columns: list[str], references: bool = True) -> Batch:
        got = _gather(self._reading(*columns).map_batches(_select_in_play, batch_format="numpy",
                                                          fn_kwargs={"columns": columns, **self._in_play(references)}))
        return got or self._empty(columns)

    def fetch(self, orders: np.ndarray, columns: list[str]) -> Batch:
        got = _gather(self._reading(*columns).map_batches(_select, batch_format="numpy", fn_kwargs={
            "orders": self.ray.put(np.asarray(orders, np.int64)), "columns": sorted({"order", *columns})}))
        if not got:
            return self._empty(columns)
        by_order = np.argsort(got["order"], kind="stable")
        return {c: got[c][by_order] for c in columns}

    def group(self, key: str, columns: list[str], reduce: Callable[[Batch], Batch]) -> Batch:
        partitions = max(self.cpus, -(-self.n_rows // _ROWS_PER_PARTITION))
        got = _gather(self._reading(key, *columns).map_batches(_keyed_rows, batch_format="numpy", fn_kwargs={
            "key": key, "columns": columns, "partitions": partitions, **self._in_play(True)})
            .groupby("part", num_partitions=partitions)
            .map_groups(_reduce_group, batch_format="numpy", fn_kwargs={"reduce": reduce}))
        return got or reduce(self._empty(columns))

    def pairs_sharing(self, column: str, where: str) -> np.ndarray:
        k = self._sample[column].shape[1] if self.n_rows else 1
        partitions = max(self.cpus, -(-self.n_rows * k // _ROWS_PER_PARTITION))
        pairs = _gather(self._reading(column, where).map_batches(_band_rows, batch_format="numpy", fn_kwargs={
            "column": column, "where": where, "shift": index_bits(self.n_rows), "partitions": partitions,
            **self._in_play(True)})
            .groupby("part", num_partitions=partitions).map_groups(_band_partition, batch_format="numpy"))
        if not pairs:
            return np.empty((0, 2), np.int64)
        found = np.stack([pairs["left"], pairs["right"]], axis=1).astype(np.int64)
        found = found[np.lexsort((found[:, 1], found[:, 0]))]
        return found[np.r_[True, (found[1:] != found[:-1]).any(axis=1)]]  # a pair shares several bands at most once

    def scan(self, fn: Callable[[Batch, Any], Batch], columns: list[str], shared: Any,
             references: bool = False) -> Batch:
        shared_ref = self.ray.put(shared)
        got = _gather(self._reading(*columns).map_batches(_scan, batch_format="numpy", fn_kwargs={
            "fn": fn, "columns": columns, "shared": shared_ref, **self._in_play(references)}))
        return got or fn(self._empty(columns), shared)

    def reject(self, rejects: dict[int, Verdict], stage: str) -> None:
        self.verdicts.update({order: (stage, *verdict) for order, verdict in rejects.items()})
        self._out = np.union1d(self._out, np.fromiter(rejects, dtype=np.int64, count=len(rejects)))

    def progress(self, what: str, done: int, total: int) -> None:
        """(Ray Data draws its own progress where there is a terminal.)"""


def _user_mistake(exc: BaseException | None) -> DistillError | None:
    """The `DistillError` a task raised, however Ray wrapped it (task error, user-code error, causes)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, DistillError):
            return DistillError(str(exc))
        seen.add(id(exc))
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return None


# --- tasks (pure functions of their batch; run on any node) ---------------------------------------

def _read_files(batch: dict[str, np.ndarray]):
    """Rows of each file, in blocks, tagged with their order key; yields (does not hold) the blocks."""
    for source, file_no, path in zip(batch["source"].tolist(), batch["file"].tolist(), batch["path"].tolist()):
        block: dict[str, list] = {"order": [], "line": [], "path": [], "raw": []}
        for line, row in iter_rows(Path(path)):
            block["order"].append((source << _SOURCE_SHIFT) | (file_no << _FILE_SHIFT) | line)
            block["line"].append(line)
            block["path"].append(path)
            block["raw"].append(json.dumps(row, ensure_ascii=False))
            if len(block["order"]) == _READ_BLOCK:
                yield block
                block = {k: [] for k in block}
        if block["order"]:
            yield block


def _prepare(batch: dict[str, np.ndarray], curation: Curation) -> Batch:
    """Parse a batch and put it through every step's per-batch work; its examples go on as JSON records."""
    order = batch["order"].astype(np.int64)
    examples = [example_from_row(json.loads(raw), Path(path), int(line), curation.input_format if source == 0 else AUTO)
                for raw, path, line, source in zip(batch["raw"], batch["path"], batch["line"],
                                                   (order >> _SOURCE_SHIFT).tolist())]
    prepared = curation.map_batch(new_batch(examples, order, order >> _SOURCE_SHIFT))
    del prepared["example"]
    prepared["record"] = np.array([e.model_dump_json(exclude_none=True) for e in examples], dtype=object)
    return prepared


def _get(value: Any) -> Any:
    import ray

    return ray.get(value) if isinstance(value, ray.ObjectRef) else value


def _member(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    if not len(sorted_values):
        return np.zeros(len(x), bool)
    pos = np.searchsorted(sorted_values, x).clip(0, len(sorted_values) - 1)
    return sorted_values[pos] == x


def _playing(batch: Batch, out: Any, references: bool) -> np.ndarray:
    """Rows of this batch still in play: no verdict from a check, none from a whole-set phase so far."""
    live = (batch["reason"] == "") & ~_member(_get(out), batch["order"])
    return live if references else live & ~batch["protected"]


def _select_in_play(batch: Batch, columns: list[str], out: Any, references: bool) -> Batch:
    live = _playing(batch, out, references)
    return {c: batch[c][live] for c in columns}


def _select(batch: Batch, orders: Any, columns: list[str]) -> Batch:
    chosen = _member(_get(orders), batch["order"])
    return {c: batch[c][chosen] for c in columns}


def _partition(keys: np.ndarray, partitions: int) -> np.ndarray:
    return ((keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(33)).astype(np.int64) % partitions


def _keyed_rows(batch: Batch, key: str, columns: list[str], partitions: int, out: Any, references: bool) -> Batch:
    """The rows in play, with their partition: every row of a key lands in the same one."""
    rows = _select_in_play(batch, sorted({key, *columns}), out, references)
    return {**rows, "part": _partition(rows[key], partitions)}


def _reduce_group(group: Batch, reduce: Callable[[Batch], Batch]) -> Batch:
    return reduce({c: v for c, v in group.items() if c != "part"})


def _band_rows(batch: Batch, column: str, where: str, shift: int, partitions: int, out: Any,
               references: bool) -> Batch:
    """One row per (band, key) of every row in play; keys cut to the bits the local executor compares (it packs
    each key with the row's number into one uint64)."""
    live = _playing(batch, out, references) & batch[where]
    keys = batch[column][live] >> np.uint64(shift)
    n_bands = keys.shape[1]
    return {
        "band": np.tile(np.arange(n_bands, dtype=np.int64), len(keys)),
        "key": keys.ravel(),
        "order": np.repeat(batch["order"][live], n_bands),
        "part": _partition(keys.ravel(), partitions),
    }


def _band_partition(group: Batch) -> Batch:
    """Candidate pairs of one partition: within each band, rows sharing a key (as order keys)."""
    parts: list[np.ndarray] = []
    for band in np.unique(group["band"]):
        mine = np.flatnonzero(group["band"] == band)
        ranked = mine[np.lexsort((group["order"][mine], group["key"][mine]))]
        parts += bucket_pairs(group["key"][ranked], group["order"][ranked])
    pairs = np.concatenate(parts) if parts else np.empty((0, 2), np.int64)
    return {"left": pairs[:, 0].astype(np.int64), "right": pairs[:, 1].astype(np.int64)}


def _scan(batch: Batch, fn: Callable[[Batch, Any], Batch], columns: list[str], shared: Any, out: Any,
          references: bool) -> Batch:
    return fn(_select_in_play(batch, columns, out, references), _get(shared))


def _sort_out_and_write(batch: Batch, verdicts: Any, out: str, output_format: str) -> Batch:
    """Apply the whole-set verdicts, sort the block out and write its kept rows and rejects as one part file each;
    return its yield counts."""
    verdicts = _get(verdicts)
    # Writable copies as objects: Arrow's arrays are read-only, and may come back as fixed-width strings
    batch = {**batch, **{c: batch[c].astype(object) for c in ("stage", "reason", "detail")}}
    for i, order in enumerate(batch["order"].tolist()):
        if (verdict := verdicts.get(order)) is not None:
            batch["stage"][i], batch["reason"][i], batch["detail"][i] = verdict
    records = batch["record"]
    sorted_out = sort_out(batch, lambda i: Example.model_validate_json(records[i]))
    name = f"part-{int(batch['order'][0]):016x}" if len(batch["order"]) else None
    if name:
        _write_part(Path(out) / DATASET_PARTS / name, [records[i] for i in sorted_out.kept], output_format)
        _write_part(Path(out) / REJECTED_PARTS / name,
                    [r.model_dump_json(exclude_none=True) for r in sorted_out.rejects], output_format)
    keys = list(sorted_out.outcomes)
    return {"node": np.array([k[0] or "" for k in keys], dtype=object),
            "reached": np.array([k[1] for k in keys], np.int64),
            "reason": np.array([k[2] or "" for k in keys], dtype=object),
            "count": np.array(list(sorted_out.outcomes.values()), np.int64)}


def _write_part(stem: Path, lines: list[str], output_format: str) -> None:
    if not lines:
        return
    path = stem.with_suffix("." + output_format)
    tmp = path.with_name(path.name + ".tmp")
    try:
        if output_format == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist([parquet_row(json.loads(line)) for line in lines]), tmp)
        else:
            tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        tmp.replace(path)  # a killed task never leaves half a part
    except BaseException:
        tmp.unlink(missing_ok=True)  # (the parts folder is distill's own: a next run clears what kill -9 left)
        raise


def _gather(ds) -> dict[str, np.ndarray]:
    """A small dataset's columns as arrays on the driver."""
    columns: dict[str, list[np.ndarray]] = {}
    for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
        for name, values in batch.items():
            columns.setdefault(name, []).append(values)
    return {name: np.concatenate(parts) for name, parts in columns.items()}
