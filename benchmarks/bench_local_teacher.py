"""Speed of the in-process teacher on realistic chat prompts: generated tokens/s and time to first answer.

The workload (issue 15): 32 chat prompts of ~710 tokens, each the medical taxonomy's system prompt,
three few-shot Q&A turns from its seeds and a new question; up to 256 new tokens at temperature 0.6.
Every prompt of a specialty shows the same seeds in a turn of its own order, as the pipeline's
answer step does, so the shared beginnings are those a real run has (the system prompt, sometimes a
first seed turn).

Two ways of decoding, each run in a process of its own, interleaved (A, B, A, B ...) because the
machine is shared and noisy; the table shows medians and the ratio:
- `padded`: transformers' `generate` on left-padded batches of 8 (how the teacher ran before; still
  the fallback for models the engine cannot run);
- `engine`: the continuous-batching engine (distill/teachers/local/decode_engine.py) as the teacher runs it
  (bfloat16 where the CPU computes it natively); `engine-nocache` without its prefix cache,
  `engine-fp32` in float32.

Besides wall-clock tokens/s it reports tokens a CPU second of the benchmark's own process, which
other jobs on the machine disturb less.

    .venv/bin/python benchmarks/bench_local_teacher.py [--modes padded engine] [--repeat 3] [--prompts 32]
                                                       [--max-tokens 256] [--rows 16] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from interleaved import run_interleaved  # noqa: E402


def workload(count: int, max_tokens: int, temperature: float):
    """`count` requests: system prompt, three seed Q&A turns of one specialty, then another seed's question."""
    from distill.records import Message, SamplingParams
    from distill.taxonomy import load_taxonomy
    from distill.teachers.base import GenerationRequest

    loaded = load_taxonomy(ROOT / "taxonomies" / "medical.yaml")
    specialties = [node for node in loaded.nodes if node.own_seeds]
    requests = []
    for i in range(count):
        seeds = specialties[i % len(specialties)].own_seeds
        turn = i // len(specialties)
        asked = seeds[turn % len(seeds)]
        shots = [s for s in seeds if s is not asked][:3]
        shots = shots[turn % len(shots):] + shots[: turn % len(shots)]
        messages = [Message(role="system", content=loaded.taxonomy.system_prompt)]
        for seed in shots:
            messages += [Message(role="user", content=seed.question), Message(role="assistant", content=seed.answer)]
        messages.append(Message(role="user", content=asked.question))
        requests.append(GenerationRequest(key=str(i), messages=messages, sampling=SamplingParams(
            temperature=temperature, top_p=0.95, max_tokens=max_tokens, seed=i)))
    return requests


def answer_all(teacher, requests) -> tuple[list, list[float]]:
    """Every request through the dispatcher, as a run sends them: the results, and when each came back."""
    from distill.generate.dispatch import Dispatcher

    firsts: list[float] = []

    async def send():
        async with Dispatcher(teacher) as dispatcher:
            async def one(request):
                result = await dispatcher.submit(request)
                firsts.append(time.perf_counter())
                return result
            return await asyncio.gather(*(one(r) for r in requests))

    return asyncio.run(send()), firsts


def run_once(mode: str, args) -> dict:
    """In this process: load the teacher, answer the workload through the dispatcher, return figures."""
    import torch

    from distill.teachers.local.transformers import TransformersTeacher

    if args.threads:
        torch.set_num_threads(args.threads)
    requests = workload(args.prompts, args.max_tokens, args.temperature)
    started = time.perf_counter()
    teacher = TransformersTeacher("local", "local", batch_size=args.rows if mode != "padded" else 8,
                                  engine=mode != "padded", prefix_cache_mb=0 if mode == "engine-nocache" else 512,
                                  dtype="float32" if mode in ("padded", "engine-fp32") else None)
    loaded = time.perf_counter()
    cpu_before = _cpu_s()
    results, firsts = answer_all(teacher, requests)
    ended = time.perf_counter()
    cpu = _cpu_s() - cpu_before
    generated = sum(r.usage.completion_tokens for r in results)
    prompt = sum(r.usage.prompt_tokens for r in results)
    reused = teacher.engine.prefix_cache.hits if teacher.engine is not None else 0
    teacher.close()
    return {"mode": mode, "load_s": loaded - started, "seconds": ended - loaded, "generated": generated,
            "prompt": prompt, "reused": reused, "first_s": min(firsts) - loaded,
            "errors": sum(not r.ok for r in results), "tok_s": generated / (ended - loaded),
            "cpu_s": cpu, "tok_cpu_s": generated / cpu, "dtype": str(teacher.dtype).replace("torch.", "")}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", nargs="+", default=["padded", "engine"],
                        choices=["padded", "engine", "engine-nocache", "engine-fp32"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--rows", type=int, default=16, help="rows decoded together by the engine")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one mode in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_once(args.one, args)), flush=True)
        return
    print(f"{args.prompts} prompts, up to {args.max_tokens} new tokens, temperature {args.temperature}, "
          f"rows {args.rows}, threads {args.threads or 'default'}; load average {os.getloadavg()[0]:.1f}")
    def show(r: int, mode: str, row: dict) -> None:
        print(f"  run {r} {mode:15} {row['tok_s']:6.1f} tok/s ({row['tok_cpu_s']:.1f} a CPU second, "
              f"{row['dtype']})  first answer {row['first_s']:6.1f} s  "
              f"{row['generated']} tokens in {row['seconds']:.0f} s  prompt {row['prompt']} (reused "
              f"{row['reused']})  errors {row['errors']}  load avg {os.getloadavg()[0]:.1f}", flush=True)

    runs = run_interleaved(__file__, args.modes, args.repeat, sys.argv[1:], show,
                           env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    print(f"{'mode':16} {'tok/s':>7} {'tok/CPU s':>9} {'first answer s':>15} {'seconds':>8} {'generated':>9}")
    medians = {}
    for mode, rows in runs.items():
        medians[mode] = {k: statistics.median(row[k] for row in rows)
                         for k in ("tok_s", "tok_cpu_s", "first_s", "seconds", "generated")}
        m = medians[mode]
        print(f"{mode:16} {m['tok_s']:7.1f} {m['tok_cpu_s']:9.1f} {m['first_s']:15.1f} {m['seconds']:8.0f} "
              f"{m['generated']:9.0f}")
    if "padded" in medians:
        for mode in medians:
            if mode != "padded":
                wall = [b["tok_s"] / a["tok_s"] for a, b in zip(runs["padded"], runs[mode])]
                cpu = [b["tok_cpu_s"] / a["tok_cpu_s"] for a, b in zip(runs["padded"], runs[mode])]
                print(f"{mode} / padded: tokens/s x{statistics.median(wall):.2f}, tokens a CPU second "
                      f"x{statistics.median(cpu):.2f} (medians of the pairs' ratios)")


if __name__ == "__main__":
    main()
