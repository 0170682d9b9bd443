"""Decontamination against real held-out sets (MMLU professional medicine, PubMedQA) with planted
verbatim, edited and partial copies, and innocent items that share only a question stem."""

from __future__ import annotations

import json

import numpy as np
import pytest
from curate_helpers import MMLU, PUBMEDQA, mmlu, needs_data, pubmedqa

from distill.curate.decontaminate import DecontamConfig, build_index, find_contamination
from distill.curate.heldout import load_heldout, parse_heldout_option
from distill.curate.normalize import normalize_text
from distill.curate.pipeline import CurateConfig
from distill.errors import DistillError
from distill.executors.local import curate
from distill.records import Example, ExampleMeta, HeldoutSource, Message

PRO_MED = MMLU / "professional_medicine_test.csv"
STEMS = [
    "Which of the following is the most appropriate next step in management?",
    "Which of the following is the most likely diagnosis?",
    "A 45-year-old woman comes to the physician because of",
]


def edited(text: str, rate: float, rng: np.random.Generator) -> str:
    words = text.split()
    for pos in rng.choice(len(words), max(1, round(rate * len(words))), replace=False):
        words[pos] = "zzz" + words[pos][::-1]
    return " ".join(words)


@pytest.fixture(scope="module")
def index():
    items = load_heldout(HeldoutSource(path=str(PRO_MED), fields=["0", "1", "2", "3", "4"]))
    return items, build_index(items, DecontamConfig())


@pytest.fixture(scope="module")
def generated():
    """Planted copies of MMLU questions among innocent PubMedQA-based items that use MMLU stems."""
    rng = np.random.default_rng(3)
    questions = [row[0] for row in mmlu()]
    picks = rng.choice(len(questions), 90, replace=False).tolist()
    texts, kind = [], []
    for k, q in enumerate(picks):
        source = questions[q]
        if k < 30:
            texts.append(f"Question: {source}\nAnswer: think it through step by step.")
            kind.append("verbatim")
        elif k < 60:
            texts.append(edited(source, 0.05, rng))
            kind.append("edited")
        else:
            words = source.split()
            texts.append("Consider this case. " + " ".join(words[: len(words) // 2]) + " What follows?")
            kind.append("partial")
    for k, item in enumerate(pubmedqa()[:300]):
        texts.append(f"{STEMS[k % 3]} {item['QUESTION']}\n{item['LONG_ANSWER']}")
        kind.append("innocent")
    return texts, np.array(kind)


@needs_data
def test_copies_caught_and_stem_sharing_items_left_alone(index, generated):
    items, ix = index
    texts, kind = generated
    hits = find_contamination(texts, ix, DecontamConfig())
    flagged = np.zeros(len(texts), bool)
    flagged[[h.index for h in hits]] = True
    assert flagged[kind == "verbatim"].all()
    assert flagged[kind == "edited"].mean() >= 0.95
    assert flagged[kind == "partial"].mean() >= 0.95
    assert not flagged[kind == "innocent"].any()


@needs_data
def test_report_names_the_heldout_item_and_the_matching_ngram(index, generated):
    items, ix = index
    texts, kind = generated
    hits = {h.index: h for h in find_contamination(texts, ix, DecontamConfig())}
    first = hits[0]
    assert first.heldout_text[:200] in texts[0]  # the verbatim copy names its own source question
    assert len(first.ngram.split()) == 8 and first.ngram in normalize_text(texts[0])
    assert first.also_at_report_ngram  # a verbatim copy also overlaps at 13 words


def test_short_heldout_items_match_whole_and_tiny_ones_are_ignored(tmp_path):
    path = tmp_path / "quiz.jsonl"
    path.write_text('{"question": "Name the longest bone of the body"}\n{"question": "Define shock"}\n')
    ix = build_index(load_heldout(HeldoutSource(path=str(path))), DecontamConfig())
    texts = ["Quiz time! Name the longest bone of the body, please.", "Define shock in two sentences for a nurse."]
    hits = find_contamination(texts, ix, DecontamConfig())
    assert [(h.index, h.n, h.ngram) for h in hits] == [(0, 7, "name the longest bone of the body")]


def test_heldout_set_of_only_tiny_items_flags_nothing(tmp_path):
    path = tmp_path / "tiny.jsonl"
    path.write_text('{"question": "Define shock"}\n')
    ix = build_index(load_heldout(HeldoutSource(path=str(path))), DecontamConfig())
    assert find_contamination(["Define shock in two sentences for a nurse."], ix, DecontamConfig()) == []


@needs_data
def test_ngram_common_across_the_generated_set_is_a_stem(index):
    items, ix = index
    phrase = " ".join(items[10].text.split()[:16])  # a 16-word span of one held-out item only
    texts = [f"Note {k}: {phrase} and something unrelated number {k}." for k in range(6)]
    assert find_contamination(texts, ix, DecontamConfig()) == []
    assert [h.index for h in find_contamination(texts[:1], ix, DecontamConfig())] == [0]


@needs_data
def test_minhash_option_catches_edited_copies_ngrams_miss(index):
    items, _ = index
    words = items[20].text.split()
    copy = " ".join("zzz" + w if k % 30 == 15 else w for k, w in enumerate(words))  # 3% of words edited
    # With 40-grams every window of the copy holds an edit, so only MinHash can find it.
    long_grams = DecontamConfig(ngram=40, report_ngram=40)
    ix = build_index(items, long_grams)
    assert find_contamination([copy], ix, long_grams) == []
    with_minhash = DecontamConfig(ngram=40, report_ngram=40, minhash_threshold=0.5)
    hits = find_contamination([copy, "Unrelated text about hand washing in clinics and wards."], ix, with_minhash)
    assert [(h.index, h.method, h.heldout_id) for h in hits] == [(0, "minhash", items[20].id)]
    assert hits[0].similarity >= 0.5


def qa(i: str, prompt: str, answer: str) -> Example:
    return Example(id=i, messages=[Message(role="user", content=prompt), Message(role="assistant", content=answer)],
                   meta=ExampleMeta(taxonomy_path="exam/mmlu"))


@needs_data
def test_pipeline_rejects_contaminated_items_and_reports_them():
    pub = pubmedqa()
    copy = qa("copy", pub[3]["QUESTION"] + " Explain briefly.", pub[3]["LONG_ANSWER"])
    clean = qa("clean", "What is the first-line treatment of anaphylaxis?", "Intramuscular adrenaline, repeated every five minutes if needed.")
    config = CurateConfig(heldout=[HeldoutSource(path=str(PUBMEDQA), fields=["QUESTION", "LONG_ANSWER"])], workers=1)
    result = curate([copy, clean], config)
    assert [e.id for e in result.kept] == ["clean"]
    (row,) = result.contamination
    assert row.id == "copy" and row.heldout_id == f"pubmedqa_ori_pqal:{pub[3]['pmid']}"
    reject = result.rejects[0]
    assert (reject.stage, reject.reason) == ("decontaminate", "contaminated") and row.heldout_id in reject.detail
    assert result.to_stats()["curate"]["decontamination"]["flagged"] == 1


@needs_data
def test_heldout_formats_load_the_same_items(tmp_path):
    rows = [{"id": r[0][:10], "question": r[0], "answer": r[5]} for r in mmlu()[:20]]
    jsonl = tmp_path / "h.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "h.parquet")
    csv_path = tmp_path / "h.csv"
    import csv

    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "question", "answer"])
        writer.writeheader()
        writer.writerows(rows)
    texts = [r["question"] for r in rows]
    for path in (jsonl, tmp_path / "h.parquet", csv_path):
        assert [i.text for i in load_heldout(HeldoutSource(path=str(path), fields=["question"]))] == texts
    assert [i.text for i in load_heldout(HeldoutSource(path=str(jsonl)))] == texts  # `question` found by default
    pub = load_heldout(HeldoutSource(path=str(PUBMEDQA)))  # a JSON object keyed by PMID
    assert len(pub) == 1000 and pub[0].text == pubmedqa()[0]["QUESTION"]


def test_heldout_option_syntax():
    assert parse_heldout_option("data/mmlu.csv:0,1,2").fields == ["0", "1", "2"]
    assert parse_heldout_option("data/set.jsonl").fields is None


@pytest.mark.parametrize(
    ("name", "content", "fields", "message"),
    [
        ("h.jsonl", '{"question": "a b c d e"}\n{"prompt": "x"}\n', ["question"], "h.jsonl:2: field 'question' missing"),
        ("h.jsonl", '{"question": "a b c d e"}\n{"question": \n', None, "h.jsonl:2: not valid JSON"),
        ("h.txt", "just text\n", None, "unknown held-out format '.txt'"),
        ("h.jsonl", '{"body": "a b c d e"}\n', None, "no text field to match; name one (--heldout PATH:field1,field2 on the command line"),
        ("h.parquet", "not parquet", None, "not a readable Parquet file"),
        ("h.csv", "question,answer\nWhat is x?,y\n", ["stem"], "h.csv:2: field 'stem' missing"),
    ],
)
def test_bad_heldout_files_get_clear_errors(tmp_path, name, content, fields, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DistillError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_heldout(HeldoutSource(path=str(path), fields=fields))


def test_missing_heldout_file(tmp_path):
    with pytest.raises(DistillError, match="held-out file not found"):
        load_heldout(HeldoutSource(path=str(tmp_path / "nope.jsonl")))


def test_a_preamble_many_heldout_items_share_is_a_stem_a_shared_passage_is_not(tmp_path):
    """An exam's instructions repeated in front of many of its questions are a stem: a generated item that
    uses the same instructions for its own question is not a copy. A passage shared by only a few questions
    is content, and an item that reuses it is flagged. (Two generated items: too few for the other stem
    rule, n-grams common among the generated items, to decide anything.)"""
    preamble = ("Read the clinical vignette below carefully and choose the single best answer from the five "
                "options that follow it")
    passage = ("A farmer in a remote valley noticed that his cattle grew weak every spring after the river "
               "flooded the lower pastures and left a thin layer of grey silt behind")
    rows = [{"question": f"{preamble}. Case {k}: a {20 + k}-year-old presents with symptom number {k} and "
                         f"finding number {k * 7}."} for k in range(12)]
    rows += [{"question": f"{passage}. Question {k}: what explains observation {k}?"} for k in range(3)]
    path = tmp_path / "exam.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    ix = build_index(load_heldout(HeldoutSource(path=str(path))), DecontamConfig())
    texts = [f"{preamble}. A child has a barking cough at night; what is the most likely cause?",
             f"{passage}. Why might a soil test in those pastures matter for the herd?"]
    assert [h.index for h in find_contamination(texts, ix, DecontamConfig())] == [1]
