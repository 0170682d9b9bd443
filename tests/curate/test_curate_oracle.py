"""datasketch as the oracle for our numpy MinHash: the same Jaccard estimates within the sampling
error, and the same LSH candidate pairs at the same bands x rows, locally and on Ray."""

from __future__ import annotations

import math

import numpy as np
import pytest
from curate_helpers import needs_data, planted_corpus

from distill.curate.minhash import (
    MinHashConfig,
    candidate_pairs,
    estimated_jaccard,
    exact_jaccard,
    resolve_bands,
    shingle_sets,
    sign_all,
)
from distill.curate.normalize import normalized_words

datasketch = pytest.importorskip("datasketch", reason="datasketch is a test dependency: pip install -e '.[dev]'")
pytestmark = needs_data
NUM_PERM = 128
SHINGLE = 5


def shingles(text: str) -> set[str]:
    """Word 5-grams of the normalised text, as strings: what our shingle hashes stand for."""
    words = normalized_words(text)
    if len(words) < SHINGLE:
        return {" ".join(words)}
    return {" ".join(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def oracle_minhash(text: str):
    sketch = datasketch.MinHash(num_perm=NUM_PERM, seed=1)
    sketch.update_batch([s.encode() for s in shingles(text)])
    return sketch


def test_jaccard_estimates_agree_with_datasketch_within_the_sampling_error():
    # 240 planted pairs from identical to about 0.1 Jaccard (0-60 of 120 words replaced).
    texts, pairs = planted_corpus(600, [k % 61 for k in range(240)], seed=7)
    sets = shingle_sets(texts, SHINGLE)
    signed = sign_all(texts, MinHashConfig(num_perm=NUM_PERM, shingle_size=SHINGLE))
    ours = estimated_jaccard(signed.signatures, np.array(pairs))
    truth, theirs = [], []
    for (a, b), estimate in zip(pairs, ours):
        words_a, words_b = shingles(texts[a]), shingles(texts[b])
        true = len(words_a & words_b) / len(words_a | words_b)
        # Our shingle hashes are the same sets as datasketch's strings: same sizes, same Jaccard.
        assert (len(sets[a]), len(sets[b])) == (len(words_a), len(words_b))
        assert exact_jaccard(sets[a], sets[b]) == pytest.approx(true)
        truth.append(true)
        theirs.append(oracle_minhash(texts[a]).jaccard(oracle_minhash(texts[b])))
    truth, theirs = np.array(truth), np.array(theirs)
    assert truth.min() < 0.2 and truth.max() == 1.0
    # Each estimate is the share of 128 independent min-hash agreements, so it is Binomial(128, J) / 128:
    # standard deviation sigma = sqrt(J(1 - J) / 128) (at most 0.044). The bound tested, pair by pair:
    # within 4 sigma (+ 1/128 for rounding) of the truth, and ours within 4 * sqrt(2) sigma of
    # datasketch's (two independent estimates). 4 sigma is exceeded by chance about once in 16,000.
    sigma = np.sqrt(truth * (1 - truth) / NUM_PERM) + 1 / NUM_PERM
    assert np.all(np.abs(ours - truth) <= 4 * sigma)
    assert np.all(np.abs(theirs - truth) <= 4 * sigma)
    assert np.all(np.abs(ours - theirs) <= 4 * math.sqrt(2) * sigma)
    # No bias: the mean error over 240 pairs is within 3 standard errors of 0, as is datasketch's.
    standard_error = 3 * np.sqrt(np.mean(sigma**2) / len(pairs))
    assert abs(np.mean(ours - truth)) <= standard_error and abs(np.mean(theirs - truth)) <= standard_error
    # And the spread is the binomial one: a hash family that is not min-wise independent, or fewer
    # permutations than claimed, shows as too wide a spread (64 of the 128 measured 1.38 times it;
    # all 128 measured 0.95).
    binomial = np.sqrt(np.mean(truth * (1 - truth) / NUM_PERM))
    assert np.std(ours - truth) <= 1.25 * binomial and np.std(theirs - truth) <= 1.25 * binomial


def lsh_corpus():
    """1,500 unrelated texts; 60 copies at Jaccard >= 0.9 (0 or 1 of 120 words replaced; LSH finds each
    with probability > 0.99999 at 18 bands x 7 rows) and 60 at Jaccard <= 0.25 (20-40 replaced; found
    with probability < 0.001): the candidates are certain, so two MinHash families must agree on them."""
    texts, pairs = planted_corpus(1500, [k % 2 for k in range(60)] + [20 + k % 21 for k in range(60)], seed=11)
    return texts, {tuple(p) for p in pairs[:60]}


def datasketch_candidates(texts: list[str], bands: int, rows: int) -> set[tuple[int, int]]:
    lsh = datasketch.MinHashLSH(num_perm=NUM_PERM, params=(bands, rows))
    sketches = [oracle_minhash(t) for t in texts]
    for i, sketch in enumerate(sketches):
        lsh.insert(i, sketch)
    return {(min(i, j), max(i, j)) for i, sketch in enumerate(sketches) for j in lsh.query(sketch) if j != i}


def test_lsh_candidates_are_the_same_as_datasketch_lsh_at_the_same_bands_and_rows():
    texts, near = lsh_corpus()
    config = MinHashConfig(threshold=0.7, num_perm=NUM_PERM, shingle_size=SHINGLE)
    bands, rows = resolve_bands(config)
    assert (bands, rows) == (18, 7)
    ours = {tuple(p) for p in candidate_pairs(sign_all(texts, config).keys).tolist()}
    theirs = datasketch_candidates(texts, bands, rows)
    assert ours == theirs == near


@pytest.mark.ray
def test_ray_near_duplicates_are_datasketch_candidates_confirmed(tmp_path, ray_cluster):
    from rich.console import Console

    from distill.curate.commands import run_curate
    from distill.curate.pipeline import CurateConfig
    from distill.records import Example, Message, read_jsonl, write_jsonl

    texts, near = lsh_corpus()
    write_jsonl(tmp_path / "data.jsonl", [Example(id=f"t{i:04d}", messages=[
        Message(role="user", content="Summarise the abstract."), Message(role="assistant", content=text)])
        for i, text in enumerate(texts)])
    config = CurateConfig(threshold=0.7, num_perm=NUM_PERM, shingle_size=SHINGLE, dedup_on="response", language=None)
    result = run_curate(tmp_path / "data.jsonl", tmp_path / "out", config, Console(quiet=True), executor="ray")
    theirs = datasketch_candidates(texts, *resolve_bands(config.minhash()))
    confirmed = {(a, b) for a, b in theirs
                 if len(shingles(texts[a]) & shingles(texts[b])) / len(shingles(texts[a]) | shingles(texts[b])) >= 0.7}
    found = {tuple(sorted((int(d["id"][1:]), int(d["duplicate_of"][1:])))) for d in read_jsonl(tmp_path / "out" / "duplicates.jsonl")}
    assert found == confirmed == near
    assert result.dedup_info["candidate_pairs"] == len(near) - result.dedup_info["exact_removed"]
