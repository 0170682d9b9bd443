"""Exact and MinHash near-duplicate removal on real abstracts with planted copies.

Ground truth is computed independently here: exact Jaccard of word 5-gram sets built with Python
sets from `normalize_text`, not from the hashing code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from curate_helpers import abstract_words, needs_data

from distill.curate.exact import exact_keys, find_exact_duplicates
from distill.curate.minhash import MinHashConfig, detection_probability, find_near_duplicates, lsh_bands
from distill.curate.normalize import normalize_text
from distill.curate.pipeline import CurateConfig
from distill.executors.local import curate
from distill.records import Example, ExampleMeta, Message


def shingles(text: str, k: int = 5) -> set[tuple[str, ...]]:
    words = normalize_text(text).split()
    return {tuple(words[i : i + k]) for i in range(max(len(words) - k + 1, 1))}


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def edit(words: list[str], n_edits: int, rng: np.random.Generator, pool: list[str]) -> list[str]:
    out = list(words)
    for pos in rng.choice(len(out), n_edits, replace=False):
        out[pos] = pool[rng.integers(len(pool))]
    return out


@pytest.fixture(scope="module")
def planted():
    """~900 real 120-word records plus 400 copies with 0-12 words substituted (Jaccard ~0.4-1)."""
    rng = np.random.default_rng(7)
    abstracts = [w for w in abstract_words() if len(w) >= 120]
    pool = [w for words in abstracts for w in words]
    base = [" ".join(words[:120]) for words in abstracts]
    texts = list(base)
    pairs = []
    for src in rng.choice(len(base), 400, replace=False).tolist():
        copy = " ".join(edit(base[src].split(), int(rng.integers(0, 13)), rng, pool))
        texts.append(copy)
        pairs.append((src, len(texts) - 1))
    truth = np.array([jaccard(texts[i], texts[j]) for i, j in pairs])
    return texts, pairs, truth


@needs_data
def test_near_duplicates_found_and_confirmed_against_exact_jaccard(planted):
    texts, pairs, truth = planted
    config = MinHashConfig()
    result = find_near_duplicates(texts, config)
    found = {tuple(p) for p in result.pairs.tolist()}
    high = [p for p, j in zip(pairs, truth) if j >= 0.8]
    recall = np.mean([p in found for p in high])
    assert len(high) > 50 and recall >= 0.97
    # Precision after confirmation: every confirmed pair really is at or above the threshold.
    confirmed_truth = [jaccard(texts[i], texts[j]) for i, j in result.pairs.tolist()]
    assert min(confirmed_truth) >= config.threshold
    # Each removed item names what it duplicates, with that pair's true similarity.
    assert result.duplicates
    for dup in result.duplicates:
        assert dup.removed != dup.kept
        assert dup.similarity == pytest.approx(jaccard(texts[dup.removed], texts[dup.kept]), abs=1e-4)
    removed = {d.removed for d in result.duplicates}
    assert all(i not in removed for i, _ in pairs)  # the original (first) is the one kept


@needs_data
def test_detection_follows_the_lsh_s_curve(planted):
    texts, pairs, truth = planted
    # A threshold near 0 keeps every LSH candidate, so `found` is what banding alone detects.
    config = MinHashConfig(confirm="estimate", threshold=0.01, bands=18, rows=7)
    found = {tuple(p) for p in find_near_duplicates(texts, config).pairs.tolist()}
    detected = np.array([p in found for p in pairs])
    for lo in (0.4, 0.5, 0.6, 0.7, 0.8):
        in_bin = (truth >= lo) & (truth < lo + 0.1)
        if in_bin.sum() >= 30:
            expected = detection_probability(truth[in_bin], 18, 7).mean()
            # ~30-60 pairs a bin: 0.15 is about 2.5 binomial standard deviations at p = 0.5.
            assert abs(detected[in_bin].mean() - expected) < 0.15, (lo, detected[in_bin].mean(), expected)


def test_default_bands_favour_recall_above_the_threshold():
    bands, rows = lsh_bands(0.7, 128)
    assert bands * rows <= 128
    assert detection_probability(0.8, bands, rows) >= 0.97
    assert detection_probability(0.4, bands, rows) <= 0.05


def test_exact_keys_ignore_case_width_whitespace_and_punctuation():
    texts = ["Aspirin inhibits COX-1.", "aspirin   inhibits cox 1", "ＡＳＰＩＲＩＮ inhibits COX‐1!", "Aspirin inhibits COX-2."]
    keys = exact_keys(texts)
    assert keys[0] == keys[1] == keys[2] != keys[3]
    dups = find_exact_duplicates(keys)
    assert [(d.removed, d.kept) for d in dups] == [(1, 0), (2, 0)]


def qa(i: str, answer: str, node: str = "cardiology/af", **extra) -> Example:
    return Example(
        id=i,
        messages=[Message(role="user", content="Summarise the study."), Message(role="assistant", content=answer)],
        meta=ExampleMeta(taxonomy_path=node, **extra),
    )


def sentences(words: list[str]) -> str:
    return " ".join(words) + "."


@needs_data
def test_pipeline_keeps_the_best_scored_copy_and_records_what_it_duplicates(planted):
    texts, pairs, truth = planted
    src, dup = next(p for p, j in zip(pairs, truth) if 0.8 <= j < 1.0)
    low = qa("low", texts[src] + ".", quality=0.2)
    high = qa("high", texts[dup] + ".", quality=0.9)
    other = qa("other", texts[(src + 1) % 500] + ".")
    result = curate([low, high, other], CurateConfig(workers=1))
    assert [e.id for e in result.kept] == ["high", "other"]
    (row,) = result.duplicates
    assert (row.id, row.duplicate_of, row.method) == ("low", "high", "near")
    assert row.similarity == pytest.approx(jaccard(texts[src], texts[dup]), abs=0.01)
    assert result.rejects[0].reason == "near_duplicate"


@needs_data
def test_dedup_across_sets_against_an_earlier_dataset(tmp_path, planted):
    texts, pairs, truth = planted
    near = [(s, d) for (s, d), j in zip(pairs, truth) if j >= 0.85][:5]
    earlier = tmp_path / "earlier.jsonl"
    earlier.write_text("".join(qa(f"old{k}", texts[s] + ".").model_dump_json() + "\n" for k, (s, _) in enumerate(near)))
    new = [qa(f"new{k}", texts[d] + ".") for k, (_, d) in enumerate(near)]
    new.append(qa("verbatim", texts[near[0][0]].upper() + "."))  # exact copy of an earlier item
    new.append(qa("fresh", texts[700] + "."))
    result = curate(new, CurateConfig(against=[str(earlier)], workers=1))
    assert [e.id for e in result.kept] == ["fresh"]
    by_id = {row.id: row for row in result.duplicates}
    assert by_id["verbatim"].method == "exact" and by_id["verbatim"].duplicate_of == "old0"
    for k in range(len(near)):
        assert by_id[f"new{k}"].duplicate_of == f"old{k}"
        assert by_id[f"new{k}"].source == str(earlier)
    assert result.to_stats()["curate"]["dedup"]["against_items"] == len(near)
