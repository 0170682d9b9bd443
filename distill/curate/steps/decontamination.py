"""Decontamination as a step: drop generated items that copy a held-out evaluation item (`curate/decontaminate.py`).

Whole set only: the held-out index is built once on the driver and each batch of texts scanned against it; the
sparse hits are resolved on the driver, since an n-gram common across the whole generated set is a stem, not
a copy, and only the global counts can say which.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from distill.curate.decontaminate import (
    ContaminationHit,
    DecontamConfig,
    build_index,
    minhash_hit,
    minhash_scan,
    resolve_hits,
    scan_ngrams,
)
from distill.curate.heldout import load_all
from distill.curate.result import ContaminationRow
from distill.curate.steps.base import Batch, Findings, Rows, Step, Verdict
from distill.records import HeldoutSource


class Decontaminate(Step):
    """Rejects an example (not a reference) that shares uncommon n-grams with a held-out item, or, with
    `minhash_threshold`, whose estimated Jaccard with one reaches it."""

    name = "decontamination"
    stage = "decontaminate"
    section = "decontamination"

    def __init__(self, heldout: list[HeldoutSource], config: DecontamConfig):
        self.heldout, self.config = heldout, config

    def resolve(self, rows: Rows) -> Findings:
        dc = self.config
        items = load_all(self.heldout)
        index = build_index(items, dc)
        n_live = rows.count(references=False)
        rows.progress("decontaminate", 0, n_live)
        hits = rows.scan(scan_batch, ["order", "text"], (index.indexes[dc.ngram], "ngram"))
        docs, rank = np.unique(hits["order"], return_inverse=True)  # ranks keep the input order

        def texts_of(chosen: list[int]) -> list[str]:
            got = rows.fetch(np.sort(docs[chosen]), ["order", "text"])
            text_of = dict(zip(got["order"].tolist(), got["text"].tolist()))
            return [text_of[int(docs[k])] for k in chosen]

        found = {int(docs[hit.index]): hit for hit in resolve_hits(rank.astype(np.int64), hits["where"].astype(np.int64),
                                                                  n_live, texts_of, index, dc)}
        if index.minhash is not None:  # an n-gram match names its n-gram: it wins over a MinHash one
            near = rows.scan(scan_batch, ["order", "text"], (index.minhash, "minhash"))
            for order, owner, similarity in zip(near["order"].tolist(), near["item"].tolist(), near["similarity"].tolist()):
                found.setdefault(order, minhash_hit(order, items[owner], similarity))
        rows.progress("decontaminate", n_live, n_live)
        out = Findings(info={"heldout_items": len(items), "ngram": dc.ngram, "flagged": len(found),
                             f"flagged_at_{dc.report_ngram}": sum(h.also_at_report_ngram for h in found.values()),
                             "flagged_by_minhash": sum(h.method == "minhash" for h in found.values())})
        flagged = np.array(sorted(found), dtype=np.int64)
        who = rows.fetch(flagged, ["id", "node"]) if len(flagged) else {"id": np.empty(0, object), "node": np.empty(0, object)}
        for order, doc_id, node in zip(flagged.tolist(), list(who["id"]), list(who["node"])):
            hit = found[order]
            out.contamination.append(ContaminationRow(
                id=doc_id, heldout_id=hit.heldout_id, heldout_text=hit.heldout_text, ngram=hit.ngram, n=hit.n,
                matches=hit.matches, method=hit.method, similarity=hit.similarity, also_13gram=hit.also_at_report_ngram,
                node_path=node or None))
            out.rejects[order] = Verdict("contaminated", f"shares {_what(hit)} with held-out {hit.heldout_id}")
        return out


def scan_batch(batch: Batch, shared: tuple[Any, str]) -> Batch:
    """One batch's raw hits: (order, index position) of each held-out n-gram a text holds, or (order, item,
    similarity) of its closest held-out item by MinHash."""
    index, kind = shared
    texts = batch["text"].tolist()
    if kind == "minhash":
        docs, items, sims = minhash_scan(texts, index)
        return {"order": batch["order"][docs], "item": items.astype(np.int64), "similarity": sims}
    docs, where = scan_ngrams(texts, index)
    return {"order": batch["order"][docs].astype(np.int64), "where": where.astype(np.int64)}


def _what(hit: ContaminationHit) -> str:
    return f"{hit.n}-gram {hit.ngram!r}" if hit.method == "ngram" else f"MinHash Jaccard {hit.similarity:.2f}"
