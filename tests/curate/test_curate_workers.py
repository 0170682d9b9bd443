"""Curation on two workers: the same results as on one, and safe inside a process that has started
torch's threads (as `distill generate` has), where forking a worker process could deadlock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import ROOT, TESTS
from distill.curate.decontaminate import DecontamConfig, build_index, find_contamination
from distill.curate.exact import exact_keys
from distill.curate.heldout import HeldoutItem
from distill.curate.minhash import MinHashConfig, find_near_duplicates


def corpus(n: int, seed: int = 0) -> list[str]:
    """n texts of 40 words from a 2,000-word vocabulary, every tenth a copy of an earlier one with
    one word changed (5-gram Jaccard ~0.76), every 25th an exact copy in other case and punctuation."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{k}" for k in range(2000)]
    texts = [" ".join(rng.choice(vocab, 40)) for _ in range(n)]
    for i in range(10, n, 10):
        words = texts[int(rng.integers(0, i))].split()
        words[int(rng.integers(0, 40))] = "changed"
        texts[i] = " ".join(words)
    for i in range(25, n, 25):
        texts[i] = texts[i - 7].upper().replace(" ", ", ")
    return texts


@pytest.mark.slow
def test_two_workers_give_the_same_results_as_one():
    texts = corpus(4100)  # three batches (2,000 texts each): the threads really share the work
    one = find_near_duplicates(texts, MinHashConfig(), workers=1)
    two = find_near_duplicates(texts, MinHashConfig(), workers=2)
    assert one.duplicates and one.duplicates == two.duplicates
    assert (one.pairs == two.pairs).all() and np.array_equal(one.similarities, two.similarities)
    assert (exact_keys(texts, workers=1) == exact_keys(texts, workers=2)).all()
    items = [HeldoutItem(id=f"h{k}", text=texts[k], source="test") for k in range(0, 300, 3)]
    index = build_index(items, DecontamConfig())
    hits_one = find_contamination(texts, index, DecontamConfig(), workers=1)
    assert hits_one and hits_one == find_contamination(texts, index, DecontamConfig(), workers=2)


@pytest.mark.slow
def test_curation_with_workers_runs_where_torch_has_started_its_threads():
    pytest.importorskip("torch")
    script = textwrap.dedent(f"""
        import os, sys
        sys.path[:0] = [{str(ROOT)!r}, {str(TESTS)!r}, {str(Path(__file__).resolve().parent)!r}]
        import torch
        torch.set_num_threads(2)
        torch.ones(512, 512) @ torch.ones(512, 512)  # starts the intra-op thread pool
        def no_fork(*args, **kwargs):
            raise AssertionError("curation forked a process")
        os.fork = no_fork
        from test_curate_workers import corpus
        from distill.executors.local import curate
        from distill.curate.pipeline import CurateConfig
        from distill.records import Example, ExampleMeta, Message
        texts = corpus(4100)
        examples = [
            Example(id=f"ex{{k}}", messages=[Message(role="user", content="Write a note."),
                    Message(role="assistant", content=t + ".")], meta=ExampleMeta(taxonomy_path="a/b"))
            for k, t in enumerate(texts)
        ]
        result = curate(examples, CurateConfig(workers=2, language=None))
        reasons = result.total.reasons
        print(reasons["exact_duplicate"], reasons["near_duplicate"])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    exact, near = map(int, done.stdout.split())
    assert exact >= 120 and near >= 250
