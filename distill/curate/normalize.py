"""Text normalisation and vectorised word / n-gram hashing shared by dedup and decontamination.

Normalised text is NFKC, lower case, with punctuation and symbols turned into spaces and runs of
whitespace collapsed. Hashing works on whole batches at once: the batch is joined into one byte
buffer and every word and n-gram hash is computed with numpy, so the per-document Python
cost is a few string operations rather than one call per word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_DOC_SEP = "\x00"
_SEP_BYTES = b"\x00"
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
    """NFKC, lower case, punctuation -> space, collapsed whitespace (the reference, one text at a time)."""
    ascii_rules = _reference_rules(text.replace(_DOC_SEP, " ")).encode("utf-8", "surrogatepass").translate(_ASCII_TABLE)
    return " ".join(ascii_rules.decode("utf-8", "surrogatepass").split())


def normalized_words(text: str) -> list[str]:
    return normalize_text(text).split()


# normalize_text's ASCII rules in one table, the document separator (NUL) included: on ASCII text NFKC and
# lower case change nothing the table does not.
_ASCII_WORDS_TABLE = b" " + _ASCII_TABLE[1:]


@lru_cache(maxsize=8)
def normalized_words_once(text: str) -> tuple[str, ...]:
    """`normalized_words(text)`, remembered for the last few texts. The checks ask for the words of the same
    prompt and answer up to five times a record (normalize_text was 15% of curation, issue 24); a small cache
    keyed by the text keeps every check's `(example, settings)` signature. ASCII text takes one translate."""
    if text.isascii():
        return tuple(text.encode("ascii").translate(_ASCII_WORDS_TABLE).decode("ascii").split())
    return tuple(normalize_text(text).split())


def _reference_rules(text: str) -> str:
    """The Unicode rules on one string: NFKC, lower case, non-ASCII non-word characters -> space."""
    return _NON_WORD_NON_ASCII.sub(" ", unicodedata.normalize("NFKC", text).lower())


def normalized_bytes_batch(texts: Sequence[str]) -> bytes:
    """One UTF-8 buffer: each doc's normalised words separated by spaces (runs of them), docs by NUL."""
    return normalized_array_batch(texts)[0].tobytes()


def normalized_array_batch(texts: Sequence[str], lead_space: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`normalized_bytes_batch` as a uint8 array, and the positions of its doc separators.

    The buffer equals each `normalize_text` result joined by NUL, up to runs of spaces (and with a
    space before every doc when `lead_space` is set, so that each word follows at least one space).

    Pure ASCII batches take one `bytes.translate`. Otherwise the non-ASCII characters are decoded
    from the UTF-8 buffer with numpy and each distinct code point is replaced by its own normalised
    form (cached). That equals normalising the whole text whenever no character composes or
    reorders with a neighbour and lower case needs no context; the few docs where that is not
    certain (combining marks, Hangul jamo, Indic vowel signs, capital sigma, expansions longer than
    the character) take the string path first.
    """
    parts = list(texts)
    buf = _normalized(parts, lead_space)
    nul = np.flatnonzero(buf == 0)
    if len(nul) != max(len(parts) - 1, 0):  # a NUL inside a text: make it a space
        buf = _normalized([p.replace(_DOC_SEP, " ") for p in parts], lead_space)
        nul = np.flatnonzero(buf == 0)
    return buf, nul


def _encode(parts: list[str], lead_space: bool) -> bytearray:
    # Each text encoded on its own: joining strings first widens every ASCII text to the widest
    # character in the batch and costs twice as much.
    encoded = [p.encode("utf-8", "surrogatepass") for p in parts]
    if lead_space:
        return bytearray(b" ") + bytearray(b"\x00 ").join(encoded)
    return bytearray(_SEP_BYTES).join(encoded)


# Docs whose characters all have a per-character form but shrink a word ("²" -> "2", "ﬁ" -> "fi")
# take the string path while they are at most this share of a batch; above it one compress of the
# whole buffer is cheaper.
_SHRINKING_DOCS_SLOW = 0.05


def _normalized(parts: list[str], lead_space: bool) -> np.ndarray:
    encoded = _encode(parts, lead_space)
    # The ASCII table leaves bytes >= 128 alone, so it can go first; replacements are translated already.
    buf = np.frombuffer(encoded.translate(_ASCII_TABLE), dtype=np.uint8)
    if encoded.isascii():
        return buf
    lead, cps = _decode_non_ascii(buf)
    codes, which = np.unique(cps, return_inverse=True)
    reps = [_code_point_rule(c) for c in codes.tolist()]
    unsafe = [k for k, rep in enumerate(reps) if rep is None]
    shrinking = [k for k, (cp, rep) in enumerate(zip(codes.tolist(), reps)) if rep is not None and _shrinks(cp, rep)]
    slow = np.empty(0, dtype=np.int64)
    if unsafe or shrinking:
        nul = np.flatnonzero(buf == 0)
        if len(nul) != len(parts) - 1:  # a NUL inside a text: the caller replaces them first
            return buf
        doc_of = np.searchsorted(nul, lead)
        # Docs holding a character whose form depends on its neighbours take the string path, and so
        # do those with a shrinking character while they are few.
        slow = unique_sorted(doc_of[np.isin(which, unsafe)])
        if shrinking:
            with_shrinking = unique_sorted(doc_of[np.isin(which, shrinking)])
            if len(with_shrinking) <= _SHRINKING_DOCS_SLOW * len(parts):
                slow = unique_sorted(np.concatenate([slow, with_shrinking]))
        if len(slow):
            fast = ~np.isin(doc_of, slow)
            lead, which = lead[fast], which[fast]
    if len(lead):  # (`which` still holds the code of each of them)
        # Each character's bytes are overwritten by its replacement, padded with spaces where the
        # replacement is only spaces and with a marker byte, deleted afterwards, where it holds a word.
        table = np.empty((len(codes), 4), dtype=np.uint8)
        for k, rep in enumerate(reps):
            if rep is not None:
                table[k] = np.frombuffer(rep.ljust(4, b" " if rep.strip(b" ") == b"" else bytes([_GONE])), dtype=np.uint8)
        size = _sequence_length(buf[lead])
        for j in range(4):
            sel = np.flatnonzero(size > j) if j >= 2 else slice(None)
            buf[lead[sel] + j] = table[which[sel], j]
    if len(slow):
        buf = _splice(buf, nul, slow, [parts[d] for d in slow.tolist()], lead_space)
    if shrinking and np.isin(which, shrinking).any():
        buf = buf[buf != _GONE]
    return buf


def _splice(buf: np.ndarray, nul: np.ndarray, docs: np.ndarray, texts: list[str], lead_space: bool) -> np.ndarray:
    """`buf` with docs `docs` (sorted) replaced by the string path's normalisation of `texts`."""
    starts = np.r_[0, nul + 1]
    ends = np.r_[nul, len(buf)]
    pieces, prev = [], 0
    for d, text in zip(docs.tolist(), texts):
        done = (" " if lead_space else "") + _reference_rules(text)
        pieces += [buf[prev : starts[d]], np.frombuffer(done.encode("utf-8", "surrogatepass").translate(_ASCII_TABLE), np.uint8)]
        prev = ends[d]
    pieces.append(buf[prev:])
    return np.concatenate(pieces)


def _shrinks(cp: int, rep: bytes) -> bool:
    """A replacement holding a word and shorter than the character: the gap must be deleted."""
    return rep.strip(b" ") != b"" and len(rep) < _utf8_length(cp)


_GONE = 0xFF  # never a byte of UTF-8


def _sequence_length(lead_bytes: np.ndarray) -> np.ndarray:
    return 2 + (lead_bytes >= 0xE0).astype(np.int64) + (lead_bytes >= 0xF0)


def _utf8_length(cp: int) -> int:
    return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4


def _decode_non_ascii(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the first byte of every non-ASCII character in UTF-8 `raw`, and its code point."""
    lead = np.flatnonzero(raw >= 0xC0)
    padded = np.concatenate([raw, np.zeros(3, np.uint8)])
    b = [padded[lead + j].astype(np.int64) & 0x3F for j in range(4)]
    first = raw[lead].astype(np.int64)
    size = _sequence_length(raw[lead])
    cps = np.where(
        size == 2, ((first & 0x1F) << 6) | b[1],
        np.where(size == 3, ((first & 0x0F) << 12) | (b[1] << 6) | b[2], ((first & 0x07) << 18) | (b[1] << 12) | (b[2] << 6) | b[3]),
    )
    return lead, cps


_RULES: dict[int, bytes | None] = {}


def _code_point_rule(cp: int) -> bytes | None:
    """The normalised UTF-8 form of one non-ASCII character, or None where context could change it."""
    if cp in _RULES:
        return _RULES[cp]
    ch = chr(cp)
    nfkc = unicodedata.normalize("NFKC", ch)
    first = unicodedata.normalize("NFKD", ch)[0]
    if _may_combine(ch) or _may_combine(first) or _CAPITAL_SIGMA in nfkc:
        rep = None
    else:
        rep = _reference_rules(ch).encode("utf-8", "surrogatepass").translate(_ASCII_TABLE)
        if len(rep) > _utf8_length(cp):
            rep = None  # an expansion ("½" -> "1 2"): rare, so not worth a variable-length rewrite
    _RULES[cp] = rep
    return rep


_CAPITAL_SIGMA = "\u03a3"  # lower case depends on the next letter (final sigma)
# Starters that canonical composition may join to the character before them (checked against the
# Unicode database in the tests): Indic and Tibetan vowel signs, Myanmar, Hangul jamo, Balinese, and
# everything outside the BMP, to be safe.
_COMPOSING_STARTER_RANGES = ((0x0900, 0x11FF), (0x1B00, 0x1B7F), (0x10000, 0x10FFFF))


def _may_combine(ch: str) -> bool:
    cp = ord(ch)
    return unicodedata.combining(ch) != 0 or any(lo <= cp <= hi for lo, hi in _COMPOSING_STARTER_RANGES)


def run_batches(job: Callable[[int], int], starts: list[int], workers: int = 1, done: Callable[[int], None] | None = None) -> None:
    """job(start) for every start, on up to `workers` threads, `done(result)` in order in this thread.

    Threads, not processes: the numpy work releases the GIL for most of the time, nothing is copied
    to or from a worker, and nothing is forked (forking a process that has started torch's threads
    can deadlock the child)."""
    if workers > 1 and len(starts) > 1:
        with ThreadPoolExecutor(min(workers, len(starts)), thread_name_prefix="distill-curate") as pool:
            for result in pool.map(job, starts):
                if done:
                    done(result)
    else:
        for start in starts:
            result = job(start)
            if done:
                done(result)


def unique_sorted(x: np.ndarray) -> np.ndarray:
    """np.unique by sorting: numpy 2.3+ takes a hash table for plain `np.unique`, several times slower
    on a million mostly distinct integers."""
    s = np.sort(x, axis=None)
    if len(s) < 2:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


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


def _prefix_sums(values: np.ndarray, base: int) -> np.ndarray:
    """0, then the running sums of values[i] * base**i (mod 2**64). The sum goes to another array:
    numpy's cumsum holds the GIL when its output overlaps its input, and releases it otherwise."""
    with np.errstate(over="ignore"):
        terms = np.multiply(values, _cached_powers(base, len(values)), dtype=np.uint64)
        prefix = np.empty(len(values) + 1, dtype=np.uint64)
        prefix[0] = 0
        np.cumsum(terms, out=prefix[1:])
    return prefix


@dataclass(eq=False)
class TokenizedBatch:
    """Word hashes of a batch, flat, with the index of each document's first word."""

    word_hashes: np.ndarray  # uint64, one per word, all docs concatenated
    doc_starts: np.ndarray  # int64, len(docs) + 1 offsets into word_hashes

    @property
    def n_docs(self) -> int:
        return len(self.doc_starts) - 1

    def word_counts(self) -> np.ndarray:
        return np.diff(self.doc_starts)

    def span_hashes(self, first: np.ndarray, length: np.ndarray | int) -> np.ndarray:
        """Hash of the words first .. first + length - 1 (spans inside one doc): the same value for
        the same words wherever they are, as n-gram and whole-short-doc fingerprints."""
        if self._prefix is None:
            # Polynomial prefix sums of word hashes * Q**pos; a span is shifted back by Q**-first.
            self._prefix = _prefix_sums(self.word_hashes, _Q)
        with np.errstate(over="ignore"):
            return mix64((self._prefix[first + length] - self._prefix[first]) * _cached_powers(_Q_INV, len(self._prefix))[first])

    _prefix: np.ndarray | None = None  # filled on first use


def tokenize_batch(texts: Sequence[str]) -> TokenizedBatch:
    """Hash every normalised word of every text (position-independent 64-bit word hashes)."""
    if not len(texts):
        return TokenizedBatch(word_hashes=np.empty(0, np.uint64), doc_starts=np.zeros(1, np.int64))
    buf, nul = normalized_array_batch(texts)
    n = len(buf)
    # Word bytes are > 32 after normalisation (spaces 32, doc separators 0); edges alternate start, end.
    is_word = np.zeros(n + 2, dtype=bool)
    np.greater(buf, 32, out=is_word[1:-1])
    edges = np.flatnonzero(is_word[1:] != is_word[:-1])
    starts, ends = edges[0::2], edges[1::2]
    # Polynomial hash of each word: prefix sums of byte * P**pos, shifted back by P**-start.
    prefix = _prefix_sums(buf, _P)
    with np.errstate(over="ignore"):
        raw = (prefix[ends] - prefix[starts]) * _cached_powers(_P_INV, n)[starts]
        raw += (ends - starts).astype(np.uint64)  # length, so zero-padded variants differ
    # Doc k starts at the first word after the k-th separator.
    doc_starts = np.empty(len(texts) + 1, dtype=np.int64)
    doc_starts[0], doc_starts[-1] = 0, len(starts)
    doc_starts[1:-1] = np.searchsorted(starts, nul)
    return TokenizedBatch(word_hashes=mix64(raw), doc_starts=doc_starts)


def shingle_hashes(batch: TokenizedBatch, n: int, short_whole: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every word n-gram that lies inside one doc, grouped by doc, and each doc's offset
    into them (n_docs + 1).

    A doc shorter than n words contributes one hash of all its words when `short_whole` is set
    (so short texts still get a fingerprint), and nothing otherwise. Empty docs contribute nothing.
    """
    starts = batch.doc_starts
    counts = np.diff(starts)
    total = len(batch.word_hashes)
    per_doc = np.maximum(counts - (n - 1), 0)
    short = np.flatnonzero((counts > 0) & (counts < n)) if short_whole else np.empty(0, np.int64)
    per_doc[short] = 1
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(per_doc, out=offsets[1:])
    # Every window start except those whose window crosses into the next doc.
    valid = np.ones(max(total - n + 1, 0), dtype=bool)
    crossing = (starts[1:-1, None] - np.arange(1, n)).ravel()
    valid[crossing[(crossing >= 0) & (crossing < len(valid))]] = False
    first = np.flatnonzero(valid)
    if not len(short):
        return batch.span_hashes(first, n), offsets
    # Short docs' whole hashes go in their place, in doc order.
    spans = np.full(offsets[-1], n, dtype=np.int64)
    spans[offsets[short]] = counts[short]
    is_long = np.ones(offsets[-1], dtype=bool)
    is_long[offsets[short]] = False
    firsts = np.empty(offsets[-1], dtype=np.int64)
    firsts[is_long] = first
    firsts[offsets[short]] = starts[short]
    return batch.span_hashes(firsts, spans), offsets


def ngram_hashes(batch: TokenizedBatch, n: int, short_whole: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """`shingle_hashes` with the doc index of each hash instead of offsets."""
    hashes, offsets = shingle_hashes(batch, n, short_whole)
    return hashes, np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
