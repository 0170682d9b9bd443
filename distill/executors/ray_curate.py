"""`distill curate --executor ray`: the curation stage on a Ray cluster, with the local path's result.

Every step is one of `distill/curate`'s own per-batch functions run as a Ray Data task:

1. read: each file of the input (and of `--against`) is split into blocks of rows, each row tagged
   with an order key (source, file, line) that stands for its position in the local path's list;
2. prepare (`map_batches`): parse, checks, the dedup text, its exact key (xxh3) and MinHash band keys;
3. exact dedup: rows hash-partitioned by exact key (`groupby(...).map_groups`), first occurrence kept
   in each partition;
4. near dedup: one row per (band, key) of each live document, hash-partitioned by band key, buckets
   found inside each partition (`minhash.bucket_pairs`, as locally); the candidate pairs, a small set,
   come back to the driver, which confirms them (exact Jaccard of the few texts involved) and groups
   them (connected components);
5. decontamination: each block scanned against the held-out index (`scan_ngrams`), the sparse hits
   resolved on the driver (`resolve_hits`: stems need counts over the whole set);
6. label and write: each block writes its kept rows and its rejects as one part file of `dataset/`
   and `rejected/` (JSONL or Parquet) and returns its counts per node and reason.

Order keys make the result independent of how Ray splits and schedules blocks: ties break as locally
(the first occurrence wins, then the lowest position), so the kept set is the same.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from distill.curate.checks import first_failure
from distill.curate.dataset_io import dataset_files, dedup_text, example_from_row, iter_rows, parquet_row
from distill.curate.decontaminate import build_index, resolve_hits, scan_ngrams
from distill.curate.exact import exact_keys, find_exact_duplicates
from distill.curate.heldout import load_all
from distill.curate.minhash import bucket_pairs, confirm_pairs, group_duplicates, resolve_bands, sign_batch, unique_pairs
from distill.curate.pipeline import (
    ContaminationRow, CurateConfig, CurateResult, DuplicateRow, _quality, KEPT, STAGES_PASSED, node_stats_from_outcomes,
)
from distill.errors import DistillError
from distill.executors.ray_cluster import ensure_ray
from distill.owned import OwnedFolder
from distill.records import Example, Reject
from distill.rundir import DATASET_PARTS, REJECTED_PARTS

# Order key: source (0 the input, 1.. each --against) | file within the source | line (or row) number.
_SOURCE_SHIFT, _FILE_SHIFT = 56, 40
_READ_BLOCK = 5_000  # rows per block out of the reader: enough blocks for every core, few enough to schedule
_BATCH = 2_000  # rows per prepare batch: the numpy batch size of the local path
_ROWS_PER_PARTITION = 250_000  # band-key rows per shuffle partition (~10 MB of keys)
OUTPUT_FORMATS = ("jsonl", "parquet")


def curate_on_ray(input_path: str | Path, out: Path, config: CurateConfig, output_format: str = "jsonl",
                  address: str | None = None, rows_per_part: int = 100_000) -> CurateResult:
    """Curate a dataset (a file, a run directory or a folder of JSONL / Parquet shards) on Ray; writes
    `dataset/` and `rejected/` shard folders plus the local path's other files into `out`.

    The result's `kept` and `rejects` stay in the written shards (they are not gathered here)."""
    if output_format not in OUTPUT_FORMATS:
        raise DistillError(f"unknown output format {output_format!r}; use one of: {', '.join(OUTPUT_FORMATS)}")
    if config.near_dedup and config.confirm != "exact":
        raise DistillError("--executor ray confirms near duplicates by exact Jaccard only; drop confirm: estimate")
    if config.decontam_minhash_threshold is not None:
        raise DistillError("--decontam-minhash is not available with --executor ray yet; run it with --executor local")
    sources = [dataset_files(input_path)] + [dataset_files(path) for path in config.against]
    ray = ensure_ray(address)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # part files in input order
    # Sort-based shuffle for the groupbys: the default hash shuffle keeps aggregator actors that hold
    # CPUs, and on 2 CPUs the map tasks then waited for them: a 100,000-row groupby took 80-107 s
    # against 8 s sort-based (Ray 2.60, load average ~10).
    context.shuffle_strategy = "sort_shuffle_pull_based"
    try:
        return _curate(ray, sources, out, config, output_format, rows_per_part)
    except Exception as exc:  # a user mistake found inside a task (a bad row) is still one line
        mistake = _user_mistake(exc)
        if mistake is None:
            raise
        raise mistake from None


def _curate(ray, sources: list[list[Path]], out: Path, config: CurateConfig, output_format: str,
            rows_per_part: int) -> CurateResult:
    mh = config.minhash()
    bands, rows = resolve_bands(mh)
    files = [{"source": s, "file": f, "path": str(path)} for s, paths in enumerate(sources) for f, path in enumerate(paths)]
    base = (
        ray.data.from_items(files, override_num_blocks=len(files))
        .map_batches(_read_files, batch_size=1)
        .map_batches(_prepare, batch_size=_BATCH, batch_format="numpy",
                     fn_kwargs={"config": config, "bands": bands, "rows": rows})
        .materialize()
    )
    flags = _gather(base.select_columns(["protected", "valid"]))
    n_all = len(flags.get("protected", []))
    n_against = int(np.sum(flags["protected"])) if n_all else 0
    n_valid = int(np.sum(flags["valid"] & ~flags["protected"])) if n_all else 0
    partitions = max(2, int(ray.cluster_resources().get("CPU", 2)), -(-n_all * bands // _ROWS_PER_PARTITION))
    source_of = lambda order: config.against[(order >> _SOURCE_SHIFT) - 1] if order >> _SOURCE_SHIFT else None  # noqa: E731

    duplicates: list[DuplicateRow] = []
    verdicts: dict[int, tuple[str, str, str]] = {}  # order -> (stage, reason, detail), beyond the checks
    dedup_info: dict[str, Any] = {"against": list(config.against), "against_items": n_against}
    removed = np.empty(0, np.int64)
    if config.exact_dedup:
        found = _gather(base.select_columns(["order", "valid", "exact", "protected", "id"])
                        .map_batches(_exact_rows, fn_kwargs={"partitions": partitions}, batch_format="numpy")
                        .groupby("part", num_partitions=partitions).map_groups(_exact_partition, batch_format="numpy"))
        for i, j, kept_id, removed_id in sorted(zip(*(found.get(c, np.empty(0)).tolist()
                                                      for c in ("removed", "kept", "kept_id", "removed_id")))):
            where = f" in {source_of(j)}" if source_of(j) else ""
            duplicates.append(DuplicateRow(id=removed_id, duplicate_of=kept_id, method="exact", similarity=1.0,
                                           source=source_of(j)))
            verdicts[i] = ("dedup", "exact_duplicate", f"same normalised text as {kept_id}{where}")
        removed = np.sort(found.get("removed", np.empty(0, np.int64))).astype(np.int64)
        dedup_info["exact_removed"] = len(removed)
    if config.near_dedup:
        near, candidates, confirmed = _near_duplicates(ray, base, removed, n_all, partitions, mh, bands, config)
        for dup in near:
            where = f" in {source_of(dup['kept'])}" if source_of(dup["kept"]) else ""
            duplicates.append(DuplicateRow(
                id=dup["id"], duplicate_of=dup["kept_id"], method="near", similarity=dup["similarity"], via=dup["via_id"],
                via_similarity=dup["via_similarity"] if dup["via_id"] else None, source=source_of(dup["kept"]),
            ))
            verdicts[dup["removed"]] = ("dedup", "near_duplicate", f"Jaccard {dup['similarity']:.2f} with {dup['kept_id']}{where}")
        removed = np.union1d(removed, np.array([d["removed"] for d in near], np.int64))
        dedup_info.update({
            "near_removed": len(near), "threshold": mh.threshold, "num_perm": mh.num_perm,
            "shingle_size": mh.shingle_size, "bands": bands, "rows": rows, "candidate_pairs": candidates,
            "confirmed_pairs": confirmed, "confirm": mh.confirm,
        })

    contamination: list[ContaminationRow] = []
    decontam_info: dict[str, Any] = {"heldout": [s.path for s in config.heldout]}
    if config.heldout:
        contamination = _decontaminate(ray, base, removed, n_valid, config, verdicts, decontam_info)

    owned = OwnedFolder.claim(out, "curated")  # the caller reserved dataset/ and rejected/ in it
    for folder in (DATASET_PARTS, REJECTED_PARTS):
        owned.remove(folder)  # parts of an earlier run must not mix in
        owned.reserve(folder).mkdir(parents=True)
    counts = _gather(base.map_batches(
        _label_and_write, batch_format="numpy", batch_size=rows_per_part,
        fn_kwargs={"verdicts": ray.put(verdicts), "out": str(out), "output_format": output_format}))
    outcomes: Counter = Counter()
    for node, reached, reason, count in zip(*(counts.get(c, np.empty(0)).tolist() for c in ("node", "reached", "reason", "count"))):
        outcomes[node or None, int(reached), reason or None] += int(count)  # counts come per block: add them up
    return CurateResult(kept=[], rejects=[], node_stats=node_stats_from_outcomes(outcomes), contamination=contamination,
                        duplicates=duplicates, dedup_info=dedup_info, decontam_info=decontam_info, notes=config.notes())


def _user_mistake(exc: BaseException) -> DistillError | None:
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


def _prepare(batch: dict[str, np.ndarray], config: CurateConfig, bands: int, rows: int) -> dict[str, np.ndarray]:
    """Parse, check, and hash one batch: the per-row columns every later step reads."""
    examples = [example_from_row(json.loads(raw), Path(path), int(line))
                for raw, path, line in zip(batch["raw"], batch["path"], batch["line"])]
    protected = (batch["order"] >> _SOURCE_SHIFT) > 0
    settings = config.check_settings()
    failures = [None if against else first_failure(e, settings) for e, against in zip(examples, protected)]
    # A rejected row is never hashed or shingled (a runaway 6 MB answer cost ~800 MB that way): the later
    # steps read only rows that passed the checks.
    texts = ["" if failure is not None else dedup_text(e, config.dedup_on) for e, failure in zip(examples, failures)]
    signed = sign_batch(texts, config.minhash(), bands, rows, keep_signatures=False)
    return {
        "order": batch["order"].astype(np.int64),
        "id": np.array([e.id for e in examples], dtype=object),
        "node": np.array([e.meta.taxonomy_path or "" for e in examples], dtype=object),
        "protected": protected,
        "valid": np.array([f is None for f in failures]),
        "reason": np.array([f.reason if f else "" for f in failures], dtype=object),
        "detail": np.array([f.detail if f else "" for f in failures], dtype=object),
        "text": np.array(texts, dtype=object),
        "exact": exact_keys(texts),
        "n_shingles": signed.n_shingles,
        "bands": signed.keys,
        "quality": np.array([_quality(e, config.quality_key) or 0.0 for e in examples]),
        "record": np.array([e.model_dump_json(exclude_none=True) for e in examples], dtype=object),
    }


def _exact_rows(batch: dict[str, np.ndarray], partitions: int) -> dict[str, np.ndarray]:
    """The rows exact dedup compares (those that passed the checks, and every --against row), each
    with its partition: all copies of a key land in the same one."""
    valid = batch["valid"]
    rows = {c: batch[c][valid] for c in ("order", "exact", "protected", "id")}
    return {**rows, "part": (rows["exact"] % np.uint64(partitions)).astype(np.int64)}


def _exact_partition(group: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The local rule inside one partition (every copy of a key is in it): protected first, then the
    first occurrence, is kept."""
    by_order = np.argsort(group["order"], kind="stable")
    keys, protected = group["exact"][by_order], group["protected"][by_order]
    dups = find_exact_duplicates(keys, protected)
    removed = by_order[[d.removed for d in dups]].astype(np.int64)
    kept = by_order[[d.kept for d in dups]].astype(np.int64)
    return {"removed": group["order"][removed], "kept": group["order"][kept],
            "removed_id": group["id"][removed], "kept_id": group["id"][kept]}


def _band_rows(batch: dict[str, np.ndarray], removed: Any, shift: int, partitions: int) -> dict[str, np.ndarray]:
    """One row per (band, key) of every document still in play; keys cut to the bits the local path
    compares (it packs each key with the document's index into one uint64)."""
    import ray

    removed = ray.get(removed) if isinstance(removed, ray.ObjectRef) else removed
    live = batch["valid"] & (batch["n_shingles"] > 0) & ~_member(removed, batch["order"])
    keys = batch["bands"][live] >> np.uint64(shift)
    n_bands = keys.shape[1]
    return {
        "band": np.tile(np.arange(n_bands, dtype=np.int64), len(keys)),
        "key": keys.ravel(),
        "order": np.repeat(batch["order"][live], n_bands),
        "part": ((keys * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(33)).ravel().astype(np.int64) % partitions,
    }


def _band_partition(group: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Candidate pairs of one partition: within each band, documents sharing a key (as order keys)."""
    parts: list[np.ndarray] = []
    for band in np.unique(group["band"]):
        mine = np.flatnonzero(group["band"] == band)
        ranked = mine[np.lexsort((group["order"][mine], group["key"][mine]))]
        parts += bucket_pairs(group["key"][ranked], group["order"][ranked])
    pairs = np.concatenate(parts) if parts else np.empty((0, 2), np.int64)
    return {"left": pairs[:, 0].astype(np.int64), "right": pairs[:, 1].astype(np.int64)}


def _member(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    if not len(sorted_values):
        return np.zeros(len(x), bool)
    pos = np.searchsorted(sorted_values, x).clip(0, len(sorted_values) - 1)
    return sorted_values[pos] == x


def _select(batch: dict[str, np.ndarray], orders: Any, columns: list[str]) -> dict[str, np.ndarray]:
    import ray

    orders = ray.get(orders) if isinstance(orders, ray.ObjectRef) else orders
    chosen = _member(orders, batch["order"])
    return {c: batch[c][chosen] for c in columns}


def _scan_hits(batch: dict[str, np.ndarray], index: Any, ngram: int) -> dict[str, np.ndarray]:
    import ray

    index = ray.get(index) if isinstance(index, ray.ObjectRef) else index
    mine = np.flatnonzero(batch["valid"] & ~batch["protected"])
    docs, where = scan_ngrams(batch["text"][mine].tolist(), index.indexes[ngram])
    return {"order": batch["order"][mine][docs].astype(np.int64), "where": where.astype(np.int64)}


def _label_and_write(batch: dict[str, np.ndarray], verdicts: Any, out: str, output_format: str) -> dict[str, np.ndarray]:
    """Write this block's kept rows and rejects as one part file each; return its yield counts."""
    import ray

    verdicts = ray.get(verdicts) if isinstance(verdicts, ray.ObjectRef) else verdicts
    kept: list[str] = []
    rejected: list[str] = []
    outcomes: Counter = Counter()
    for order, against, valid, reason, detail, record, node in zip(
            batch["order"].tolist(), batch["protected"], batch["valid"], batch["reason"], batch["detail"],
            batch["record"], batch["node"]):
        if against:  # --against rows are references, never output
            continue
        verdict = ("check", reason, detail) if not valid else verdicts.get(order)
        if verdict is None:
            kept.append(record)
            outcomes[node, KEPT, ""] += 1
            continue
        stage, why, said = verdict
        example = Example.model_validate_json(record)
        rejected.append(Reject(id=example.id, stage=stage, reason=why, detail=said, example=example,
                               node_path=example.meta.taxonomy_path).model_dump_json(exclude_none=True))
        outcomes[node, STAGES_PASSED[stage], why] += 1
    name = f"part-{int(batch['order'][0]):016x}" if len(batch["order"]) else None
    if name:
        _write_part(Path(out) / DATASET_PARTS / name, kept, output_format)
        _write_part(Path(out) / REJECTED_PARTS / name, rejected, output_format)
    keys = list(outcomes)
    return {"node": np.array([k[0] for k in keys], dtype=object), "reached": np.array([k[1] for k in keys], np.int64),
            "reason": np.array([k[2] for k in keys], dtype=object), "count": np.array(list(outcomes.values()), np.int64)}


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


# --- driver steps ------------------------------------------------------------------------------------

def _gather(ds) -> dict[str, np.ndarray]:
    """A small dataset's columns as arrays on the driver."""
    columns: dict[str, list[np.ndarray]] = {}
    for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
        for name, values in batch.items():
            columns.setdefault(name, []).append(values)
    return {name: np.concatenate(parts) for name, parts in columns.items()}


def _near_duplicates(ray, base, removed: np.ndarray, n_all: int, partitions: int, mh, bands: int, config: CurateConfig):
    shift = max(1, (n_all - 1).bit_length())
    pairs = _gather(base.select_columns(["order", "valid", "n_shingles", "bands"])
                    .map_batches(_band_rows, batch_format="numpy",
                                 fn_kwargs={"removed": ray.put(removed), "shift": shift, "partitions": partitions})
                    .groupby("part", num_partitions=partitions).map_groups(_band_partition, batch_format="numpy"))
    left, right = pairs.get("left", np.empty(0, np.int64)), pairs.get("right", np.empty(0, np.int64))
    involved = np.unique(np.concatenate([left, right]))
    compact = unique_pairs([np.stack([np.searchsorted(involved, left), np.searchsorted(involved, right)], axis=1)],
                           len(involved))
    if not len(compact):
        return [], 0, 0
    docs = _gather(base.map_batches(_select, batch_format="numpy", fn_kwargs={
        "orders": ray.put(involved), "columns": ["order", "text", "id", "protected", "quality"]}))
    by_order = np.argsort(docs["order"])
    texts = docs["text"][by_order].tolist()
    ids = docs["id"][by_order].tolist()
    sure, sims = confirm_pairs(texts, compact, mh, np.empty((0, mh.num_perm), np.uint32), config.workers)
    groups = group_duplicates(texts, sure, sims, mh, docs["protected"][by_order], docs["quality"][by_order],
                              workers=config.workers)
    near = [{"removed": int(involved[d.removed]), "id": ids[d.removed], "kept": int(involved[d.kept]),
             "kept_id": ids[d.kept], "similarity": d.similarity,
             "via_id": ids[d.via] if d.via != d.kept else None, "via_similarity": d.via_similarity} for d in groups]
    return near, len(compact), len(sure)


def _decontaminate(ray, base, removed: np.ndarray, n_valid: int, config: CurateConfig,
                   verdicts: dict[int, tuple[str, str, str]], info: dict[str, Any]) -> list[ContaminationRow]:
    items = load_all(config.heldout)
    dc = config.decontam()
    index = build_index(items, dc)
    hits = _gather(base.select_columns(["order", "valid", "protected", "text"]).map_batches(
        _scan_hits, batch_format="numpy", fn_kwargs={"index": ray.put(index), "ngram": dc.ngram}))
    order, where = hits.get("order", np.empty(0, np.int64)), hits.get("where", np.empty(0, np.int64))
    keep = ~_member(removed, order)
    order, where = order[keep], where[keep]
    n_live = n_valid - int(np.sum((removed >> _SOURCE_SHIFT) == 0))  # what the local path scans
    hit_docs, rank = np.unique(order, return_inverse=True)  # ranks keep the order of the local numbering

    def texts_of(chosen: list[int]) -> list[str]:
        got = _gather(base.map_batches(_select, batch_format="numpy", fn_kwargs={
            "orders": np.sort(hit_docs[chosen]), "columns": ["order", "text"]}))
        text_of = dict(zip(got["order"].tolist(), got["text"].tolist()))
        return [text_of[int(hit_docs[k])] for k in chosen]

    found = resolve_hits(rank.astype(np.int64), where, n_live, texts_of, index, dc)
    flagged = np.array(sorted(int(hit_docs[h.index]) for h in found), np.int64)
    meta = _gather(base.map_batches(_select, batch_format="numpy", fn_kwargs={
        "orders": flagged, "columns": ["order", "id", "node"]})) if len(flagged) else {}
    who = dict(zip(meta.get("order", np.empty(0)).tolist(), zip(meta.get("id", []), meta.get("node", []))))
    rows = []
    for hit in found:
        order_of_hit = int(hit_docs[hit.index])
        doc_id, node = who[order_of_hit]
        rows.append(ContaminationRow(
            id=doc_id, heldout_id=hit.heldout_id, heldout_text=hit.heldout_text, ngram=hit.ngram, n=hit.n,
            matches=hit.matches, method=hit.method, similarity=hit.similarity, also_13gram=hit.also_at_report_ngram,
            node_path=node or None,
        ))
        verdicts[order_of_hit] = ("decontaminate", "contaminated", f"shares {hit.n}-gram {hit.ngram!r} with held-out {hit.heldout_id}")
    info.update({"heldout_items": len(items), "ngram": dc.ngram, "flagged": len(found),
                 f"flagged_at_{dc.report_ngram}": sum(h.also_at_report_ngram for h in found), "flagged_by_minhash": 0})
    return rows
