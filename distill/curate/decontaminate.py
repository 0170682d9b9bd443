"""Decontamination: drop generated items that overlap a held-out evaluation set.

An item is contaminated when it shares a normalised word n-gram (8 by default, as open-r1) with a
held-out item; held-out items shorter than n words must appear whole. N-grams that are stems rather
than content ("which of the following is the most likely ...") are ignored: those found in several
held-out items, or in many generated items. 13-gram overlap (GPT-3 / lm-evaluation-harness) is
reported beside it for comparability. Optionally, MinHash similarity also catches edited copies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from distill.curate.heldout import HeldoutItem
from distill.curate.minhash import MinHashConfig, resolve_bands, sign_all, sign_batch
from distill.curate.normalize import (
    ngram_hashes,
    normalize_text,
    run_batches,
    shingle_hashes,
    tokenize_batch,
    unique_sorted,
)

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
    prefilter: np.ndarray  # bit set of the hashes' top bits: a cheap "certainly absent" test before the search
    lengths: np.ndarray  # n, or the whole item's length for short items
    short_first_words: dict[int, np.ndarray]  # by length: sorted first-word hashes of items shorter than n


@dataclass
class MinhashIndex:
    """The held-out items' MinHash signatures and band keys (sorted in each band, with their item): what each
    batch of generated texts is looked up in for the MinHash check."""

    config: MinHashConfig
    bands: int
    rows: int
    signatures: np.ndarray  # (items, num_perm)
    keys: np.ndarray  # (bands, items with shingles), each row sorted
    items: np.ndarray  # (bands, items with shingles): the held-out item of each key


@dataclass
class HeldoutIndex:
    items: list[HeldoutItem]
    indexes: dict[int, _NgramIndex]  # by n
    minhash: MinhashIndex | None = None  # with `DecontamConfig.minhash_threshold`


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


def _concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def _build(items: list[HeldoutItem], n: int, min_item_words: int) -> _NgramIndex:
    hs, ds, ls = [], [], []
    short_first: dict[int, list[np.ndarray]] = {}
    for start in range(0, len(items), _BATCH):
        batch = tokenize_batch([item.text for item in items[start : start + _BATCH]])
        h, offsets = shingle_hashes(batch, n, short_whole=True)
        counts = batch.word_counts()
        per_doc = np.diff(offsets)
        hs.append(h)
        ds.append(np.repeat(np.arange(start, start + len(counts)), per_doc))
        ls.append(np.repeat(np.minimum(counts, n), per_doc))
        for length in range(min_item_words, n):
            first = batch.doc_starts[:-1][counts == length]
            short_first.setdefault(length, []).append(batch.word_hashes[first])
    # An empty held-out set (e.g. every item shorter than min_item_words' file) is an empty index.
    h, d, lengths = _concat(hs, np.uint64), _concat(ds, np.int64), _concat(ls, np.int64)
    keep = lengths >= min_item_words
    h, d, lengths = h[keep], d[keep], lengths[keep]
    # Sorted by hash, then item: each hash once per item, then per hash how many items hold it.
    order = np.lexsort((d, h))
    h, d, lengths = h[order], d[order], lengths[order]
    new_pair = np.r_[True, (h[1:] != h[:-1]) | (d[1:] != d[:-1])] if len(h) else np.empty(0, bool)
    h, d, lengths = h[new_pair], d[new_pair], lengths[new_pair]
    first_of_hash = np.flatnonzero(np.r_[True, h[1:] != h[:-1]]) if len(h) else np.empty(0, np.int64)
    uniq = h[first_of_hash]
    return _NgramIndex(
        n=n,
        hashes=uniq,
        owner=d[first_of_hash].astype(np.int64),
        items_with=np.diff(np.r_[first_of_hash, len(h)]),
        per_item=np.bincount(d.astype(np.int64), minlength=len(items)),
        prefilter=_prefilter(uniq),
        lengths=lengths[first_of_hash].astype(np.int64),
        short_first_words={
            length: unique_sorted(np.concatenate(parts)) for length, parts in short_first.items()
            if sum(len(p) for p in parts)
        },
    )


# 2**26 bits (8 MB): at 10,000 held-out items (~700,000 8-grams) ~1% of lookups pass through to the
# binary search; a bit set by top bits is ~1.6x faster to probe than a bool table of the same reach.
_PREFILTER_BITS = 26
_PREFILTER_SHIFT = np.uint64(64 - _PREFILTER_BITS)


def _prefilter(hashes: np.ndarray) -> np.ndarray:
    table = np.zeros(1 << (_PREFILTER_BITS - 3), dtype=np.uint8)
    top = (hashes >> _PREFILTER_SHIFT).astype(np.intp)
    np.bitwise_or.at(table, top >> 3, (np.uint8(1) << (top & 7).astype(np.uint8)))
    return table


def _lookup(index: _NgramIndex, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(which of `hashes` are in the index, their positions there)."""
    top = (hashes >> _PREFILTER_SHIFT).astype(np.intp)
    maybe = np.flatnonzero((index.prefilter[top >> 3] >> (top & 7).astype(np.uint8)) & 1)
    if not len(index.hashes):
        return maybe[:0], maybe[:0]
    pos = np.searchsorted(index.hashes, hashes[maybe]).clip(0, len(index.hashes) - 1)
    found = index.hashes[pos] == hashes[maybe]
    return maybe[found], pos[found]


def build_index(items: list[HeldoutItem], config: DecontamConfig) -> HeldoutIndex:
    ns = {config.ngram, config.report_ngram}
    minhash = minhash_index(items, config.minhash_threshold) if config.minhash_threshold is not None else None
    return HeldoutIndex(items=items, indexes={n: _build(items, n, config.min_item_words) for n in ns}, minhash=minhash)


def minhash_index(items: list[HeldoutItem], threshold: float) -> MinhashIndex:
    """Signatures and band keys of the held-out items (word 5-gram shingles, 128 permutations, the bands and
    rows that suit `threshold`)."""
    mh = MinHashConfig(threshold=threshold)
    bands, rows = resolve_bands(mh)
    signed = sign_all([item.text for item in items], mh)
    has = np.flatnonzero(signed.n_shingles > 0)
    keys = np.ascontiguousarray(signed.keys[has].T)
    by_key = np.argsort(keys, axis=1, kind="stable")
    return MinhashIndex(config=mh, bands=bands, rows=rows, signatures=signed.signatures,
                        keys=np.take_along_axis(keys, by_key, axis=1), items=has[by_key])


def minhash_scan(texts: Sequence[str], index: MinhashIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(text, held-out item, estimated Jaccard) for each text that shares a band key with held-out items of
    estimated Jaccard >= the threshold: the most similar of them (ties: the first). A pure function of its
    batch, so each executor runs it a batch at a time."""
    mh = index.config
    signed = sign_batch(texts, mh, index.bands, index.rows)
    docs = np.flatnonzero(signed.n_shingles > 0)
    n_items = np.int64(len(index.signatures))
    codes: list[np.ndarray] = []
    for band in range(index.bands):
        column = signed.keys[docs, band]
        lo = np.searchsorted(index.keys[band], column, side="left")
        counts = np.searchsorted(index.keys[band], column, side="right") - lo
        starts = np.repeat(lo - np.cumsum(counts) + counts, counts)  # each match's place in the band's keys
        where = starts + np.arange(int(counts.sum()))
        codes.append(np.repeat(docs, counts).astype(np.int64) * n_items + index.items[band][where])
    pairs = unique_sorted(np.concatenate(codes)) if codes else np.empty(0, np.int64)
    divisor = max(int(n_items), 1)
    doc, item = pairs // divisor, pairs % divisor
    sims = (signed.signatures[doc] == index.signatures[item]).mean(axis=1) if len(pairs) else np.empty(0)
    ok = sims >= mh.threshold
    doc, item, sims = doc[ok], item[ok], sims[ok]
    best = np.lexsort((item, -sims, doc))
    best = best[np.r_[True, doc[best][1:] != doc[best][:-1]]] if len(best) else best
    return doc[best], item[best], sims[best]


def _scan(texts: Sequence[str], index: _NgramIndex, workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Every (text, index position) where a text holds an indexed n-gram or a short held-out item
    whole, one batch at a time (on `workers` threads), keeping only the hits.

    Texts shorter than n are fingerprinted whole, as the index does. Short held-out items are looked
    for only where a text's word is the first word of one of them: a 64 KB bit table of first words
    passes a few percent of the positions, instead of hashing every 4-, 5-, 6- and 7-gram."""
    lengths = sorted(index.short_first_words)
    firsts = unique_sorted(np.concatenate([index.short_first_words[n] for n in lengths])) if lengths else None
    first_table = np.zeros(1 << 16, dtype=bool)
    if firsts is not None:
        first_table[(firsts & np.uint64(0xFFFF)).astype(np.intp)] = True
    starts = list(range(0, len(texts), _BATCH))
    parts: list = [None] * len(starts)

    def job(start: int) -> int:
        batch = tokenize_batch(texts[start : start + _BATCH])
        hashes, offsets = shingle_hashes(batch, index.n, short_whole=True)
        hit, pos = _lookup(index, hashes)
        docs, where = [np.searchsorted(offsets, hit, side="right") - 1], [pos]
        if firsts is not None:
            w = batch.word_hashes
            cand = np.flatnonzero(first_table[(w & np.uint64(0xFFFF)).astype(np.intp)])
            cand = cand[_member(firsts, w[cand])]
            doc_of = np.searchsorted(batch.doc_starts, cand, side="right") - 1
            room = batch.doc_starts[doc_of + 1] - cand  # words from the candidate to its doc's end
            for n in lengths:
                sel = np.flatnonzero((room >= n) & _member(index.short_first_words[n], w[cand]))
                hit, pos = _lookup(index, batch.span_hashes(cand[sel], n))
                docs.append(doc_of[sel][hit])
                where.append(pos)
        parts[start // _BATCH] = (np.concatenate(docs) + start, np.concatenate(where))
        return start

    run_batches(job, starts, workers)
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate([d for d, _ in parts]), np.concatenate([w for _, w in parts])


def _member(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(sorted_values, x).clip(0, max(len(sorted_values) - 1, 0))
    return sorted_values[pos] == x if len(sorted_values) else np.zeros(len(x), bool)


def scan_ngrams(texts: Sequence[str], index: _NgramIndex, workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Raw hits of `texts` in one n-gram index: (doc, index position) arrays. A pure function of its
    batch, so the Ray executor runs it inside each block's task."""
    if not len(index.hashes):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return _scan(texts, index, workers)


def _matches(texts: Sequence[str], n_texts: int, index: _NgramIndex, config: DecontamConfig, workers: int = 1):
    return _without_stems(*scan_ngrams(texts, index, workers), n_texts, index, config)


def _without_stems(docs: np.ndarray, where: np.ndarray, n_texts: int, index: _NgramIndex, config: DecontamConfig):
    """Per matched (doc, held-out n-gram) pair: doc, position in the index. Stems filtered out.

    `n_texts` is the size of the whole generated set, which sets the stem threshold."""
    if not len(docs):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # One count per (doc, n-gram): a phrase repeated inside one item is still one item.
    size = np.int64(len(index.hashes))
    codes = unique_sorted(docs.astype(np.int64) * size + where)
    docs, where = codes // size, codes % size
    common_generated = max(config.generated_common_min, int(np.ceil(config.generated_common_fraction * n_texts)))
    docs_per_ngram = np.bincount(where, minlength=len(index.hashes))
    stem = (index.items_with[where] >= config.heldout_common_items) | (docs_per_ngram[where] >= common_generated)
    return docs[~stem], where[~stem]


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


def find_contamination(texts: Sequence[str], index: HeldoutIndex, config: DecontamConfig, workers: int = 1) -> list[ContaminationHit]:
    """One hit per contaminated generated text, naming the held-out item and a matching n-gram."""
    missing = {config.ngram, config.report_ngram} - set(index.indexes)
    if missing:
        raise ValueError(f"the held-out index has no {sorted(missing)}-grams; build it with the same DecontamConfig")
    docs, where = scan_ngrams(texts, index.indexes[config.ngram], workers)
    hits = resolve_hits(docs, where, len(texts), lambda chosen: [texts[d] for d in chosen], index, config)
    if config.minhash_threshold is not None:
        by_doc = {hit.index: hit for hit in hits}
        for doc, hit in _minhash_hits(texts, index, config).items():
            by_doc.setdefault(doc, hit)
        hits = [by_doc[k] for k in sorted(by_doc)]
    return hits


def resolve_hits(docs: np.ndarray, where: np.ndarray, n_texts: int, texts_of: Callable[[list[int]], list[str]],
                 index: HeldoutIndex, config: DecontamConfig) -> list[ContaminationHit]:
    """The contaminated docs among all raw hits of a set of `n_texts` texts (`scan_ngrams` at
    `config.ngram`, docs numbered 0..n_texts-1): stems dropped, the held-out item sharing the most
    n-grams named, the report n-gram checked. `texts_of(docs)` gives the texts of the flagged docs only."""
    main = index.indexes[config.ngram]
    docs, where = _without_stems(docs, where, n_texts, main, config)
    found: list[tuple[int, int, int, int]] = []  # doc, held-out item, index position, matches
    if len(docs):
        # (sorted by doc already)
        starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
        ends = np.r_[starts[1:], len(docs)]
        for s, e in zip(starts.tolist(), ends.tolist()):
            owners = main.owner[where[s:e]]
            counts = np.bincount(owners)
            best_owner = int(counts.argmax())  # the held-out item sharing the most
            if counts[best_owner] >= _required_matches(int(main.per_item[best_owner]), config):
                pick = int(where[s:e][owners == best_owner][0])
                found.append((int(docs[s]), best_owner, pick, int(counts[best_owner])))
    flagged_texts = texts_of([doc for doc, *_ in found]) if found else []
    report_docs: set[int] = set()
    if config.report_ngram != config.ngram and found:
        # Only flagged texts can overlap at the longer n; the stem threshold still counts all texts.
        report = index.indexes[config.report_ngram]
        sub_docs, _ = _matches(flagged_texts, n_texts, report, config)
        report_docs = {found[k][0] for k in set(sub_docs.tolist())}
    ngrams = _ngram_texts(flagged_texts, [int(main.hashes[p]) for _, _, p, _ in found], [int(main.lengths[p]) for _, _, p, _ in found])
    hits: dict[int, ContaminationHit] = {}
    for (doc, owner, pick, matches), ngram in zip(found, ngrams):
        item = index.items[owner]
        hits[doc] = ContaminationHit(
            index=doc, heldout_id=item.id, heldout_text=item.text, ngram=ngram, n=int(main.lengths[pick]),
            matches=matches, method="ngram", also_at_report_ngram=doc in report_docs,
        )
    return [hits[k] for k in sorted(hits)]


def _minhash_hits(texts: Sequence[str], index: HeldoutIndex, config: DecontamConfig) -> dict[int, ContaminationHit]:
    """Lightly edited copies: estimated Jaccard of word 5-gram shingles against each held-out item."""
    assert config.minhash_threshold is not None  # asked for only with a threshold
    minhash = index.minhash or minhash_index(index.items, config.minhash_threshold)
    out: dict[int, ContaminationHit] = {}
    for start in range(0, len(texts), _BATCH):
        for doc, owner, similarity in zip(*(part.tolist() for part in minhash_scan(texts[start : start + _BATCH], minhash))):
            out[start + doc] = minhash_hit(start + doc, index.items[owner], similarity)
    return out


def minhash_hit(doc: int, item: HeldoutItem, similarity: float) -> ContaminationHit:
    return ContaminationHit(index=doc, heldout_id=item.id, heldout_text=item.text, ngram="", n=0, matches=0,
                            method="minhash", similarity=round(similarity, 4))
