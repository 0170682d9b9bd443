"""MinHash LSH near-duplicate detection: sign, band, confirm, group.

Signatures are computed with numpy over whole batches (see `normalize.py` for the shingle hashes);
each of the `num_perm` hash functions is h_k(x) = a_k * x + b_k mod 2**32 with random odd a_k.
Candidate pairs come from sorted band keys, are confirmed by exact (or estimated) Jaccard, and
confirmed pairs are grouped into connected components (scipy's union-find equivalent).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from distill.curate.normalize import TokenizedBatch, mix64, ngram_hashes, tokenize_batch

Progress = Callable[[str, int, int], None]

_BATCH = 2000  # docs per numpy batch: big enough to amortise calls, small enough for the caches
_PERM_BLOCK = 128  # docs per signing block, keeps the (num_perm x shingles) product in L2
_ALL_PAIRS_MAX_BUCKET = 32  # larger buckets get star + chain edges instead of all pairs


class MinHashConfig(BaseModel):
    threshold: float = Field(0.7, gt=0.0, le=1.0)
    num_perm: int = Field(128, ge=8, le=1024)
    shingle_size: int = Field(5, ge=1, le=32)
    bands: int | None = None  # chosen from threshold and num_perm when not given
    rows: int | None = None
    confirm: str = Field("exact", pattern="^(exact|estimate)$")
    seed: int = 1


def lsh_bands(threshold: float, num_perm: int, false_negative_weight: float = 0.8) -> tuple[int, int]:
    """Bands and rows minimising the weighted area of LSH misses above and hits below `threshold`.

    Misses weigh more than false candidates because every candidate is confirmed afterwards:
    a false candidate costs a comparison, a miss costs a duplicate left in the data.
    """
    s = np.linspace(0.0, 1.0, 1001)
    best, best_cost = (1, num_perm), float("inf")
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        p = 1.0 - (1.0 - s**rows) ** bands
        below, above = s < threshold, s >= threshold
        fp = np.trapezoid(p[below], s[below]) if below.sum() > 1 else 0.0
        fn = np.trapezoid(1.0 - p[above], s[above]) if above.sum() > 1 else 0.0
        cost = (1 - false_negative_weight) * fp + false_negative_weight * fn
        if cost < best_cost:
            best, best_cost = (bands, rows), cost
    return best


def detection_probability(similarity: np.ndarray | float, bands: int, rows: int):
    """The LSH S-curve: chance that a pair of Jaccard `similarity` shares at least one band."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=float) ** rows) ** bands


def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = (rng.integers(0, 2**32, num_perm, dtype=np.uint64) | np.uint64(1)).astype(np.uint32)
    b = rng.integers(0, 2**32, num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def signatures_of_shingles(hashes: np.ndarray, doc_of: np.ndarray, n_docs: int, num_perm: int, seed: int) -> np.ndarray:
    """(n_docs, num_perm) uint32 MinHash signatures; docs without shingles get all 0xFFFFFFFF."""
    a, b = _permutations(num_perm, seed)
    x = (hashes >> np.uint64(32)).astype(np.uint32)
    offsets = np.searchsorted(doc_of, np.arange(n_docs + 1))
    out = np.full((num_perm, n_docs), np.iinfo(np.uint32).max, dtype=np.uint32)
    has = np.flatnonzero(np.diff(offsets) > 0)
    for i in range(0, len(has), _PERM_BLOCK):
        docs = has[i : i + _PERM_BLOCK]
        lo, hi = offsets[docs[0]], offsets[docs[-1] + 1]
        with np.errstate(over="ignore"):
            prod = np.multiply.outer(a, x[lo:hi])
            prod += b[:, None]
        out[:, docs] = np.minimum.reduceat(prod, offsets[docs] - lo, axis=1)
    return np.ascontiguousarray(out.T)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n_docs, bands) uint64: one hash per band of `rows` signature values."""
    n = len(signatures)
    keys = np.empty((n, bands), dtype=np.uint64)
    sig = signatures.astype(np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            acc = np.full(n, band + 1, dtype=np.uint64)
            for col in range(band * rows, (band + 1) * rows):
                acc = acc * np.uint64(0x100000001B3) + sig[:, col]
            keys[:, band] = mix64(acc)
    return keys


@dataclass
class SignedBatch:
    signatures: np.ndarray  # (n, num_perm) uint32
    keys: np.ndarray  # (n, bands) uint64
    n_shingles: np.ndarray  # (n,) shingles per doc; 0 means nothing to compare


def sign_batch(texts: Sequence[str], config: MinHashConfig, bands: int, rows: int) -> SignedBatch:
    batch = tokenize_batch(list(texts))
    hashes, doc_of = ngram_hashes(batch, config.shingle_size)
    sig = signatures_of_shingles(hashes, doc_of, batch.n_docs, config.num_perm, config.seed)
    return SignedBatch(
        signatures=sig,
        keys=band_keys(sig, bands, rows),
        n_shingles=np.bincount(doc_of, minlength=batch.n_docs),
    )


def _sign_job(args):
    texts, config, bands, rows, keep_signatures = args
    part = sign_batch(texts, config, bands, rows)
    if not keep_signatures:  # 4x less to send back between processes
        part.signatures = part.signatures[:0]
    return part


def sign_all(
    texts: Sequence[str], config: MinHashConfig, workers: int = 1, progress: Progress | None = None,
    keep_signatures: bool = True,
) -> SignedBatch:
    """Sign every text, in batches, on `workers` processes when there is enough work to share.

    Without `keep_signatures` only band keys are kept (512 MB less at 1M records x 128 permutations);
    exact confirmation does not need the signatures."""
    bands, rows = resolve_bands(config)
    n = len(texts)
    # Filled in place: concatenating per-batch parts would double the peak memory at 1M records.
    signed = SignedBatch(
        signatures=np.empty((n if keep_signatures else 0, config.num_perm), np.uint32),
        keys=np.empty((n, bands), np.uint64),
        n_shingles=np.empty(n, np.int64),
    )
    starts = list(range(0, n, _BATCH))
    jobs = ((texts[i : i + _BATCH], config, bands, rows, keep_signatures) for i in starts)

    def store(start: int, part: SignedBatch) -> None:
        stop = start + len(part.n_shingles)
        if keep_signatures:
            signed.signatures[start:stop] = part.signatures
        signed.keys[start:stop] = part.keys
        signed.n_shingles[start:stop] = part.n_shingles
        if progress:
            progress("sign", stop, n)

    if workers > 1 and len(starts) > 2:
        # fork shares the parent's memory for free; imap returns results in order.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for start, part in zip(starts, pool.imap(_sign_job, jobs, chunksize=1)):
                store(start, part)
    else:
        for start, job in zip(starts, jobs):
            store(start, _sign_job(job))
    return signed


def resolve_bands(config: MinHashConfig) -> tuple[int, int]:
    if config.bands and config.rows:
        if config.bands * config.rows > config.num_perm:
            raise ValueError(f"bands x rows ({config.bands} x {config.rows}) exceeds num_perm {config.num_perm}")
        return config.bands, config.rows
    return lsh_bands(config.threshold, config.num_perm)


def candidate_pairs(keys: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
    """(m, 2) int64 pairs i < j sharing at least one band key, each pair once."""
    n, bands = keys.shape
    index = np.arange(n) if active is None else np.flatnonzero(active)
    found = []
    for band in range(bands):
        col = keys[index, band]
        order = np.argsort(col, kind="stable")
        sorted_keys = col[order]
        members = index[order]
        same = sorted_keys[1:] == sorted_keys[:-1]
        if not same.any():
            continue
        # Runs of equal keys are the buckets.
        boundaries = np.flatnonzero(np.diff(np.concatenate(([False], same, [False])).astype(np.int8)))
        run_starts, run_ends = boundaries[::2], boundaries[1::2] + 1
        sizes = run_ends - run_starts
        for size in np.unique(sizes):
            starts = run_starts[sizes == size]
            if size <= _ALL_PAIRS_MAX_BUCKET:
                left, right = np.triu_indices(size, 1)
                grid = members[starts[:, None] + np.arange(size)]
                found.append(np.stack([grid[:, left].ravel(), grid[:, right].ravel()], axis=1))
            else:
                for s in starts:
                    group = members[s : s + size]
                    found.append(np.stack([np.full(size - 1, group[0]), group[1:]], axis=1))
                    found.append(np.stack([group[:-1], group[1:]], axis=1))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.concatenate(found).astype(np.int64)
    pairs.sort(axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    codes = np.unique(pairs[:, 0] * np.int64(n) + pairs[:, 1])
    return np.stack([codes // n, codes % n], axis=1)


def estimated_jaccard(signatures: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    out = np.empty(len(pairs))
    for i in range(0, len(pairs), 50_000):
        chunk = pairs[i : i + 50_000]
        out[i : i + 50_000] = (signatures[chunk[:, 0]] == signatures[chunk[:, 1]]).mean(axis=1)
    return out


def shingle_sets(texts: Sequence[str], shingle_size: int) -> list[np.ndarray]:
    """Sorted unique shingle hashes of each text (for exact Jaccard)."""
    out: list[np.ndarray] = []
    for i in range(0, len(texts), _BATCH):
        chunk = list(texts[i : i + _BATCH])
        batch: TokenizedBatch = tokenize_batch(chunk)
        hashes, doc_of = ngram_hashes(batch, shingle_size)
        offsets = np.searchsorted(doc_of, np.arange(len(chunk) + 1))
        out.extend(np.unique(hashes[offsets[k] : offsets[k + 1]]) for k in range(len(chunk)))
    return out


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


@dataclass
class NearDuplicate:
    removed: int
    kept: int
    similarity: float  # Jaccard between the removed and the kept item
    via: int  # the item it was matched to directly (== kept unless grouped transitively)
    via_similarity: float


@dataclass
class NearDupResult:
    duplicates: list[NearDuplicate]
    candidates: int  # pairs proposed by LSH
    confirmed: int  # pairs at or above the threshold after confirmation
    pairs: np.ndarray  # the confirmed pairs (m, 2)
    similarities: np.ndarray  # their Jaccard


def find_near_duplicates(
    texts: Sequence[str],
    config: MinHashConfig,
    *,
    signed: SignedBatch | None = None,
    active: np.ndarray | None = None,
    protected: np.ndarray | None = None,
    quality: np.ndarray | None = None,
    workers: int = 1,
    progress: Progress | None = None,
) -> NearDupResult:
    """Group near-duplicate texts; in each group keep one and report the rest.

    `active` masks items to consider at all; `protected` items (earlier runs, a reference set) are
    never removed and win their group; otherwise the best `quality` wins, ties to the first.
    """
    n = len(texts)
    exact = config.confirm == "exact"
    if signed is None:
        signed = sign_all(texts, config, workers=workers, progress=progress, keep_signatures=not exact)
    mask = signed.n_shingles > 0
    if active is not None:
        mask &= active
    pairs = candidate_pairs(signed.keys, mask)
    candidates = len(pairs)
    sets: dict[int, np.ndarray] = {}
    if exact and len(signed.signatures) and len(pairs):
        # A cheap prefilter when signatures are at hand: 0.15 is > 3 standard deviations of a
        # 128-permutation estimate near 0.7.
        pairs = pairs[estimated_jaccard(signed.signatures, pairs) >= config.threshold - 0.15]
    if exact and len(pairs):
        needed = np.unique(pairs)
        sets = dict(zip(needed.tolist(), shingle_sets([texts[i] for i in needed], config.shingle_size)))
        sims = np.array([exact_jaccard(sets[i], sets[j]) for i, j in pairs.tolist()])
    elif exact:
        sims = np.empty(0)
    else:
        sims = estimated_jaccard(signed.signatures, pairs)
    ok = sims >= config.threshold
    pairs, sims = pairs[ok], sims[ok]
    if progress:
        progress("group", n, n)
    duplicates = _group(n, pairs, sims, protected, quality, signed, sets, config)
    return NearDupResult(duplicates=duplicates, candidates=candidates, confirmed=len(pairs), pairs=pairs, similarities=sims)


def _group(n, pairs, sims, protected, quality, signed, sets, config) -> list[NearDuplicate]:
    if not len(pairs):
        return []
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    score = np.zeros(n) if quality is None else np.asarray(quality, dtype=float).copy()
    if protected is not None:
        score[protected] = np.inf
    involved = np.unique(pairs)
    # Winner per component: highest score, then lowest index.
    order = np.lexsort((involved, -score[involved], label[involved]))
    ranked = involved[order]
    first_of_label = np.r_[True, label[ranked][1:] != label[ranked][:-1]]
    winner = dict(zip(label[ranked][first_of_label].tolist(), ranked[first_of_label].tolist()))
    best_neighbour: dict[int, tuple[int, float]] = {}
    for (i, j), s in zip(pairs.tolist(), sims.tolist()):
        for a, b in ((i, j), (j, i)):
            if s > best_neighbour.get(a, (-1, -1.0))[1]:
                best_neighbour[a] = (b, s)
    out = []
    for i in involved.tolist():
        keep = winner[label[i]]
        if i == keep or (protected is not None and protected[i]):
            continue
        via, via_sim = best_neighbour[i]
        if config.confirm == "exact" and i in sets and keep in sets:
            sim = exact_jaccard(sets[i], sets[keep])
        else:
            sim = float((signed.signatures[i] == signed.signatures[keep]).mean())
        out.append(NearDuplicate(removed=i, kept=keep, similarity=round(sim, 4), via=via, via_similarity=round(via_sim, 4)))
    return out
