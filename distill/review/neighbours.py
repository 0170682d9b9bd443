"""Each kept item's nearest other kept item, for the card and the near_neighbour risk signal.

Curation's MinHash LSH tuned for Jaccard 0.3 proposes candidate pairs (well below the 0.7 at which
curation removes near-duplicates), and each pair is confirmed by exact word-shingle Jaccard, on the
same text curation compares (user and assistant turns).
"""

from __future__ import annotations

from distill.curate.dataset_io import dedup_text
from distill.curate.minhash import MinHashConfig, candidate_pairs, exact_pair_jaccard, sign_all
from distill.records import Example
from distill.review.model import Neighbour

FLOOR = 0.3  # below this a "neighbour" is just another item on the same topic


def nearest_neighbours(examples: list[Example], shingle_size: int = 5) -> dict[str, Neighbour]:
    """id -> its nearest neighbour at Jaccard >= FLOOR (items with none are absent)."""
    if len(examples) < 2:
        return {}
    texts = [dedup_text(e) for e in examples]
    config = MinHashConfig(threshold=FLOOR, shingle_size=shingle_size)
    signed = sign_all(texts, config, keep_signatures=False)
    pairs = candidate_pairs(signed.keys, signed.n_shingles > 0)
    if not len(pairs):
        return {}
    similarity = exact_pair_jaccard(texts, pairs, shingle_size)
    best: dict[int, tuple[float, int]] = {}
    for (i, j), sim in zip(pairs.tolist(), similarity.tolist()):
        if sim < FLOOR:
            continue
        for a, b in ((i, j), (j, i)):
            if sim > best.get(a, (0.0, -1))[0]:
                best[a] = (sim, b)
    return {examples[i].id: Neighbour(id=examples[j].id, similarity=round(sim, 3), prompt=examples[j].prompt[:300])
            for i, (sim, j) in best.items()}
