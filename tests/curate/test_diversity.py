"""`distill taxonomy diversity`: per-leaf distinct-n, self-similarity, duplicate rate and the student's embedding
spread, empty and saturated leaves, as a user meets them: a dataset curated by `distill curate` (its real dedup
writes the rejects), then the command, through the installed console script."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import statistics
from pathlib import Path

import pytest

from cli_helpers import cli_env, distill, error_lines
from distill.curate.diversity import leaf_diversity
from distill.records import Example

# One pattern with one slot (the order number): near-copies to a reader, though too far apart for dedup (5-word
# shingles at 0.7) to remove.
COPIES = [(f"My order NW-{50100 + i} has not arrived yet and I would like to know where it is now.",
           f"I am sorry about that; let me look up order NW-{50100 + i} for you right away.") for i in range(12)]
VARIED = [
    ("How do I reset the password of my account?", "Use the link on the sign-in page; it emails you a code."),
    ("The blender I received is cracked down one side.", "Send us a photo and we will ship a replacement today."),
    ("Can I change the delivery address of a parcel already shipped?", "Once it leaves the depot the courier decides."),
    ("Your website charged my card twice for one purchase.", "The second charge is a hold; your bank drops it soon."),
    ("Do you deliver garden furniture to Norway?", "Yes, within ten working days, customs fees paid by the buyer."),
    ("I want to stop the weekly newsletter emails.", "Every email has an unsubscribe link at the bottom of it."),
    ("The tent poles were missing from the box.", "Sorry! Missing parts go out by express post at no cost."),
    ("Is the oak dining table sold in a smaller size?", "Only the 160 cm model is made at present, I am afraid."),
    ("Why was my refund half of the price I paid?", "Opened electronics carry a restocking fee under our policy."),
    ("Please delete all the data you hold about me.", "Done within thirty days, as privacy law requires of us."),
    ("What is your return policy for clearance items?", "Clearance goods are final sale unless they arrive faulty."),
    ("The courier left my parcel in the rain and it is soaked.", "Keep the packaging; we will open a claim with them."),
]
REPEATED = [  # what the teacher kept writing in one leaf
    ("Can I pay for my order with a gift card?", "Yes, enter its code at checkout before you pay."),
    ("Where do I find the invoice of my last purchase?", "Under Orders in your account, next to each order."),
    ("Do you price match other online shops?", "No, but we refund the difference if our own price drops."),
    ("How long does standard delivery take to Ireland?", "Three to five working days from the day it ships."),
]
TAXONOMY = """\
name: shop
description: Support tickets for an online shop
task: qa
system_prompt: You are the shop's support agent.
tree:
  support:
    description: Customer support
    seeds: seeds.jsonl
    children:
      copies:
        description: Where is my order
      varied:
        description: Anything else
      repeats:
        description: Questions the teacher kept writing again
      empty:
        description: A leaf nobody wrote for
"""


def row(leaf: str, number: int, question: str, answer: str) -> dict:
    return {"id": f"{leaf}-{number}", "meta": {"taxonomy_path": f"support/{leaf}"},
            "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


@pytest.fixture
def curated(tmp_path: Path) -> tuple[Path, Path, dict]:
    """(curated folder, taxonomy file, env): 12 near-copies, 12 varied examples, and a leaf whose 4 examples the
    teacher wrote 3 times each (exact copies and a near one), curated for real."""
    rows = [row("copies", i, *pair) for i, pair in enumerate(COPIES)]
    rows += [row("varied", i, *pair) for i, pair in enumerate(VARIED)]
    for i, (question, answer) in enumerate(REPEATED):
        rows += [row("repeats", 3 * i, question, answer), row("repeats", 3 * i + 1, question, answer),
                 row("repeats", 3 * i + 2, question, answer + " Thank you.")]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    taxonomy = tmp_path / "shop.yaml"
    taxonomy.write_text(TAXONOMY, encoding="utf-8")
    (tmp_path / "seeds.jsonl").write_text(json.dumps({"id": "s1", "question": VARIED[0][0], "answer": VARIED[0][1]})
                                          + "\n", encoding="utf-8")
    env = cli_env(tmp_path)
    out = tmp_path / "curated"
    done = distill("curate", str(data), "--out", str(out), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return out, taxonomy, env


def leaves_of(out: Path) -> dict:
    return json.loads((out / "diversity.json").read_text(encoding="utf-8"))["leaves"]


def test_leaf_diversity_ranks_leaves_as_the_re_planning_reads_them():
    """The library call `distill improve` makes: self-similarity 0..1, higher for the leaf of near-copies; an
    empty leaf and a leaf of duplicates named, each with its cause."""
    examples = [Example.model_validate(row("copies", i, *pair)) for i, pair in enumerate(COPIES)]
    examples += [Example.model_validate(row("varied", i, *pair)) for i, pair in enumerate(VARIED)]
    rejects = [{"id": f"r{i}", "stage": "dedup", "reason": "near_duplicate", "detail": "", "node_path": "support/varied"}
               for i in range(12)]
    leaves = leaf_diversity(examples, leaves=["support/copies", "support/varied", "support/empty"], rejects=rejects)
    assert list(leaves) == ["support/copies", "support/empty", "support/varied"]
    copies, varied = leaves["support/copies"], leaves["support/varied"]
    assert 1 >= copies.self_similarity >= 0.3 > 0.1 >= varied.self_similarity >= 0
    assert copies.distinct_2 < varied.distinct_2
    assert copies.why == ["self_similarity"] and varied.why == ["duplicate_rate"] and varied.duplicate_rate == 0.5
    assert leaves["support/empty"].empty and leaves["support/empty"].self_similarity is None


@pytest.mark.slow  # from here on the console script in a subprocess: a few seconds each
def test_near_copies_read_as_alike_varied_texts_as_varied_and_empty_and_saturated_leaves_are_named(curated):
    out, taxonomy, env = curated
    done = distill("taxonomy", "diversity", str(out), "--taxonomy", str(taxonomy), cwd=out.parent, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    leaves = leaves_of(out)
    copies, varied = leaves["support/copies"], leaves["support/varied"]
    assert copies["examples"] == 12 and varied["examples"] == 12  # dedup left both whole
    assert copies["self_similarity"] >= 0.3 > 0.1 >= varied["self_similarity"]
    assert copies["distinct_1"] < 0.5 < varied["distinct_1"] and copies["distinct_2"] < 0.5 < varied["distinct_2"]
    assert copies["saturated"] and copies["why"] == ["self_similarity"] and not varied["saturated"]
    # Curation removed 8 of the 12 the teacher wrote there: saturated by its duplicate rate, not by its texts.
    repeats = leaves["support/repeats"]
    assert repeats["examples"] == 4 and repeats["duplicate_rejects"] == 8
    assert repeats["saturated"] and repeats["why"] == ["duplicate_rate"]
    assert leaves["support/empty"]["empty"] and leaves["support/empty"]["examples"] == 0
    assert not any(leaves[leaf]["empty"] for leaf in ("support/copies", "support/varied", "support/repeats"))
    table = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("│")}
    assert "saturated (self-sim)" in table["support/copies"] and "saturated (dup rate)" in table["support/repeats"]
    assert "empty" in table["support/empty"] and "saturated" not in table["support/varied"]
    assert "4 leaves, 1 empty, 2 saturated" in done.stdout


@pytest.mark.slow
def test_bad_run_folders_are_one_line_and_exit_2(tmp_path):
    env = cli_env(tmp_path)
    (tmp_path / "nothing").mkdir()
    for args, says in ((["missing"], "does not exist"), (["nothing"], "no dataset.jsonl"),
                       (["curated", "--train"], "no train.jsonl")):
        if args[0] == "curated":
            (tmp_path / "curated").mkdir()
            (tmp_path / "curated" / "dataset.jsonl").write_text(json.dumps(row("varied", 0, *VARIED[0])) + "\n")
        done = distill("taxonomy", "diversity", str(tmp_path / args[0]), *args[1:], cwd=tmp_path, env=env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert len(error_lines(done.stderr)) == 1 and says in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "curated" / "diversity.json").exists()


@pytest.mark.slow
def test_a_large_leaf_is_measured_on_sampled_pairs_close_to_the_exact_mean(tmp_path):
    """300 examples have 44,850 pairs: 2,000 are drawn, and their MinHash mean is near the exact mean Jaccard of
    every pair's word 3-grams (computed here with Python sets)."""
    rng = random.Random(0)
    items = ["chair", "lamp", "desk", "rug", "tent", "stove", "kettle", "sofa", "shelf", "mirror"]
    places = ["Leeds", "Cork", "Lyon", "Porto", "Graz", "Turku", "Bern", "Gent", "Split", "Bonn"]
    texts = [(f"The {rng.choice(items)} I ordered to {rng.choice(places)} came late and the box was torn open.",
              f"Sorry: we will send a new {rng.choice(items)} to {rng.choice(places)} by express post today.")
             for _ in range(300)]
    run = tmp_path / "run"
    run.mkdir()
    (run / "dataset.jsonl").write_text("".join(json.dumps(row("big", i, *pair)) + "\n" for i, pair in enumerate(texts)))
    done = distill("taxonomy", "diversity", str(run), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    big = leaves_of(run)["support/big"]
    shingles = [{tuple(words[k: k + 3]) for k in range(len(words) - 2)}
                for words in (re.findall(r"[a-z0-9]+", f"{q} {a}".lower()) for q, a in texts)]
    exact = statistics.fmean(len(a & b) / len(a | b) for a, b in itertools.combinations(shingles, 2))
    assert big["pairs"] == 2000 and 0.2 < exact < 0.6
    assert abs(big["self_similarity"] - exact) < 0.05
    assert "no taxonomy.json in the run" in done.stdout  # nothing names the leaves: no empty leaf can be told


@pytest.mark.slow
def test_embeddings_come_from_the_student_the_run_trained(curated, tmp_path):
    """The run's adapter names its base: that model is the one loaded (here a folder since moved away, so the
    command says so in one line, before anything is measured)."""
    from distill.train.manifest import Manifest, write_manifest

    out, _, env = curated
    gone = str(tmp_path / "models" / "my-student")
    (out / "student").mkdir()
    write_manifest(out / "student", Manifest(student=gone, base_model=gone, qlora=False, chat_template="{{ x }}",
                                             chat_template_sha256="0", tokenizer_sha256="0", eot_token="<|im_end|>",
                                             train_examples=1, eval_examples=1, train_sha256="0", eval_sha256="0",
                                             config={}))
    done = distill("taxonomy", "diversity", str(out), "--embeddings", cwd=out.parent, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(error_lines(done.stderr)) == 1 and gone in done.stderr and "does not exist" in done.stderr


@pytest.mark.model
def test_the_students_embeddings_spread_a_tight_leaf_less_than_a_varied_one(curated):
    out, taxonomy, env = curated
    env = {**env, "DISTILL_CACHE_DIR": os.environ.get("DISTILL_CACHE_DIR", str(Path.home() / ".cache" / "distill"))}
    done = distill("taxonomy", "diversity", str(out), "--embeddings", cwd=out.parent, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    leaves = leaves_of(out)
    copies, varied = leaves["support/copies"], leaves["support/varied"]
    assert copies["embedded"] == 12 and varied["embedded"] == 12
    assert copies["embedding_spread"] < 0.5 * varied["embedding_spread"]
    assert "spread" in done.stdout
    assert json.loads((out / "diversity.json").read_text())["embedding_model"] == "local"
