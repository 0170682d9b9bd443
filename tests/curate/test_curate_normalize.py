"""The vectorised normalisation against the one-text-at-a-time reference, and the fast paths of
exact Jaccard, exact keys and grouping against their plain versions."""

from __future__ import annotations

import random
import unicodedata

import numpy as np
import pytest

from distill.curate import normalize
from distill.curate.exact import exact_keys
from distill.curate.minhash import exact_jaccard, exact_pair_jaccard, shingle_sets
from distill.curate.normalize import (
    normalize_text,
    normalized_array_batch,
    normalized_bytes_batch,
    normalized_words_once,
    tokenize_batch,
)

# ASCII, and characters for every branch: per-character forms that keep, shrink ("²", "ﬁ", "Ａ") or
# blank ("±") their bytes; context-dependent ones (combining marks, final sigma, Hangul jamo, Indic
# and Tibetan vowel signs, halfwidth voiced marks); expansions ("½", "ǆ"); astral characters; NUL; a
# lone surrogate.
PIECES = list("abcXYZ019 ,.-_'\"\t\n") + [
    "\x00", "é", "É", "e\u0301", "\u0301", "Σ", "ΣΑΣ", "ς", "½", "ﬁ", "²", "µ", "±", "≥", "°", "İ", "ß", "ẞ",
    "\u2126", "\u1100", "\u1161", "\u11a8", "가", "\u0b47", "\u0b3e", "\u0f73", "\uff9e", "ｶ", "Ａ", "\u00a0",
    "\u2003", "😀", "𝐀", "\ud800", "ǅ", "™", "…", "\u3131", "\u314f", "Ⅳ", "\ufdfa", "\u0345", "\u200b",
    "\u0307", "\U00011127", "Größe", "naïve", "ﬂuid",
]


def canonical(buf: bytes) -> list[str]:
    return [" ".join(doc.decode("utf-8", "surrogatepass").split()) for doc in buf.split(b"\x00")]


def random_texts(rng: random.Random, n: int, length: int) -> list[str]:
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, length))) for _ in range(n)]


def test_the_checks_words_equal_the_reference_words():
    # Every ASCII character (NUL, underscores and controls included) takes the one-table path; the rest the
    # reference's; asked twice, the remembered answer is the same.
    rng = random.Random(3)
    ascii_pieces = [chr(c) for c in range(128)] + ["Hello", "WORLD_x", "a-b", "  "]
    texts = ["".join(rng.choice(ascii_pieces) for _ in range(rng.randint(0, 30))) for _ in range(3000)]
    texts += random_texts(rng, 1000, 12)
    for text in texts + texts[:50]:
        assert normalized_words_once(text) == tuple(normalize_text(text).split()), repr(text)


def test_batch_normalisation_equals_the_reference_text_by_text():
    rng = random.Random(0)
    for _ in range(1500):
        texts = random_texts(rng, rng.randint(1, 6), 12)
        assert canonical(normalized_bytes_batch(texts)) == [normalize_text(t) for t in texts]


@pytest.mark.parametrize("lead_space", [False, True])
def test_large_batches_with_few_context_dependent_docs_match_too(lead_space):
    """Batches where the rare docs take the string path and are spliced back in (and ones where
    shrinking characters are common enough to be deleted from the whole buffer instead)."""
    rng = random.Random(1)
    plain = ["Patients received 5 µg ± 2 at ≥ 37 °C", "Größe und Gewicht", "ascii only words", "", "x"]
    for rare in (0.02, 0.3):
        for _ in range(40):
            texts = [
                rng.choice(plain) + " " + "".join(rng.choice(PIECES) for _ in range(5)) if rng.random() < rare
                else rng.choice(plain) for _ in range(rng.randint(20, 150))
            ]
            buf, nul = normalized_array_batch(texts, lead_space=lead_space)
            assert len(nul) == len(texts) - 1 and (buf[nul] == 0).all()
            assert canonical(buf.tobytes()) == [normalize_text(t) for t in texts]
            if lead_space:
                assert all(doc[:1] == b" " for doc in buf.tobytes().split(b"\x00"))


def test_every_composing_starter_is_treated_as_context_dependent():
    """Characters that canonical composition can join to the character before them, from the
    Unicode database: combining marks, and the starters listed in `_COMPOSING_STARTER_RANGES`."""
    seconds = {int(d.split()[1], 16) for cp in range(0x110000)
               if (d := unicodedata.decomposition(chr(cp))) and not d.startswith("<") and len(d.split()) == 2}
    seconds |= set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))  # Hangul V and T jamo
    assert all(normalize._may_combine(chr(cp)) for cp in seconds)
    assert not any(normalize._may_combine(chr(cp)) for cp in range(0x80))


def test_tokenize_counts_words_per_doc_and_hashes_equal_words_equally():
    batch = tokenize_batch(["Aspirin, aspirin!", "", "  ", "ASPIRIN x", "x\x00y"])
    assert batch.word_counts().tolist() == [2, 0, 0, 2, 2]
    w = batch.word_hashes
    assert w[0] == w[1] == w[2] and w[3] == w[4] != w[0]


def test_exact_keys_equal_exactly_when_normalised_texts_are_equal():
    rng = random.Random(2)
    texts = random_texts(rng, 3000, 5) + ["Same text.", "same   TEXT", " same text ", "same-text", "sametext"]
    keys = exact_keys(texts, workers=2)
    assert (keys == exact_keys(texts, workers=1)).all()
    first: dict[str, int] = {}
    for key, text in zip(keys.tolist(), texts):
        assert first.setdefault(normalize_text(text), key) == key
    assert len(set(keys.tolist())) == len(first)


def test_vectorised_pair_jaccard_equals_set_by_set():
    rng = np.random.default_rng(3)
    words = "the of and a to in is was for with that on as by patients study".split()
    texts = [" ".join(rng.choice(words, int(rng.integers(0, 30)))) for _ in range(300)]
    texts += [texts[5] + " the the the of of", "", ""]
    pairs = np.sort(rng.integers(0, len(texts), (2000, 2)), axis=1)
    pairs = np.vstack([pairs, [[300, 5], [301, 302], [0, 301]]])
    sets = shingle_sets(texts, 5)
    expected = [exact_jaccard(sets[i], sets[j]) for i, j in pairs.tolist()]
    assert np.allclose(exact_pair_jaccard(texts, pairs, 5, workers=2), expected)
