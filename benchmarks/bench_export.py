"""GGUF export of SmolLM2-135M: write time and size per quantization, and what transformers reads back.

    HF_HUB_OFFLINE=1 python benchmarks/bench_export.py [--rounds 3] [--threads 1]

The embedded model is cast to bf16 and saved once, as `distill export-model` merges into bf16. Then f16 and
q8_0 files are written `--rounds` times, interleaved (medians), each read back once by transformers' GGUF loader
and compared with the bf16 model: logits at every position of four fixed conversations, and greedy answers to
three prompts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

CONVERSATIONS = [
    [{"role": "user", "content": "What are the first signs of a heart attack?"},
     {"role": "assistant", "content": "Chest pain or pressure, pain spreading to an arm or the jaw, shortness of "
                                      "breath, sweating and nausea. Call emergency services at once."}],
    [{"role": "system", "content": "Classify the ticket. Reply with JSON."},
     {"role": "user", "content": "I was charged twice for my subscription this month."},
     {"role": "assistant", "content": '{"label": "billing", "rationale": "a duplicate charge"}'}],
    [{"role": "user", "content": "Explain photosynthesis in one sentence."},
     {"role": "assistant", "content": "Plants turn light, water and carbon dioxide into sugar and oxygen."}],
    [{"role": "user", "content": "List three prime numbers above 100."},
     {"role": "assistant", "content": "101, 103 and 107."}],
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_export_") as folder:  # ~0.7 GB of models, removed at the end
        run(Path(folder), args)


def run(work: Path, args) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from distill.export.gguf_writer import write_gguf
    from distill.export.verify import compare_logits, sequence_logits
    from distill.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer("local")
    merged = work / "merged"
    load_causal_lm("local", dtype=torch.bfloat16).save_pretrained(merged)
    tokenizer.save_pretrained(merged)
    print(f"load average at start: {os.getloadavg()[0]:.2f}")

    times: dict[str, list[float]] = {"f16": [], "q8_0": []}
    files = {}
    for _ in range(args.rounds):
        for quant in times:
            started = time.perf_counter()
            files[quant] = write_gguf(merged, work / f"smollm2-{quant}.gguf", quant,
                                      chat_template=tokenizer.chat_template)
            times[quant].append(time.perf_counter() - started)

    reference = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    sequences = [tokenizer.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"] for c in CONVERSATIONS]
    prompts = [tokenizer.apply_chat_template(c[:-1], add_generation_prompt=True, return_tensors="pt",
                                             return_dict=True)["input_ids"] for c in CONVERSATIONS[:3]]
    expected_logits = sequence_logits(reference, sequences)
    with torch.no_grad():
        expected = [reference.generate(p, max_new_tokens=32, do_sample=False) for p in prompts]

    print("| quant | size | write s (median of %d) | transformers load s | max abs logit diff | mean KL | top-1 "
          "agreement | greedy answers identical |" % args.rounds)
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for quant, file in files.items():
        started = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(work, gguf_file=file.path.name, dtype=torch.float32).eval()
        load = time.perf_counter() - started
        max_diff, kl, top1, positions = compare_logits(expected_logits, sequence_logits(model, sequences))
        with torch.no_grad():
            same = sum(model.generate(p, max_new_tokens=32, do_sample=False).tolist() == e.tolist()
                       for p, e in zip(prompts, expected))
        print(f"| {quant} | {file.bytes / 1e6:.1f} MB | {statistics.median(times[quant]):.1f} | {load:.1f} | "
              f"{max_diff:.4f} | {kl:.2e} | {top1:.1%} ({positions} positions) | {same}/{len(prompts)} |")
        del model
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
