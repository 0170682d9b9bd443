"""Content words: what the self-containedness and topic checks compare, without function words.

A dependency-free tokenizer (lower case, letters and digits, hyphenated terms kept whole) and a light
suffix folding so "infections" meets "infection" and "treated" meets "treat". No stemmer library:
the topic check compares a few hundred words per node, and a crude fold that never merges two
medical terms is all it needs (Porter would fold "organ"/"organic", "gener"/"general" ...).
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")

STOPWORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below between
both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each few for from
further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his
how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't my myself no nor
not of off on once only or other ought our ours ourselves out over own same shan't she she'd she'll she's should
shouldn't so some such than that that's the their theirs them themselves then there there's these they they'd
they'll they're they've this those through to too under until up very was wasn't we we'd we'll we're we've were
weren't what what's when when's where where's which while who who's whom why why's with won't would wouldn't you
you'd you'll you're you've your yours yourself yourselves also may might must shall will just can't even ever
still yet however although though whether either neither via per etc e g ie eg vs versus
""".split())

# Words that frame a question without naming what it is about: "What is the mechanism of action?",
# "What should I do next?", "Is it serious in children?". A question made only of these (and stop
# words) names no subject. Domain-general on purpose, with the frame words of clinical questions.
GENERIC = frozenset("""
what which who whom whose when where why how
best better worst next first last second main most more less least likely usual usually typical typically
common commonly generally general overall often always never sometimes much many long soon early late
way ways thing things something anything everything nothing stuff type types kind kinds sort form forms part
cause causes causing caused reason reasons factor factors consequence consequences impact aspect aspects
intervention interventions
treat treats treated treating treatment treatments therapy therapies manage manages managed management managing
cure cures care handle handled approach approaches option options choice choices plan plans strategy strategies
diagnose diagnosed diagnosis diagnoses diagnosing test tests testing tested check checks checked exam examination
investigation investigations workup work-up assessment assess evaluate evaluation
symptom symptoms sign signs feature features finding findings presentation present presents
mechanism mechanisms action actions work works working worked effect effects affect affects side role function
risk risks benefit benefits advantage advantages disadvantage disadvantages complication complications
prognosis outlook outcome outcomes course result results chance chances rate rates
condition conditions disease diseases disorder disorders problem problems issue issues illness illnesses
syndrome diagnosis-related medicine medicines medication medications drug drugs dose doses
patient patients person people someone somebody anyone everyone doctor doctors clinician clinicians physician
physicians nurse provider providers specialist specialists
adult adults child children kid kids baby babies infant infants man men woman women elderly older younger young
case cases situation situations scenario scenarios example examples
need needs needed know knows tell explain describe describes mean means meaning define definition happen
happens happened happening occur occurs occurred do does did done doing make makes made get gets got go goes
going come comes see sees seen look looks seem seems take takes taken taking give gives given use uses used using
help helps helped start starts started stop stops stopped continue change changes changed avoid prevent
important serious normal abnormal safe unsafe dangerous worried worry concern concerns concerned fine okay ok
good bad right wrong well poor high low increased decreased
can could would should must will shall may might
yes no please thanks thank question questions answer answers information info detail details
""".split())

PRONOUNS = frozenset("it this that these those they them its their he she him his her".split())

_SUFFIXES = ("s", "ing", "ed")


def words(text: str) -> list[str]:
    """Lower-case word tokens; hyphenated terms and contractions stay one token."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def fold(word: str) -> str:
    """A light suffix fold: plural and -ing/-ed endings, only on words long enough to keep a stem of 4+."""
    if word.endswith("ies") and len(word) > 5:
        return word[:-3] + "y"
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4 and not word.endswith(("ss", "us", "is")):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> list[str]:
    """Folded words that carry meaning: no stop words, no bare numbers, no single letters."""
    return [fold(w) for w in words(text) if w not in STOPWORDS and len(w) > 1 and not w.isdigit()]


def subject_words(text: str, extra_generic: frozenset[str] = frozenset()) -> list[str]:
    """Words of a question that could name its subject: neither stop words, nor generic frame words."""
    return [w for w in words(text) if w not in STOPWORDS and w not in GENERIC and w not in extra_generic
            and w not in PRONOUNS and len(w) > 1 and not w.isdigit()]
