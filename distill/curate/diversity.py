"""Diversity and coverage per taxonomy leaf: how varied each leaf's kept examples are, which leaves have none,
and which are saturated (the teacher repeats itself there). `distill taxonomy diversity` shows them and the
re-planning of `distill improve` reads `LeafDiversity.self_similarity` (docs/curation.md#diversity-per-leaf).

An example's text is what dedup compares (`dedup_text`: every turn but the system prompt, tool calls written
out): a system prompt shared by every example would make every leaf look alike.

Every figure is near-linear in a leaf's size: distinct-n is one sort of the leaf's n-gram hashes, and
self-similarity is estimated on at most `max_pairs` pairs drawn at random, from the MinHash signatures dedup
uses (`minhash.py`), never on all n^2 pairs.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from pydantic import BaseModel, Field

from distill.curate.dataset_io import dedup_text
from distill.curate.minhash import estimated_jaccard, signatures_of_shingles
from distill.curate.normalize import shingle_hashes, tokenize_batch, unique_sorted
from distill.records import NO_NODE, Example

# The reject reasons that mean the teacher wrote the same thing again in a leaf (curate/steps/dedup.py).
DUPLICATE_REASONS = ("exact_duplicate", "near_duplicate")

_BATCH = 2000  # texts hashed at once, as dedup signs them (minhash.py)

Embed = Callable[[list[str]], np.ndarray]  # texts -> (n, dim) vectors


class DiversitySettings(BaseModel):
    """How the figures are computed, and where a leaf counts as saturated."""

    # 3-word shingles, not dedup's 5: leaves hold short texts (a ticket is 20-40 words), where one changed word
    # breaks 5 of a text's 5-word shingles but only 3 of its 3-word ones, so near-copies would read as unrelated.
    shingle_size: int = Field(3, ge=1, le=32)
    # 256, not dedup's 128: every pair of a leaf is estimated with the same permutations, so their errors do not
    # average out over the pairs. Measured on a leaf of 300 planted near-copies (exact mean 0.371), 8 seeds: a
    # standard deviation of 0.018 at 128 permutations, 0.013 at 256, 0.007 at 512 (twice the signing again).
    num_perm: int = Field(256, ge=8, le=1024)
    # Pairs drawn per leaf: pairwise Jaccard in one leaf has a standard deviation of at most 0.26 (measured on the
    # support-agent recipe's leaves), so the sampling error of the mean is about 0.006, below the permutations'.
    max_pairs: int = Field(2000, ge=1)
    # Saturated at a mean pairwise Jaccard of 0.3 on 3-word shingles: planted near-copies (2 of 20 words changed)
    # measure 0.34-0.44, the support-agent recipe's leaves (tool conversations written to one pattern) 0.15-0.29,
    # varied text near 0.
    saturated_similarity: float = Field(0.3, gt=0.0, le=1.0)
    # ... or when curation removed at least half of what the teacher wrote there as duplicates: asking for more
    # in that leaf mostly buys more duplicates.
    saturated_duplicate_rate: float = Field(0.5, gt=0.0, le=1.0)
    embed_sample: int = Field(32, ge=2)  # examples a leaf embedded at most (a forward pass each, on CPU)
    seed: int = 0


class LeafDiversity(BaseModel):
    """One leaf's figures (None where the leaf has too few examples or words for one)."""

    leaf: str
    examples: int
    words: int
    distinct_1: float | None = None  # unique words / words, 0..1, higher = more varied
    distinct_2: float | None = None  # unique word pairs / word pairs
    self_similarity: float | None = None  # mean pairwise Jaccard of word shingles, 0..1, higher = less diverse
    pairs: int = 0  # pairs self-similarity was estimated on
    duplicate_rejects: int = 0  # exact and near duplicates curation removed from this leaf
    duplicate_rate: float | None = None  # duplicate_rejects / (examples + duplicate_rejects)
    embedding_spread: float | None = None  # mean pairwise cosine distance of the centred embeddings
    embedded: int = 0  # examples embedded
    empty: bool = False  # a leaf of the taxonomy with no example
    saturated: bool = False
    why: list[str] = Field(default_factory=list)  # what made it saturated: self_similarity, duplicate_rate


def leaf_of(example: Example) -> str:
    return example.meta.taxonomy_path or NO_NODE


def leaf_diversity(examples: Iterable[Example], *, leaves: Sequence[str] = (),
                   rejects: Iterable[dict] = (), settings: DiversitySettings | None = None,
                   embed: Embed | None = None) -> dict[str, LeafDiversity]:
    """The figures of each leaf of `examples` (grouped by `meta.taxonomy_path`), in leaf order.

    `leaves`: the taxonomy's leaf paths; those without an example come back `empty`. `rejects`: rows of
    rejected.jsonl, for each leaf's duplicate rate. `embed`: texts -> vectors (the student's, `embeddings.py`);
    with it each leaf gets an `embedding_spread`."""
    settings = settings or DiversitySettings()
    texts: dict[str, list[str]] = defaultdict(list)
    for example in examples:
        texts[leaf_of(example)].append(dedup_text(example))
    duplicates = duplicate_counts(rejects)
    out: dict[str, LeafDiversity] = {}
    # A leaf whose every example curation removed as a duplicate is shown too: saturated, nothing kept.
    for leaf in sorted({*texts, *leaves, *duplicates}):
        figures = text_figures(leaf, texts.get(leaf, []), settings)
        figures.empty = leaf in leaves and not figures.examples
        figures.duplicate_rejects = duplicates.get(leaf, 0)
        seen = figures.examples + figures.duplicate_rejects
        figures.duplicate_rate = round(figures.duplicate_rejects / seen, 4) if seen else None
        out[leaf] = figures
    if embed is not None:
        for leaf, spread in embedding_spreads(texts, embed, settings).items():
            out[leaf].embedding_spread, out[leaf].embedded = spread
    for figures in out.values():
        figures.why = saturation(figures, settings)
        figures.saturated = bool(figures.why)
    return out


def text_figures(leaf: str, texts: list[str], settings: DiversitySettings) -> LeafDiversity:
    """Distinct-1, distinct-2 and self-similarity of one leaf's texts."""
    words, bigrams = [], []
    for start in range(0, len(texts), _BATCH):  # batches: the hashing's buffers stay small whatever the leaf
        batch = tokenize_batch(texts[start: start + _BATCH])
        words.append(batch.word_hashes)
        bigrams.append(shingle_hashes(batch, 2, short_whole=False)[0])  # only pairs inside one text
    figures = LeafDiversity(leaf=leaf, examples=len(texts), words=sum(map(len, words)))
    figures.distinct_1 = distinct_share(words)
    figures.distinct_2 = distinct_share(bigrams)
    if len(texts) >= 2:
        pairs = sample_pairs(len(texts), settings.max_pairs, settings.seed)
        involved, slots = np.unique(pairs, return_inverse=True)  # only these are signed: at most 2 x max_pairs
        hashes, offsets = shingle_hashes(tokenize_batch([texts[i] for i in involved.tolist()]),
                                         settings.shingle_size)
        signatures = signatures_of_shingles(hashes, offsets, settings.num_perm, settings.seed)
        figures.self_similarity = round(float(estimated_jaccard(signatures, slots.reshape(pairs.shape)).mean()), 4)
        figures.pairs = len(pairs)
    return figures


def distinct_share(parts: list[np.ndarray]) -> float | None:
    """Distinct hashes over all hashes (None when there are none)."""
    hashes = np.concatenate(parts) if parts else np.empty(0, np.uint64)
    return round(len(unique_sorted(hashes)) / len(hashes), 4) if len(hashes) else None


def sample_pairs(n: int, max_pairs: int, seed: int) -> np.ndarray:
    """(m, 2) index pairs i != j: all of them when there are at most `max_pairs`, else `max_pairs` drawn
    uniformly (with replacement: the mean is what is estimated, and a repeat costs nothing)."""
    if n * (n - 1) // 2 <= max_pairs:
        left, right = np.triu_indices(n, 1)
        return np.stack([left, right], axis=1)
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n, max_pairs)
    second = rng.integers(0, n - 1, max_pairs)
    second += second >= first  # skip i itself: uniform over the other n - 1
    return np.stack([first, second], axis=1)


def duplicate_counts(rejects: Iterable[dict]) -> Counter[str]:
    """Exact and near duplicates removed, per leaf, from rows of rejected.jsonl."""
    counts: Counter[str] = Counter()
    for row in rejects:
        if row.get("reason") in DUPLICATE_REASONS:
            example = row.get("example") or {}
            meta = (example.get("meta") or {}) if isinstance(example, dict) else {}
            counts[row.get("node_path") or meta.get("taxonomy_path") or NO_NODE] += 1
    return counts


def embedding_spreads(texts: dict[str, list[str]], embed: Embed,
                      settings: DiversitySettings) -> dict[str, tuple[float | None, int]]:
    """(spread, examples embedded) per leaf: up to `embed_sample` of its texts embedded, each vector centred on
    the mean of every embedded text, then the mean pairwise cosine distance. About 1 for a leaf as varied as the
    run as a whole, towards 0 for a leaf of near-copies. Centred because a causal LM's mean-pooled states share
    one large direction: uncentred, the embedded SmolLM2 put 12 varied support tickets at 0.157 and 12 copies
    of one at 0.0001; centred, 0.68 and 0.002."""
    rng = np.random.default_rng(settings.seed)
    chosen = {leaf: [items[i] for i in sorted(rng.choice(len(items), min(len(items), settings.embed_sample),
                                                          replace=False))]
              for leaf, items in texts.items() if items}
    flat = [text for items in chosen.values() for text in items]
    if not flat:
        return {}
    vectors = np.asarray(embed(flat), dtype=np.float64)
    vectors -= vectors.mean(axis=0)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    out: dict[str, tuple[float | None, int]] = {}
    start = 0
    for leaf, items in chosen.items():
        part = vectors[start: start + len(items)]
        start += len(items)
        out[leaf] = (round(mean_cosine_distance(part), 4) if len(part) >= 2 else None, len(part))
    return out


def mean_cosine_distance(unit: np.ndarray) -> float:
    """1 - the mean cosine similarity over all pairs of unit vectors, in linear time: the sum of all pairwise
    dot products is |sum of the vectors|^2 less the n self-products."""
    n = len(unit)
    total = unit.sum(axis=0)
    return float(1.0 - (total @ total - n) / (n * (n - 1)))


def saturation(figures: LeafDiversity, settings: DiversitySettings) -> list[str]:
    """Why a leaf counts as saturated: its examples are too alike (`self_similarity`), or curation removed too
    many of them as duplicates (`duplicate_rate`), each at or above its threshold in `settings`."""
    why = []
    if figures.self_similarity is not None and figures.self_similarity >= settings.saturated_similarity:
        why.append("self_similarity")
    if figures.duplicate_rate is not None and figures.duplicate_rate >= settings.saturated_duplicate_rate:
        why.append("duplicate_rate")
    return why
