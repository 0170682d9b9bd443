"""MinHash LSH near-duplicate detection: sign, band, confirm, group.

Signatures are computed with numpy over whole batches (see `normalize.py` for the shingle hashes);
each of the `num_perm` hash functions is h_k(x) = a_k * x + b_k mod 2**32 with random odd a_k.
Candidate pairs come from sorted band keys, are confirmed by exact (or estimated) Jaccard, and
confirmed pairs are grouped into connected components (scipy's union-find equivalent).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from distill.curate.normalize import mix64, run_batches, shingle_hashes, tokenize_batch, unique_sorted

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
        fp = float(np.trapezoid(p[below], s[below])) if below.sum() > 1 else 0.0
        fn = float(np.trapezoid(1.0 - p[above], s[above])) if above.sum() > 1 else 0.0
        cost = (1 - false_negative_weight) * fp + false_negative_weight * fn
        if cost < best_cost:
            best, best_cost = (bands, rows), cost
    return best


def detection_probability(similarity: np.ndarray | float, bands: int, rows: int):
    """The LSH S-curve: chance that a pair of Jaccard `similarity` shares at least one band."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=float) ** rows) ** bands


@functools.lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = (rng.integers(0, 2**32, num_perm, dtype=np.uint64) | np.uint64(1)).astype(np.uint32)
    b = rng.integers(0, 2**32, num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def signatures_of_shingles(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """(n_docs, num_perm) uint32 MinHash signatures of shingle hashes grouped by doc (`offsets`,
    n_docs + 1); docs without shingles get all 0xFFFFFFFF."""
    a, b = _permutations(num_perm, seed)
    x = (hashes >> np.uint64(32)).astype(np.uint32)
    n_docs = len(offsets) - 1
    out = np.full((num_perm, n_docs), np.iinfo(np.uint32).max, dtype=np.uint32)
    has = np.flatnonzero(np.diff(offsets) > 0)
    scratch = np.empty(0, dtype=np.uint32)
    for i in range(0, len(has), _PERM_BLOCK):
        docs = has[i : i + _PERM_BLOCK]
        lo, hi = offsets[docs[0]], offsets[docs[-1] + 1]
        if len(scratch) < num_perm * (hi - lo):  # reused: fresh pages for every block cost more than the product
            scratch = np.empty(num_perm * (hi - lo) * 5 // 4, dtype=np.uint32)
        prod = scratch[: num_perm * (hi - lo)].reshape(num_perm, hi - lo)
        with np.errstate(over="ignore"):
            np.multiply(a[:, None], x[None, lo:hi], out=prod)
            prod += b[:, None]
        out[:, docs] = np.minimum.reduceat(prod, offsets[docs] - lo, axis=1)
    return np.ascontiguousarray(out.T)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n_docs, bands) uint64: one hash per band of `rows` signature values."""
    sig = signatures[:, : bands * rows].reshape(len(signatures), bands, rows).astype(np.uint64)
    with np.errstate(over="ignore"):
        acc = np.broadcast_to(np.arange(1, bands + 1, dtype=np.uint64), (len(signatures), bands)).copy()
        for row in range(rows):
            acc *= np.uint64(0x100000001B3)
            acc += sig[:, :, row]
    return mix64(acc)


@dataclass
class SignedBatch:
    signatures: np.ndarray  # (n, num_perm) uint32
    keys: np.ndarray  # (n, bands) uint64
    n_shingles: np.ndarray  # (n,) shingles per doc; 0 means nothing to compare


def sign_batch(texts: Sequence[str], config: MinHashConfig, bands: int, rows: int, keep_signatures: bool = True) -> SignedBatch:
    batch = tokenize_batch(texts)
    hashes, offsets = shingle_hashes(batch, config.shingle_size)
    sig = signatures_of_shingles(hashes, offsets, config.num_perm, config.seed)
    return SignedBatch(
        signatures=sig if keep_signatures else sig[:0],
        keys=band_keys(sig, bands, rows),
        n_shingles=np.diff(offsets),
    )


def sign_all(
    texts: Sequence[str], config: MinHashConfig, workers: int = 1, progress: Progress | None = None,
    keep_signatures: bool = True,
) -> SignedBatch:
    """Sign every text, in batches, on `workers` threads when there is enough work to share.

    Threads, not processes: the numpy work releases the GIL for all but a few percent of the time,
    nothing is copied to or from a worker, and nothing is forked (forking a process that has started
    torch's threads can deadlock the child). Without `keep_signatures` only band keys are kept
    (512 MB less at 1M records x 128 permutations); exact confirmation does not need the signatures."""
    bands, rows = resolve_bands(config)
    n = len(texts)
    # Filled in place: concatenating per-batch parts would double the peak memory at 1M records.
    signed = SignedBatch(
        signatures=np.empty((n if keep_signatures else 0, config.num_perm), np.uint32),
        keys=np.empty((n, bands), np.uint64),
        n_shingles=np.empty(n, np.int64),
    )
    starts = list(range(0, n, _BATCH))

    def job(start: int) -> int:
        part = sign_batch(texts[start : start + _BATCH], config, bands, rows, keep_signatures)
        stop = start + len(part.n_shingles)
        if keep_signatures:
            signed.signatures[start:stop] = part.signatures
        signed.keys[start:stop] = part.keys
        signed.n_shingles[start:stop] = part.n_shingles
        return stop

    run_batches(job, starts, workers, lambda stop: progress("sign", stop, n) if progress else None)
    return signed


def resolve_bands(config: MinHashConfig) -> tuple[int, int]:
    if config.bands and config.rows:
        if config.bands * config.rows > config.num_perm:
            raise ValueError(f"bands x rows ({config.bands} x {config.rows}) exceeds num_perm {config.num_perm}")
        return config.bands, config.rows
    return lsh_bands(config.threshold, config.num_perm)


def candidate_pairs(keys: np.ndarray, active: np.ndarray | None = None, workers: int = 1) -> np.ndarray:
    """(m, 2) int64 pairs i < j sharing at least one band key, each pair once.

    Each band is bucketed by one value sort of (key bits, index) packed in a uint64, much faster than
    an argsort; two keys that agree on all but the index bits share a bucket too, which costs one
    more candidate (every candidate is confirmed) once in about 2**44 pairs at 1M records. Bands
    run on `workers` threads."""
    n, bands = keys.shape
    index = np.arange(n, dtype=np.uint64) if active is None else np.flatnonzero(active).astype(np.uint64)
    shift = np.uint64(max(1, (n - 1).bit_length()))
    found: list[list[np.ndarray]] = [[] for _ in range(bands)]

    def band_pairs(band: int) -> int:
        col = keys[:, band] if active is None else keys[index.astype(np.intp), band]
        packed = np.sort(((col >> shift) << shift) | index)
        found[band] = bucket_pairs(packed >> shift, (packed & ((np.uint64(1) << shift) - np.uint64(1))).astype(np.int64))
        return band

    run_batches(band_pairs, list(range(bands)), workers)
    return unique_pairs([p for band in found for p in band], n)


def bucket_pairs(sorted_keys: np.ndarray, members: np.ndarray) -> list[np.ndarray]:
    """Pairs of members sharing a key, from keys sorted with their members (each (m, 2) int64 part).

    Runs of equal keys are the buckets; inside one, members are in the order given. A bucket of up
    to 32 gives all its pairs; a larger one a star and a chain (every member still reaches every
    other through confirmed pairs, without the quadratic count). The Ray executor calls this on each
    partition of band keys, so both paths propose the same candidates."""
    same = sorted_keys[1:] == sorted_keys[:-1]
    if not same.any():
        return []
    found: list[np.ndarray] = []
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
    return found


def unique_pairs(parts: list[np.ndarray], n: int) -> np.ndarray:
    """(m, 2) int64 pairs i < j, each once, sorted, from parts holding either order and repeats;
    every value below n."""
    if not parts:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.concatenate(parts).astype(np.int64)
    pairs.sort(axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    codes = unique_sorted(pairs[:, 0] * np.int64(n) + pairs[:, 1])
    return np.stack([codes // n, codes % n], axis=1)


def estimated_jaccard(signatures: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    out = np.empty(len(pairs))
    for i in range(0, len(pairs), 50_000):
        chunk = pairs[i : i + 50_000]
        out[i : i + 50_000] = (signatures[chunk[:, 0]] == signatures[chunk[:, 1]]).mean(axis=1)
    return out


def shingle_sets(texts: Sequence[str], shingle_size: int) -> list[np.ndarray]:
    """Sorted unique shingle hashes of each text (for exact Jaccard of a few pairs)."""
    out: list[np.ndarray] = []
    for i in range(0, len(texts), _BATCH):
        hashes, offsets = shingle_hashes(tokenize_batch(texts[i : i + _BATCH]), shingle_size)
        out.extend(np.unique(hashes[offsets[k] : offsets[k + 1]]) for k in range(len(offsets) - 1))
    return out


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


_CONFIRM_CHUNK = 20_000  # pairs per exact-Jaccard chunk: at most 40,000 shingle sets in memory (~150 MB)


def exact_pair_jaccard(texts: Sequence[str], pairs: np.ndarray, shingle_size: int, workers: int = 1) -> np.ndarray:
    """Exact Jaccard of the shingle-hash sets of each pair (i, j) of `texts` (1.0 when both are empty).

    Vectorised: a chunk's shingle hashes are ranked once, each set becomes sorted int64 keys
    slot * ranks + rank, and every element of one side of each pair is looked up in the other side's
    keys with one `searchsorted`. Chunks run on `workers` threads."""
    out = np.empty(len(pairs))
    size = max(1, min(_CONFIRM_CHUNK, -(-len(pairs) // max(workers, 1))))

    def job(lo: int) -> int:
        chunk = pairs[lo : lo + size]
        ids, slots = np.unique(chunk, return_inverse=True)
        slots = slots.reshape(chunk.shape)
        sets = _ShingleSets([texts[i] for i in ids.tolist()], shingle_size)
        out[lo : lo + len(chunk)] = sets.jaccard(slots[:, 0], slots[:, 1])
        return lo

    run_batches(job, list(range(0, len(pairs), size)), workers)
    return out


class _ShingleSets:
    def __init__(self, texts: list[str], shingle_size: int) -> None:
        parts = [shingle_hashes(tokenize_batch(texts[start : start + _BATCH]), shingle_size) for start in range(0, len(texts), _BATCH)]
        hashes = np.concatenate([h for h, _ in parts]) if parts else np.empty(0, np.uint64)
        counts = np.concatenate([np.diff(o) for _, o in parts]) if parts else np.empty(0, np.int64)
        distinct, rank = np.unique(hashes, return_inverse=True)
        self.radix = max(len(distinct), 1)
        slot = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
        self.keys = unique_sorted(slot * self.radix + rank)  # sorted; repeated shingles counted once
        self.sizes = np.bincount(self.keys // self.radix, minlength=len(texts))
        self.starts = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(self.sizes, out=self.starts[1:])

    def jaccard(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        lengths = self.sizes[a]
        pair = np.repeat(np.arange(len(a)), lengths)
        first = np.zeros(len(a), dtype=np.int64)
        np.cumsum(lengths[:-1], out=first[1:])
        pos = np.arange(len(pair)) - first[pair] + self.starts[a][pair]
        query = self.keys[pos] + (b[pair] - a[pair]) * self.radix  # the same rank in b's slot
        found = self.keys[np.searchsorted(self.keys, query).clip(max=max(len(self.keys) - 1, 0))] == query
        inter = np.bincount(pair, weights=found, minlength=len(a))
        union = lengths + self.sizes[b] - inter
        return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


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
    pairs = candidate_pairs(signed.keys, mask, workers)
    candidates = len(pairs)
    pairs, sims = confirm_pairs(texts, pairs, config, signed.signatures, workers)
    if progress:
        progress("group", n, n)
    duplicates = group_duplicates(texts, pairs, sims, config, protected, quality, signed.signatures, workers)
    return NearDupResult(duplicates=duplicates, candidates=candidates, confirmed=len(pairs), pairs=pairs, similarities=sims)


def confirm_pairs(texts: Sequence[str], pairs: np.ndarray, config: MinHashConfig, signatures: np.ndarray,
                  workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs at or above the threshold, and their Jaccard: exact over shingle sets, or
    estimated from `signatures` (with `confirm="estimate"`)."""
    exact = config.confirm == "exact"
    if exact and len(signatures) and len(pairs):
        # A cheap prefilter when signatures are at hand: 0.15 is > 3 standard deviations of a
        # 128-permutation estimate near 0.7.
        pairs = pairs[estimated_jaccard(signatures, pairs) >= config.threshold - 0.15]
    if exact:
        sims = exact_pair_jaccard(texts, pairs, config.shingle_size, workers)
    else:
        sims = estimated_jaccard(signatures, pairs)
    ok = sims >= config.threshold
    return pairs[ok], sims[ok]


def group_duplicates(texts: Sequence[str], pairs: np.ndarray, sims: np.ndarray, config: MinHashConfig,
                     protected: np.ndarray | None = None, quality: np.ndarray | None = None,
                     signatures: np.ndarray | None = None, workers: int = 1) -> list[NearDuplicate]:
    """Connected components of the confirmed pairs; in each, the winner stays and the rest are reported."""
    n = len(texts)
    if not len(pairs):
        return []
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    score = np.zeros(n) if quality is None else np.asarray(quality, dtype=float).copy()
    if protected is not None:
        score[protected] = np.inf
    involved = unique_sorted(pairs)
    # Winner per component: highest score, then lowest index.
    order = np.lexsort((involved, -score[involved], label[involved]))
    ranked = involved[order]
    first_of_label = np.r_[True, label[ranked][1:] != label[ranked][:-1]]
    winner_of_label = np.zeros(n, dtype=np.int64)
    winner_of_label[label[ranked][first_of_label]] = ranked[first_of_label]
    # Each item's most similar confirmed neighbour; ties to the earliest pair, (i, j) before (j, i).
    node = np.concatenate([pairs[:, 0], pairs[:, 1]])
    other = np.concatenate([pairs[:, 1], pairs[:, 0]])
    both_sims = np.concatenate([sims, sims])
    seq = np.concatenate([np.arange(len(pairs)) * 2, np.arange(len(pairs)) * 2 + 1])
    best = np.lexsort((seq, -both_sims, node))
    best = best[np.r_[True, node[best][1:] != node[best][:-1]]]  # one per node, in `involved` order
    via, via_sim = other[best], both_sims[best]
    keep = winner_of_label[label[involved]]
    removed = involved != keep
    if protected is not None:
        removed &= ~protected[involved]
    rows = np.flatnonzero(removed)
    # Similarity to the kept item: the direct one where it was matched to it, else computed.
    sim = via_sim[rows].copy()
    indirect = np.flatnonzero(via[rows] != keep[rows])
    if len(indirect):
        pairs_to_keep = np.stack([involved[rows][indirect], keep[rows][indirect]], axis=1)
        if config.confirm == "exact":
            sim[indirect] = exact_pair_jaccard(texts, pairs_to_keep, config.shingle_size, workers)
        else:
            assert signatures is not None  # signed whenever confirm is not exact
            sim[indirect] = estimated_jaccard(signatures, pairs_to_keep)
    return [
        NearDuplicate(removed=i, kept=k, similarity=round(s, 4), via=v, via_similarity=round(vs, 4))
        for i, k, s, v, vs in zip(
            involved[rows].tolist(), keep[rows].tolist(), sim.tolist(), via[rows].tolist(), via_sim[rows].tolist()
        )
    ]
