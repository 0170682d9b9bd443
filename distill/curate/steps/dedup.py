"""Dedup as steps: exact copies (a key per normalised text), then near copies (MinHash LSH), each within the set
and against earlier runs (`--against`: references, never removed, win their group)."""

from __future__ import annotations

import numpy as np

from distill.curate.exact import exact_keys, find_exact_duplicates
from distill.curate.minhash import (
    MinHashConfig,
    confirm_pairs,
    group_duplicates,
    resolve_bands,
    sign_all,
    sign_batch,
    unique_pairs,
)
from distill.curate.normalize import unique_sorted
from distill.curate.result import DuplicateRow
from distill.curate.steps.base import Batch, Findings, Rows, Step, Verdict
from distill.records import Example


class ExactDedup(Step):
    """Per batch: an xxh3 key of each normalised text. Whole set: rows grouped by key; in each group the first
    reference, else the first occurrence, stays."""

    name = "exact keys"
    stage = "dedup"
    section = "dedup"
    threads_help = True  # xxh3 of normalised buffers

    def __init__(self, against: list[str]):
        self.against = against

    def map_batch(self, batch: Batch) -> Batch:
        batch["exact"] = exact_keys(batch["text"].tolist())
        return batch

    def resolve(self, rows: Rows) -> Findings:
        found = rows.group("exact", ["order", "exact", "protected", "id", "source"], first_copies)
        out = Findings()
        for removed, removed_id, kept_id, source in sorted(zip(*(found[c].tolist() for c in (
                "removed", "removed_id", "kept_id", "kept_source")))):
            where = source_name(self.against, source)
            out.duplicates.append(DuplicateRow(id=removed_id, duplicate_of=kept_id, method="exact", similarity=1.0,
                                               source=where))
            out.rejects[removed] = Verdict("exact_duplicate", f"same normalised text as {kept_id}{_in(where)}")
        out.info["exact_removed"] = len(out.duplicates)
        return out


def first_copies(group: Batch) -> Batch:
    """The duplicates inside one group holding every copy of its keys: all but the first of each key (a
    reference first, then the first in order), each with the row it duplicates."""
    by_order = np.argsort(group["order"], kind="stable")
    dups = find_exact_duplicates(group["exact"][by_order], group["protected"][by_order])
    removed = by_order[np.array([d.removed for d in dups], dtype=np.int64)]
    kept = by_order[np.array([d.kept for d in dups], dtype=np.int64)]
    return {"removed": group["order"][removed], "removed_id": group["id"][removed], "kept_id": group["id"][kept],
            "kept_source": group["source"][kept]}


class NearDedup(Step):
    """Per batch: MinHash band keys of each text. Whole set: rows sharing a band key are candidates; their
    Jaccard is confirmed (exact over shingle sets, or estimated from signatures) on the few texts involved,
    and confirmed pairs grouped; in each group a reference, else the best `meta[quality_key]`, else the
    first, stays."""

    name = "signatures"
    stage = "dedup"
    section = "dedup"
    threads_help = True  # shingle hashes and MinHash products

    def __init__(self, config: MinHashConfig, quality_key: str, against: list[str], workers: int = 1):
        self.config, self.quality_key, self.against, self.workers = config, quality_key, against, workers
        self.bands, self.rows = resolve_bands(config)

    def map_batch(self, batch: Batch) -> Batch:
        signed = sign_batch(batch["text"].tolist(), self.config, self.bands, self.rows, keep_signatures=False)
        batch["bands"] = signed.keys
        batch["signed"] = signed.n_shingles > 0
        batch["quality"] = np.array([quality(e, self.quality_key) or 0.0 for e in batch["example"]], dtype=float)
        return batch

    def resolve(self, rows: Rows) -> Findings:
        mh = self.config
        pairs = rows.pairs_sharing("bands", where="signed")
        involved = unique_sorted(pairs)  # the order keys of every row in a candidate pair
        compact = unique_pairs([np.searchsorted(involved, pairs)], len(involved)) if len(pairs) else pairs
        out = Findings(info={"near_removed": 0, "threshold": mh.threshold, "num_perm": mh.num_perm,
                             "shingle_size": mh.shingle_size, "bands": self.bands, "rows": self.rows,
                             "candidate_pairs": len(compact), "confirmed_pairs": 0, "confirm": mh.confirm})
        if not len(compact):
            return out
        docs = rows.fetch(involved, ["text", "id", "protected", "quality", "source"])
        texts, ids = docs["text"].tolist(), docs["id"].tolist()
        rows.progress("confirm", 0, len(compact))
        # Estimates need signatures, kept for the few texts involved only (512 bytes a text at 128 permutations):
        # a text's signature depends on it alone, so these are the ones every batch computed.
        signatures = (sign_all(texts, mh, workers=self.workers).signatures if mh.confirm == "estimate"
                      else np.empty((0, mh.num_perm), np.uint32))
        sure, sims = confirm_pairs(texts, compact, mh, signatures, self.workers)
        groups = group_duplicates(texts, sure, sims, mh, docs["protected"].astype(bool), docs["quality"].astype(float),
                                  signatures, self.workers)
        rows.progress("confirm", len(compact), len(compact))
        sources = docs["source"].tolist()
        for dup in groups:
            where = source_name(self.against, sources[dup.kept])
            via = ids[dup.via] if dup.via != dup.kept else None
            out.duplicates.append(DuplicateRow(
                id=ids[dup.removed], duplicate_of=ids[dup.kept], method="near", similarity=dup.similarity, via=via,
                via_similarity=dup.via_similarity if via else None, source=where))
            out.rejects[int(involved[dup.removed])] = Verdict(
                "near_duplicate", f"Jaccard {dup.similarity:.2f} with {ids[dup.kept]}{_in(where)}")
        out.info.update(near_removed=len(groups), confirmed_pairs=len(sure))
        return out


def quality(example: Example, key: str) -> float | None:
    """`meta[key]` when it is a number: which of a duplicate group's copies is best."""
    value = (example.meta.model_extra or {}).get(key)
    return float(value) if isinstance(value, (int, float)) else None


def source_name(against: list[str], source: int) -> str | None:
    """The --against set a row came from (source k is the k-th); None for the input."""
    return against[source - 1] if source else None


def _in(where: str | None) -> str:
    return f" in {where}" if where else ""
