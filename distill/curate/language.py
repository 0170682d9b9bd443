"""A small, dependency-free language guess: writing system first, then stop-word share.

Good enough to catch a teacher that answered in the wrong language; it abstains (None) on text too
short or too ambiguous to call, so it never rejects a terse answer on a guess.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence

from distill.curate.normalize import normalize_text

_STOPWORDS = {
    # Words that are also common English words ("a", "do", "in", "die") are left out of the others.
    "en": "the of and to in is that for it with as was on are be by this which or from at an not have has can should",
    "es": "el la de que y en los las del por un una con para es al lo como más pero sus ya",
    "fr": "le la les de des et en un une du est que qui dans pour pas sur au avec ce il elle sont par",
    "de": "der das und ist nicht zu den mit von sich des auf für im dem ein eine auch als wird",
    "it": "il di che la le gli per un una non sono della del con nel alla anche come più questo",
    "pt": "os de da que em um uma para com não na por mais dos das ao",
    "nl": "de het een en van dat op te zijn voor met niet aan er ook als bij door",
}
_SETS = {lang: set(words.split()) for lang, words in _STOPWORDS.items()}
_LANGUAGES_OF = {word: [lang for lang, stop in _SETS.items() if word in stop] for word in set().union(*_SETS.values())}
_SCRIPTS = {
    "CJK": "zh", "HIRAGANA": "ja", "KATAKANA": "ja", "HANGUL": "ko", "CYRILLIC": "ru", "ARABIC": "ar",
    "GREEK": "el", "HEBREW": "he", "DEVANAGARI": "hi", "THAI": "th",
}
# What `detect_language` can answer: a language outside these would reject every answer it can call.
KNOWN_LANGUAGES = tuple(sorted({*_STOPWORDS, *_SCRIPTS.values()}))
ANY_LANGUAGE = ("any", "none", "")  # the check is off


def expected_language(value: str | None) -> str | None:
    """The language the check expects (None: off), or a ValueError naming the ones it knows."""
    if value is None or value.strip().lower() in ANY_LANGUAGE:
        return None
    code = value.strip().lower()
    if code not in KNOWN_LANGUAGES:
        raise ValueError(f"unknown language {value!r}; the check knows {', '.join(KNOWN_LANGUAGES)} "
                         "(or 'any' to switch it off)")
    return code


def _stopword_hits(words: Sequence[str]) -> dict[str, int]:
    """How many of `words` are each language's stop words, in `_SETS`' order (ties go to the first). One pass in
    C over the words keeps the stop words, then each distinct one counts for its languages: not a pass over the
    words per language (the scan was 20% of curation, issue 24)."""
    hits = dict.fromkeys(_SETS, 0)
    for word, times in Counter(filter(_LANGUAGES_OF.__contains__, words)).items():
        for lang in _LANGUAGES_OF[word]:
            hits[lang] += times
    return hits


def _script_language(text: str) -> str | None:
    if max(text, default="") < "\u0250":  # all Latin (or not letters): no script to count
        return None
    counts: dict[str, int] = {}
    letters = 0
    # Each distinct character once, in the order it first appears (so the scripts' order, which breaks ties,
    # is the text's), weighed by how often it occurs: a text has far fewer distinct characters than characters.
    for ch in dict.fromkeys(text):
        if not ch.isalpha():
            continue
        times = text.count(ch)
        letters += times
        if ord(ch) < 0x250:  # Latin
            continue
        name = unicodedata.name(ch, "")
        for script, lang in _SCRIPTS.items():
            if name.startswith(script):
                counts[lang] = counts.get(lang, 0) + times
                break
    if letters and counts:
        lang, count = max(counts.items(), key=lambda kv: kv[1])
        if count / letters > 0.3:
            return lang
    return None


def detect_language(text: str, min_words: int = 8, words: Sequence[str] | None = None) -> str | None:
    """ISO 639-1 code, or None when the text is too short or unclear. `words`: the text's normalised words,
    where the caller has them already."""
    if not text.isascii():
        if (script := _script_language(text)) is not None:
            return script
    if words is None:
        words = normalize_text(text).split()
    if len(words) < min_words:
        return None
    hits = _stopword_hits(words)
    *_, runner_up, best = sorted(hits.values())  # the runner-up ties the best when two languages do
    # Need some stop words at all, and a clear lead over the next language.
    if best / len(words) < 0.08 or best < 2 * runner_up:
        return None
    return next(lang for lang, count in hits.items() if count == best)
