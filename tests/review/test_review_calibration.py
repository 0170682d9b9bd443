"""Checks calibrated against people (issue 23, scope 4): a scripted reviewer whose decisions are known, through
the installed `distill review` and a real run.db."""

from __future__ import annotations

import json
import random
import re

import pytest
from statsmodels.stats.proportion import proportion_confint

from cli_helpers import cli_env, distill
from distill.curate.dataset_io import load_examples
from distill.curate.judge import TOPIC_STEP, topic_request
from distill.curate.topic import NodeText
from distill.owned import OwnedFolder
from distill.records import GenerationResult
from distill.review.calibration import MIN_EACH, suggest_threshold
from distill.rundir import RunDir
from distill.taxonomy.snapshot import NodeInfo, TaxonomySnapshot
from review_helpers import TOPICS, example_row, review_all

PLANTED = 24  # answers that loop on a phrase: the reviewer rejects exactly these
CLEAN = 96
UNFINISHED_CLEAN, UNFINISHED_PLANTED = 12, 4  # answers whose last line has no stop, in each group


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    syllables = ["ka", "lo", "mi", "ve", "tu", "sar", "ne", "po", "di", "ru", "fe", "gan", "zo", "bi", "hu"]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(4)))
    return sorted(words)


def _ratio(text: str) -> float:
    """The share of word 3-grams that repeat, written here from its definition (not distill's code)."""
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    grams = list(zip(words, words[1:], words[2:]))
    return 1 - len(set(grams)) / len(grams)


def _dataset(directory):
    """120 items over four leaves, every word of an answer its own; PLANTED of them loop on a phrase (3-gram
    repeat share 0.4 to 0.6), a third of the clean ones repeat one phrase once (about 0.05)."""
    rng = random.Random(7)
    vocabulary = iter(_vocabulary(rng, 3000))
    leaves = list(TOPICS)
    rows, planted, scores = [], set(), {"clean": [], "planted": []}
    for k in range(PLANTED + CLEAN):
        leaf = leaves[k % len(leaves)]
        term = TOPICS[leaf][k % 5]
        unique = [next(vocabulary) for _ in range(rng.randint(14, 22))]
        is_planted = k < PLANTED
        if is_planted:
            body = unique[:3] * rng.randint(5, 7) + unique[3:10]
        else:
            body = unique + (unique[:3] if k % 3 == 0 else [])
        answer = f"About {term}: {' '.join(body)}."
        unfinished = k < UNFINISHED_PLANTED or PLANTED <= k < PLANTED + UNFINISHED_CLEAN
        if unfinished:
            answer += "\nask your nurse"  # a short last line without a stop: curation lets it pass, risk flags it
        item_id = f"item-{k:03d}"
        rows.append(example_row(item_id, leaf, f"What should I know about {term} (case {k})?", answer))
        scores["planted" if is_planted else "clean"].append(_ratio(answer))
        if is_planted:
            planted.add(item_id)
    folder = OwnedFolder.claim(directory, "curated", force=True)
    folder.write_text("dataset.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return planted, scores


JUDGED_OFF = 20  # planted items a logged topic judge voted off topic; it also voted so on CLEAN_OFF clean ones
CLEAN_OFF, UNCLEAR = 6, 2


def _log_topic_verdicts(directory, planted: set[str]) -> None:
    """The verdicts a topic judge would have logged in run.db (curate/judge.py's step and request)."""
    store = RunDir(directory).open_store()
    try:
        for k, example in enumerate(load_examples(directory / "dataset.jsonl")):
            node = NodeText(path=example.meta.taxonomy_path, title="topic", description="", lineage=[])
            request = topic_request(example, node)
            if example.id in planted:
                text = '{"on_topic": false}' if k < JUDGED_OFF else '{"on_topic": true}'
            else:
                clean = k - PLANTED
                text = ('{"on_topic": false}' if clean < CLEAN_OFF else
                        "I cannot tell" if clean < CLEAN_OFF + UNCLEAR else '{"on_topic": true}')
            store.add_call(example.meta.plan_item_id, TOPIC_STEP, "loopback", request, request.fingerprint("loopback"),
                           GenerationResult(key=request.key, text=text))
    finally:
        store.close()


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """120 items queued with the installed `distill review`, decided by a reviewer who rejects exactly the planted
    ones, then `distill review status`: (its output, stats.json's calibration rows by check, the groups' scores, the
    folder)."""
    tmp_path = tmp_path_factory.mktemp("calibration")
    directory = tmp_path / "run"
    planted, scores = _dataset(directory)
    env = cli_env(tmp_path)
    queued = distill("review", str(directory), "--size", "120", cwd=tmp_path, env=env)
    assert queued.returncode == 0, queued.stderr
    review_all(directory, reject=planted, reason="wrong")
    _log_topic_verdicts(directory, planted)
    status = distill("review", "status", str(directory), cwd=tmp_path, env=env)
    assert status.returncode == 0, status.stderr
    rows = {r["check"]: r for r in json.loads((directory / "stats.json").read_text())["review"]["calibration"]}
    return status.stdout, rows, scores, directory


@pytest.mark.slow
@pytest.mark.parametrize("name,threshold", [("repetition", 0.3), ("risk:repetition", 0.15)])
def test_the_check_that_sees_the_planted_property_agrees_with_the_reviewer(reviewed, name, threshold):
    _, rows, scores, _ = reviewed
    row = rows[name]
    assert (row["reviewed"], row["rejected"], row["flagged"], row["caught"]) == (120, PLANTED, PLANTED, PLANTED)
    assert row["precision"] == row["recall"] == 1.0 and row["threshold"] == threshold
    assert row["precision_ci"] == pytest.approx(proportion_confint(PLANTED, PLANTED, method="wilson"))
    # The suggested cut separates the groups: above every clean answer, below every planted one.
    suggested = row["suggested"]
    assert max(scores["clean"]) < suggested["threshold"] < min(scores["planted"])
    assert (suggested["flagged"], suggested["caught"], suggested["f1"]) == (PLANTED, PLANTED, 1.0)


@pytest.mark.slow
def test_a_check_blind_to_it_scores_what_it_flags(reviewed):
    # It flags what it flags whatever the reviewer did: 4 of its 16 are rejects.
    unfinished = reviewed[1]["risk:unfinished"]
    assert (unfinished["flagged"], unfinished["caught"]) == (UNFINISHED_CLEAN + UNFINISHED_PLANTED, UNFINISHED_PLANTED)
    assert unfinished["precision"] == 4 / 16 and unfinished["recall"] == 4 / PLANTED
    assert unfinished["recall_ci"] == pytest.approx(proportion_confint(4, PLANTED, method="wilson"))
    assert unfinished["suggested"] is None and unfinished["threshold"] is None  # no score, no threshold


@pytest.mark.slow
def test_a_logged_judge_is_measured_on_its_clear_verdicts(reviewed):
    judge = reviewed[1]["judge:topic_check"]
    assert (judge["reviewed"], judge["rejected"]) == (120 - UNCLEAR, PLANTED)
    assert (judge["flagged"], judge["caught"]) == (JUDGED_OFF + CLEAN_OFF, JUDGED_OFF)
    assert judge["precision"] == JUDGED_OFF / (JUDGED_OFF + CLEAN_OFF) and judge["recall"] == JUDGED_OFF / PLANTED


@pytest.mark.slow
def test_checks_nothing_reviewed_can_fail_say_so(reviewed):
    out, rows, _, _ = reviewed
    structure = rows["structure"]
    assert structure["flagged"] == 0 and structure["by_construction"] and structure["precision"] is None
    assert re.search(r"by construction.*structure", out.replace("\n", " "))
    assert not any(line.split("│")[1].strip() == "structure" for line in out.splitlines() if line.count("│") > 2)


@pytest.mark.slow
def test_status_prints_the_table(reviewed):
    out = reviewed[0]
    assert "checks against the reviewers: 120 reviewed items, 24 rejected" in out
    cells = [line.split("│") for line in out.splitlines()]
    repetition = "│".join(next(c for c in cells if len(c) > 2 and c[1].strip() == "repetition"))
    assert "24 of 24" in repetition and "1.00 (0.86-1.00)" in repetition and "0.229 (P 1.00, R 1.00" in repetition


def test_no_threshold_is_suggested_from_too_few_rejects():
    few = [(0.5, True)] * (MIN_EACH - 1) + [(0.0, False)] * 50
    assert suggest_threshold(few) is None
    enough = [(0.5, True)] * MIN_EACH + [(0.1, False)] * 50
    assert suggest_threshold(enough).threshold == 0.3


@pytest.mark.slow
def test_the_dataset_card_shows_the_checks_that_flag_something(reviewed, tmp_path):
    directory = reviewed[3]
    done = distill("export", str(directory), "--out", str(tmp_path / "ds"), "--license", "mit", cwd=tmp_path,
                   env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "| repetition | 0.3 | 24 | 24 of 24 | 1.00 (0.86 to 1.00) | 1.00 (0.86 to 1.00) | 0.2294 |" in card
    assert "| risk:unfinished | - | 16 | 4 of 24 | 0.25 (0.10 to 0.49) |" in card
    assert "| structure |" not in card  # nothing reviewed could fail it: no row of 0 of 0


OFF_TOPIC = 10  # asthma-leaf answers about heart failure: the reviewer rejects exactly these


@pytest.mark.slow
def test_off_topic_is_measured_with_the_runs_taxonomy(tmp_path):
    """A run folder with its taxonomy.json: the topic check runs as in `distill generate`, with its score."""
    directory = tmp_path / "run"
    asthma = "inhaler wheeze trigger spacer peak flow reliever preventer".split()
    heart = "breathlessness ankle swelling diuretics ejection fraction salt weight".split()
    rng = random.Random(3)
    rows, off = [], set()
    for k in range(40):
        leaf = "respiratory/asthma" if k % 2 == 0 else "cardiology/heart-failure"
        own = asthma if leaf == "respiratory/asthma" else heart
        about = heart if k < 2 * OFF_TOPIC and k % 2 == 0 else own  # every other of the first 20: the wrong leaf's
        if about is not own:
            off.add(f"item-{k:03d}")
        words = " ".join(rng.sample(about, 5))
        rows.append(example_row(f"item-{k:03d}", leaf, f"What matters most about {words.split()[0]} (case {k})?",
                                f"Patients should watch {words} closely. Ask your clinician about {about[k % 7]}."))
    snapshot = TaxonomySnapshot(name="toy", nodes=[
        NodeInfo(path="respiratory", description="Lungs and breathing."),
        NodeInfo(path="respiratory/asthma", description="Asthma: " + ", ".join(asthma) + "."),
        NodeInfo(path="cardiology", description="The heart."),
        NodeInfo(path="cardiology/heart-failure", description="Heart failure: " + ", ".join(heart) + ".")])
    folder = OwnedFolder.claim(directory, "run", force=True)
    folder.write_text("dataset.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    folder.write_text("taxonomy.json", snapshot.model_dump_json())
    env = cli_env(tmp_path)
    assert distill("review", str(directory), "--size", "40", cwd=tmp_path, env=env).returncode == 0
    review_all(directory, reject=off, reason="off_topic")
    status = distill("review", "status", str(directory), cwd=tmp_path, env=env)
    assert status.returncode == 0, status.stderr

    row = {r["check"]: r for r in json.loads((directory / "stats.json").read_text())["review"]["calibration"]}["off_topic"]
    assert row["threshold"] == round(1 / 0.3, 3) and not row["by_construction"]
    assert (row["reviewed"], row["rejected"], row["flagged"], row["caught"]) == (40, OFF_TOPIC, OFF_TOPIC, OFF_TOPIC)
    assert (row["suggested"]["caught"], row["suggested"]["flagged"], row["suggested"]["f1"]) == (OFF_TOPIC, OFF_TOPIC, 1)


def test_the_suggested_cut_has_the_best_f1_of_every_cut():
    rng = random.Random(11)
    for _ in range(50):
        pairs = [(rng.choice([None, *[round(rng.random(), 1) for _ in range(3)]]), rng.random() < 0.3)
                 for _ in range(rng.randint(20, 80))]
        rejects = sum(t for _, t in pairs)
        scored = [(s, t) for s, t in pairs if s is not None]
        f1s = [2 * sum(s >= cut and t for s, t in scored) / (sum(s >= cut for s, _ in scored) + rejects)
               for cut in {s for s, _ in scored}]
        found = suggest_threshold(pairs)
        if sum(t for _, t in scored) < MIN_EACH or sum(not t for _, t in scored) < MIN_EACH:
            assert found is None
        elif max(f1s) > 0:
            assert found.f1 == pytest.approx(max(f1s))
            assert found.flagged == sum(s >= found.threshold for s, _ in scored)  # flags at or above the cut
