"""The in-process teacher's decoding engine with the real SmolLM2 model: same tokens as transformers,
prefix reuse that changes nothing, rows that finish on their own, and cancellation within a step.

The model runs in float32 here so that equal inputs give equal tokens (bfloat16 rounds differently
for different batch shapes, with or without the prefix cache).
"""

from __future__ import annotations

import threading
import time

import pytest
import torch

from distill.teachers.local.decode_engine import DecodeEngine, Job, JobResult
from distill.teachers.local.prefix_cache import PrefixCache

pytestmark = pytest.mark.model

SYSTEM = ("You are a careful, accurate medical expert answering questions from clinicians and from patients. "
          "Base every answer on current mainstream evidence and guidelines, and say plainly what is uncertain.")
SHOTS = [("What is asthma?", "Asthma is a long-term condition in which the airways narrow and swell, causing "
                             "wheeze, cough, chest tightness and shortness of breath."),
         ("When should a cold be seen by a doctor?", "Most colds settle within ten days. See a doctor for a fever "
                                                     "above 39 C, breathing trouble, or symptoms beyond three weeks.")]
QUESTIONS = ["What triggers asthma attacks at night?", "How is a sore throat treated at home?",
             "Why do inhalers need a spacer?"]


@pytest.fixture(scope="module")
def model():
    from distill.models import load_causal_lm

    torch.set_num_threads(1)
    return load_causal_lm("local", dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def tokenizer():
    from distill.models import load_tokenizer

    return load_tokenizer("local")


def prompts(tokenizer) -> list[list[int]]:
    """Chat prompts that share their system and few-shot turns, as a leaf's items do."""
    shots = [m for q, a in SHOTS for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
    return [tokenizer.apply_chat_template([{"role": "system", "content": SYSTEM}, *shots,
                                           {"role": "user", "content": question}],
                                          tokenize=True, add_generation_prompt=True, return_dict=False)
            for question in QUESTIONS]


def decode(engine: DecodeEngine, jobs: list[dict], one_by_one: bool = False) -> list[JobResult]:
    """Submit jobs (all at once, or each after the previous ended) and wait for every result."""
    results: list[JobResult | None] = [None] * len(jobs)
    done = [threading.Event() for _ in jobs]

    def settle(i, result):
        results[i] = result
        done[i].set()

    for i, spec in enumerate(jobs):
        engine.submit(Job(spec["prompt"], spec.get("max_new_tokens", 24), spec.get("temperature", 0.0), 0.95,
                          spec.get("seed"), done=lambda result, i=i: settle(i, result)))
        if one_by_one:
            assert done[i].wait(300)
    for event in done:
        assert event.wait(300)
    return results


def test_greedy_tokens_match_transformers_generate(model, tokenizer):
    """Packed rows, chunked prompts (16 tokens a step) and our attention give generate's own tokens."""
    stop = {tokenizer.eos_token_id}
    asked = prompts(tokenizer)[:2]
    engine = DecodeEngine(model, stop, max_rows=4, prefill_chunk=16, prefix_cache_bytes=0)
    try:
        ours = decode(engine, [{"prompt": p} for p in asked])
    finally:
        engine.close()
    for prompt, result in zip(asked, ours):
        with torch.inference_mode():
            output = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                    max_new_tokens=24, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        expected = output[0, len(prompt):].tolist()
        expected = expected[: next((i for i, t in enumerate(expected) if t in stop), len(expected))]
        assert result.error is None and result.tokens == expected


def test_prefix_reuse_gives_the_same_greedy_tokens(model, tokenizer):
    asked = prompts(tokenizer)
    plain = DecodeEngine(model, {tokenizer.eos_token_id}, max_rows=4, prefill_chunk=32, prefix_cache_bytes=0)
    reusing = DecodeEngine(model, {tokenizer.eos_token_id}, max_rows=4, prefill_chunk=32)
    try:
        without = decode(plain, [{"prompt": p} for p in asked])
        with_reuse = decode(reusing, [{"prompt": p} for p in asked], one_by_one=True)
    finally:
        plain.close()
        reusing.close()
    shared = next(i for i, column in enumerate(zip(*asked)) if len(set(column)) > 1)  # tokens all prompts share
    assert shared > 100
    assert with_reuse[0].reused_tokens == 0
    for result in with_reuse[1:]:  # the later prompts read their shared turns from the cache
        assert shared - reusing.prefix_cache.block < result.reused_tokens <= shared
    assert [r.tokens for r in with_reuse] == [r.tokens for r in without]


def test_a_request_the_engine_cannot_take_fails_alone(model, tokenizer):
    """A request whose key-value buffer cannot be allocated gets its error; the engine goes on with the next one
    (an exception on admission used to end the engine's thread, and every caller then waited forever)."""
    asked = prompts(tokenizer)[:1]
    engine = DecodeEngine(model, {tokenizer.eos_token_id}, max_rows=4, prefix_cache_bytes=0)
    try:
        impossible, possible = decode(engine, [{"prompt": asked[0], "max_new_tokens": 2**50},
                                               {"prompt": asked[0], "max_new_tokens": 4}])
    finally:
        engine.close()
    assert impossible.error and not impossible.tokens
    assert possible.error is None and 0 < len(possible.tokens) <= 4


def test_a_short_request_is_answered_while_a_long_one_decodes(model, tokenizer):
    """Rows leave as they end: a 4-token answer does not wait for a 60-token one started before it."""
    asked = prompts(tokenizer)
    engine = DecodeEngine(model, set(), max_rows=4)  # no end token: each row runs to its max_new_tokens
    order: list[tuple[str, JobResult]] = []
    finished = threading.Event()

    def note(name):
        def settle(result):
            order.append((name, result))
            if len(order) == 2:
                finished.set()
        return settle

    try:
        engine.submit(Job(asked[0], 60, 0.0, 1.0, None, note("long")))
        engine.submit(Job(asked[1], 4, 0.0, 1.0, None, note("short")))
        assert finished.wait(300)
    finally:
        engine.close()
    assert [name for name, _ in order] == ["short", "long"]
    assert [len(result.tokens) for _, result in order] == [4, 60]
    assert not any(result.finished for _, result in order)  # cut at max_new_tokens, not by an end token


def test_a_cancelled_request_stops_within_a_step(model, tokenizer):
    """Counted in decoding steps, not seconds (a step's time is the machine's load): after the flag is set,
    at most the step under way (and one starting as the flag was set) runs."""
    engine = DecodeEngine(model, set(), max_rows=4)
    steps: list[int] = []
    engine.on_tokens = steps.append
    outcome: list[JobResult] = []
    settled = threading.Event()
    job = Job(prompts(tokenizer)[0], 400, 0.0, 1.0, None, lambda r: (outcome.append(r), settled.set()))
    try:
        engine.submit(job)
        deadline = time.monotonic() + 300
        while len(steps) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(steps) >= 3, "the engine never started decoding"
        at_cancel = len(steps)
        job.cancelled = True
        assert settled.wait(300)
        after = len(steps) - at_cancel
    finally:
        engine.close()
    assert outcome[0].error == "cancelled"
    assert after <= 2, f"{after} decoding steps ran after the cancel"


def test_sampling_follows_the_request_seed_not_the_batch(model, tokenizer):
    """A row's own generator: the same seed gives the same sample, alone or beside other rows."""
    asked = prompts(tokenizer)
    engine = DecodeEngine(model, {tokenizer.eos_token_id}, max_rows=4, prefix_cache_bytes=0)
    try:
        alone = decode(engine, [{"prompt": asked[0], "temperature": 0.7, "seed": 11}])
        together = decode(engine, [{"prompt": asked[0], "temperature": 0.7, "seed": 11},
                                   {"prompt": asked[1], "temperature": 0.7, "seed": 12}])
        other_seed = decode(engine, [{"prompt": asked[0], "temperature": 0.7, "seed": 99}])
    finally:
        engine.close()
    assert alone[0].tokens == together[0].tokens
    assert other_seed[0].tokens != alone[0].tokens


def test_prefix_cache_keeps_under_its_size_and_drops_children_first():
    kv = torch.zeros(1, 2, 1, 64, 4)  # [layers, 2, kv_heads, tokens, head_dim]
    block_bytes = kv[:, :, :, :16].numel() * 4
    cache = PrefixCache(max_bytes=5 * block_bytes, block=16)
    first, second = list(range(64)), list(range(32)) + list(range(100, 132))
    cache.insert(first, kv)
    assert len(cache.lookup(first)) == 4
    assert len(cache.lookup(first[:40])) == 2  # whole blocks only
    assert cache.lookup([7] + first[1:]) == []  # a different first token shares nothing
    cache.insert(second, kv)  # shares two blocks, adds two: six in all, one over
    assert cache.bytes <= 5 * block_bytes
    assert len(cache.lookup(second)) == 4  # the newest prompt is whole
    assert len(cache.lookup(first)) == 3  # the oldest prompt lost its last block, never a middle one
