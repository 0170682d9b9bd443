"""Decontamination: drop generated items that overlap a held-out evaluation set.

An item is contaminated when it shares a normalised word n-gram (8 by default, as open-r1) with a
held-out item; held-out items shorter than n words must appear whole. N-grams that are stems rather
than content ("which of the following is the most likely ...") are ignored: those found in several
held-out items, or in many generated items. 13-gram overlap (GPT-3 / lm-evaluation-harness) is
reported beside it for comparability. Optionally, MinHash similarity also catches edited copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from distill.curate.heldout import HeldoutItem
from distill.curate.minhash import MinHashConfig, candidate_pairs, estimated_jaccard, sign_all
from distill.curate.normalize import ngram_hashes, normalize_text, tokenize_batch

_BATCH = 2000


class DecontamConfig(BaseModel):
    ngram: int = Field(8, ge=1, le=50)
    report_ngram: int = Field(13, ge=1, le=50)  # counted for comparability, not used to remove
    min_item_words: int = Field(4, ge=1)  # shorter held-out items are too generic to match whole
    # How many distinct n-grams shared with one held-out item flag a text: at least `min_matches`
    # and `min_coverage` of the item's n-grams, but never more than `span_matches` (a verbatim span
    # of ~15 words always counts) nor more than the item has. One or two shared 8-grams are usually
    # boilerplate ("the aim of this study was to assess the", a stem plus one word).
    min_matches: int = Field(3, ge=1)
    min_coverage: float = Field(0.1, ge=0, le=1)
    span_matches: int = Field(8, ge=1)
    # An n-gram in this many held-out items is a stem. Not lower: a reading passage shared by a
    # few exam questions is content, and stems ("which of the following is the most") recur far more.
    heldout_common_items: int = Field(10, ge=2)
    generated_common_fraction: float = Field(0.001, gt=0, le=1)  # ... or in this share of generated items
    generated_common_min: int = Field(5, ge=2)  # ... but never fewer items than this
    minhash_threshold: float | None = Field(None, gt=0, le=1)


@dataclass
class _NgramIndex:
    """Sorted unique n-gram hashes of the held-out set; owner = first held-out item holding it."""

    n: int
    hashes: np.ndarray
    owner: np.ndarray
    items_with: np.ndarray  # how many held-out items contain each hash
    per_item: np.ndarray  # distinct hashes of each held-out item
    prefilter: np.ndarray  # bool by low hash bits: a cheap "certainly absent" test before the search
    lengths: np.ndarray  # n, or the whole item's length for short items


@dataclass
class HeldoutIndex:
    items: list[HeldoutItem]
    indexes: dict[int, _NgramIndex]  # by n


@dataclass
class ContaminationHit:
    index: int  # position in the generated list
    heldout_id: str
    heldout_text: str
    ngram: str  # the matching normalised n-gram (or whole short item)
    n: int
    matches: int  # distinct uncommon n-grams shared
    method: str  # "ngram" or "minhash"
    similarity: float | None = None
    also_at_report_ngram: bool = False


def _hashes_by_doc(texts: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hash, doc, whole-length) triples for every n-gram of every text; short texts whole."""
    hs, ds, ls = [], [], []
    for start in range(0, len(texts), _BATCH):
        batch = tokenize_batch(list(texts[start : start + _BATCH]))
        h, d = ngram_hashes(batch, n, short_whole=True)
        counts = batch.word_counts()
        hs.append(h)
        ds.append(d + start)
        ls.append(np.minimum(counts[d], n))
    if not hs:
        return np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(hs), np.concatenate(ds), np.concatenate(ls)


def _build(items: list[HeldoutItem], n: int, min_item_words: int) -> _NgramIndex:
    h, d, lengths = _hashes_by_doc([item.text for item in items], n)
    keep = lengths >= min_item_words
    h, d, lengths = h[keep], d[keep], lengths[keep]
    # Count each hash once per item, then per hash how many items hold it.
    pair = np.unique(np.stack([h, d.astype(np.uint64)], axis=1), axis=0) if len(h) else np.empty((0, 2), np.uint64)
    uniq, first, counts = np.unique(pair[:, 0], return_index=True, return_counts=True)
    length_of = dict(zip(h.tolist(), lengths.tolist()))
    return _NgramIndex(
        n=n,
        hashes=uniq,
        owner=pair[first, 1].astype(np.int64),
        items_with=counts,
        per_item=np.bincount(pair[:, 1].astype(np.int64), minlength=len(items)),
        prefilter=_prefilter(uniq),
        lengths=np.array([length_of[x] for x in uniq.tolist()], dtype=np.int64),
    )


_PREFILTER_BITS = 24  # 16 MB; at 10k held-out items ~1% of lookups pass through to the binary search


def _prefilter(hashes: np.ndarray) -> np.ndarray:
    table = np.zeros(1 << _PREFILTER_BITS, dtype=bool)
    table[(hashes & np.uint64((1 << _PREFILTER_BITS) - 1)).astype(np.intp)] = True
    return table


def _lookup(index: _NgramIndex, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(which of `hashes` are in the index, their positions there)."""
    maybe = np.flatnonzero(index.prefilter[(hashes & np.uint64((1 << _PREFILTER_BITS) - 1)).astype(np.intp)])
    pos = np.searchsorted(index.hashes, hashes[maybe]).clip(0, len(index.hashes) - 1)
    found = index.hashes[pos] == hashes[maybe]
    return maybe[found], pos[found]


def build_index(items: list[HeldoutItem], config: DecontamConfig) -> HeldoutIndex:
    ns = {config.ngram, config.report_ngram}
    return HeldoutIndex(items=items, indexes={n: _build(items, n, config.min_item_words) for n in ns})


def _short_lengths(index: _NgramIndex) -> list[int]:
    return sorted(set(index.lengths[index.lengths < index.n].tolist()))


def _generated_ngrams(texts: Sequence[str], lengths: set[int], full: set[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """n-gram hashes and doc of each, for every length needed, tokenising each batch once.

    Lengths in `full` also fingerprint texts shorter than n as a whole (as the index does)."""
    parts: dict[int, list] = {n: [] for n in lengths}
    for start in range(0, len(texts), _BATCH):
        batch = tokenize_batch(list(texts[start : start + _BATCH]))
        for n in lengths:
            h, d = ngram_hashes(batch, n, short_whole=n in full)
            parts[n].append((h, d + start))
    return {
        n: (np.concatenate([h for h, _ in p]), np.concatenate([d for _, d in p])) if p else (np.empty(0, np.uint64), np.empty(0, np.int64))
        for n, p in parts.items()
    }


def _matches(n_texts: int, index: _NgramIndex, grams, config: DecontamConfig):
    """Per matched (doc, held-out n-gram) pair: doc, position in the index. Stems filtered out."""
    if not len(index.hashes):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    docs_all, where_all = [], []
    for n in [index.n, *_short_lengths(index)]:
        h, d = grams[n]
        hit, pos = _lookup(index, h)
        docs_all.append(d[hit])
        where_all.append(pos)
    docs = np.concatenate(docs_all)
    where = np.concatenate(where_all)
    # One count per (doc, n-gram): a phrase repeated inside one item is still one item.
    pair = np.unique(np.stack([docs, where], axis=1), axis=0)
    docs, where = pair[:, 0], pair[:, 1]
    common_generated = max(config.generated_common_min, int(np.ceil(config.generated_common_fraction * n_texts)))
    docs_per_ngram = np.bincount(where, minlength=len(index.hashes))
    stem = (index.items_with[where] >= config.heldout_common_items) | (docs_per_ngram[where] >= common_generated)
    return docs[~stem], where[~stem]


def _all_grams(texts: Sequence[str], indexes: list[_NgramIndex]):
    fulls = {ix.n for ix in indexes}
    shorts = {n for ix in indexes for n in _short_lengths(ix)}
    # Full-length n-grams also fingerprint texts shorter than n whole; the index does the same.
    return _generated_ngrams(texts, fulls | shorts, fulls)


def _required_matches(item_ngrams: int, config: DecontamConfig) -> int:
    wanted = max(config.min_matches, int(np.ceil(config.min_coverage * item_ngrams)))
    return max(1, min(item_ngrams, wanted, config.span_matches))


def _ngram_texts(texts: Sequence[str], targets: list[int], lengths: list[int]) -> list[str]:
    """For each text, the normalised words whose n-gram hash is its target (for the report)."""
    batch = tokenize_batch(list(texts))
    by_length = {n: ngram_hashes(batch, n, short_whole=False) for n in set(lengths)}
    out = []
    for k, (target, n) in enumerate(zip(targets, lengths)):
        hashes, docs = by_length[n]
        lo, hi = np.searchsorted(docs, [k, k + 1])
        found = np.flatnonzero(hashes[lo:hi] == np.uint64(target))
        start = int(found[0]) if len(found) else 0
        out.append(" ".join(normalize_text(texts[k]).split()[start : start + n]))
    return out


def find_contamination(texts: Sequence[str], index: HeldoutIndex, config: DecontamConfig) -> list[ContaminationHit]:
    """One hit per contaminated generated text, naming the held-out item and a matching n-gram."""
    missing = {config.ngram, config.report_ngram} - set(index.indexes)
    if missing:
        raise ValueError(f"the held-out index has no {sorted(missing)}-grams; build it with the same DecontamConfig")
    main = index.indexes[config.ngram]
    docs, where = _matches(len(texts), main, _all_grams(texts, [main]), config)
    found: list[tuple[int, int, int, int]] = []  # doc, held-out item, index position, matches
    if len(docs):
        order = np.argsort(docs, kind="stable")
        docs, where = docs[order], where[order]
        starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
        ends = np.r_[starts[1:], len(docs)]
        for s, e in zip(starts.tolist(), ends.tolist()):
            owners = main.owner[where[s:e]]
            counts = np.bincount(owners)
            best_owner = int(counts.argmax())  # the held-out item sharing the most
            if counts[best_owner] >= _required_matches(int(main.per_item[best_owner]), config):
                pick = int(where[s:e][owners == best_owner][0])
                found.append((int(docs[s]), best_owner, pick, int(counts[best_owner])))
    flagged_texts = [texts[doc] for doc, *_ in found]
    report_docs: set[int] = set()
    if config.report_ngram != config.ngram and found:
        # Only flagged texts can overlap at the longer n; the stem threshold still counts all texts.
        report = index.indexes[config.report_ngram]
        sub_docs, _ = _matches(len(texts), report, _all_grams(flagged_texts, [report]), config)
        report_docs = {found[k][0] for k in set(sub_docs.tolist())}
    ngrams = _ngram_texts(flagged_texts, [int(main.hashes[p]) for _, _, p, _ in found], [int(main.lengths[p]) for _, _, p, _ in found])
    hits: dict[int, ContaminationHit] = {}
    for (doc, owner, pick, matches), ngram in zip(found, ngrams):
        item = index.items[owner]
        hits[doc] = ContaminationHit(
            index=doc, heldout_id=item.id, heldout_text=item.text, ngram=ngram, n=int(main.lengths[pick]),
            matches=matches, method="ngram", also_at_report_ngram=doc in report_docs,
        )
    if config.minhash_threshold is not None:
        for doc, hit in _minhash_hits(texts, index, config).items():
            hits.setdefault(doc, hit)
    return [hits[k] for k in sorted(hits)]


def _minhash_hits(texts: Sequence[str], index: HeldoutIndex, config: DecontamConfig) -> dict[int, ContaminationHit]:
    """Lightly edited copies: estimated Jaccard of word 5-gram shingles against each held-out item."""
    mh = MinHashConfig(threshold=config.minhash_threshold)
    combined = [item.text for item in index.items] + list(texts)
    signed = sign_all(combined, mh)
    pairs = candidate_pairs(signed.keys, signed.n_shingles > 0)
    k = len(index.items)
    cross = pairs[(pairs[:, 0] < k) & (pairs[:, 1] >= k)]
    sims = estimated_jaccard(signed.signatures, cross)
    out: dict[int, ContaminationHit] = {}
    for (h, g), s in zip(cross.tolist(), sims.tolist()):
        doc = g - k
        if s >= config.minhash_threshold and s > (out[doc].similarity if doc in out else -1):
            item = index.items[h]
            out[doc] = ContaminationHit(
                index=doc, heldout_id=item.id, heldout_text=item.text, ngram="", n=0, matches=0,
                method="minhash", similarity=round(s, 4),
            )
    return out
