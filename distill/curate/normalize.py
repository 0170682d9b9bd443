"""Text normalisation and vectorised word / n-gram hashing shared by dedup and decontamination.

Normalised text is NFKC, lower case, with punctuation and symbols turned into spaces and runs of
whitespace collapsed. Hashing works on whole batches at once: the batch is joined into one byte
buffer and every word and n-gram hash is computed with numpy, so the per-document Python
cost is a few string operations rather than one call per word.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

_DOC_SEP = "\x00"
# Non-ASCII characters that are not letters or digits become spaces; ASCII is handled by the table.
_NON_WORD_NON_ASCII = re.compile(r"[^\x00-\x7f\w]|_")

# ASCII fast path, one C call per batch: letters are lower-cased, digits kept, every other ASCII
# byte becomes a space; the doc separator (NUL) and UTF-8 bytes of non-ASCII letters pass through.
_ASCII_TABLE = bytes(
    (c + 32 if 65 <= c <= 90 else c if (48 <= c <= 57 or 97 <= c <= 122 or c == 0 or c >= 128) else 32)
    for c in range(256)
)

_P = 0x100000001B3  # FNV prime: odd, so it is invertible modulo 2**64
_P_INV = pow(_P, -1, 1 << 64)
_Q = 0x9E3779B97F4A7C15  # golden-ratio constant (odd), combines word hashes into n-gram hashes
_Q_INV = pow(_Q, -1, 1 << 64)


def normalize_text(text: str) -> str:
    """NFKC, lower case, punctuation -> space, collapsed whitespace."""
    return " ".join(normalized_bytes_batch([text]).decode("utf-8").split())


def normalized_words(text: str) -> list[str]:
    return normalize_text(text).split()


def normalized_bytes_batch(texts: list[str]) -> bytes:
    """One byte buffer: each doc's normalised words separated by spaces, docs by NUL."""
    # Most generated text is pure ASCII (an O(1) check); only the rest pays for NFKC and a regex.
    parts = [t if t.isascii() else _unicode_to_ascii_rules(t) for t in texts]
    joined = _DOC_SEP.join(parts)
    if joined.count(_DOC_SEP) != max(len(parts) - 1, 0):  # a NUL inside a text: make it a space
        joined = _DOC_SEP.join(p.replace(_DOC_SEP, " ") for p in parts)
    return joined.encode("utf-8").translate(_ASCII_TABLE)


def _unicode_to_ascii_rules(text: str) -> str:
    return _NON_WORD_NON_ASCII.sub(" ", unicodedata.normalize("NFKC", text).lower())


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads polynomial hashes over all 64 bits (in place on a copy)."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _powers(base: int, n: int) -> np.ndarray:
    out = np.full(n, base, dtype=np.uint64)
    if n:
        out[0] = 1
    with np.errstate(over="ignore"):
        return np.cumprod(out, dtype=np.uint64)


_POW_CACHE: dict[int, np.ndarray] = {}


def _cached_powers(base: int, n: int) -> np.ndarray:
    have = _POW_CACHE.get(base)
    if have is None or len(have) < n:
        have = _powers(base, max(n, 1 << 16) * 2)
        _POW_CACHE[base] = have
    return have[:n]


@dataclass
class TokenizedBatch:
    """Word hashes of a batch, flat, with the index of each document's first word."""

    word_hashes: np.ndarray  # uint64, one per word, all docs concatenated
    doc_starts: np.ndarray  # int64, len(docs) + 1 offsets into word_hashes

    @property
    def n_docs(self) -> int:
        return len(self.doc_starts) - 1

    def word_counts(self) -> np.ndarray:
        return np.diff(self.doc_starts)


def tokenize_batch(texts: list[str]) -> TokenizedBatch:
    """Hash every normalised word of every text (position-independent 64-bit word hashes)."""
    buf = np.frombuffer(normalized_bytes_batch(texts), dtype=np.uint8)
    n = len(buf)
    is_word = (buf != 32) & (buf != 0)
    edges = np.diff(is_word.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    # Polynomial hash of each word: prefix sums of byte * P**pos, shifted back by P**-start.
    with np.errstate(over="ignore"):
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum(buf.astype(np.uint64) * _cached_powers(_P, n), out=prefix[1:])
        raw = (prefix[ends] - prefix[starts]) * _cached_powers(_P_INV, n)[starts]
        raw += (ends - starts).astype(np.uint64)  # length, so zero-padded variants differ
    word_hashes = mix64(raw)
    # Which doc each word belongs to: count separators before the word's start.
    word_doc = np.cumsum(buf == 0)[starts]
    doc_starts = np.searchsorted(word_doc, np.arange(len(texts) + 1), side="left").astype(np.int64)
    return TokenizedBatch(word_hashes=word_hashes, doc_starts=doc_starts)


def ngram_hashes(batch: TokenizedBatch, n: int, short_whole: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every word n-gram that lies inside one doc, and the doc index of each.

    A doc shorter than n words contributes one hash of all its words when `short_whole` is set
    (so short texts still get a fingerprint), and nothing otherwise. Empty docs contribute nothing.
    """
    w = batch.word_hashes
    starts = batch.doc_starts
    counts = np.diff(starts)
    total = len(w)
    with np.errstate(over="ignore"):
        prefix = np.zeros(total + 1, dtype=np.uint64)
        np.cumsum(w * _cached_powers(_Q, total), out=prefix[1:])
        inv = _cached_powers(_Q_INV, total + 1)
        word_doc = np.repeat(np.arange(len(counts)), counts)
        if total >= n:
            first = np.arange(total - n + 1)
            ok = word_doc[first] == word_doc[first + n - 1]
            first = first[ok]
            hashes = (prefix[first + n] - prefix[first]) * inv[first]
            docs = word_doc[first]
        else:
            hashes = np.empty(0, dtype=np.uint64)
            docs = np.empty(0, dtype=np.int64)
        if short_whole:
            short = np.flatnonzero((counts > 0) & (counts < n))
            if len(short):
                s, e = starts[short], starts[short + 1]
                short_hashes = (prefix[e] - prefix[s]) * inv[s]
                hashes = np.concatenate([hashes, short_hashes])
                docs = np.concatenate([docs, short])
                order = np.argsort(docs, kind="stable")
                hashes, docs = hashes[order], docs[order]
    return mix64(hashes), docs
