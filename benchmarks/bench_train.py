"""LoRA vs QLoRA training speed on this machine: s/step, tokens/s and peak RSS (medians of timed steps).

    HF_HUB_OFFLINE=1 python benchmarks/bench_train.py [--steps 6] [--threads 1 2] [--batch-size 4] [--max-length 256]

Each (method, threads) runs in its own process so peak RSS is its own. The first step (warm-up) is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def one(method: str, threads: int, steps: int, batch_size: int, max_length: int) -> dict:
    import resource

    from transformers import TrainerCallback

    from distill.models import load_tokenizer, resolve_model, set_threads
    from distill.train import data, sft
    from distill.train.config import TrainConfig
    from train_helpers import make_run, toy_rows

    rows = toy_rows(200)
    for row in rows:  # longer answers so a step sees ~max_length tokens per sequence
        row["messages"][-1]["content"] = (row["messages"][-1]["content"] + " ") * (max_length // 12)
    run = make_run(Path(tempfile.mkdtemp()) / "run", rows)
    config = TrainConfig(qlora=method == "qlora", max_steps=steps + 1, batch_size=batch_size, grad_accum=1,
                         max_length=max_length, threads=threads, logging_steps=1, save_steps=10_000,
                         eval_before=False)
    set_threads(threads)
    tokenizer = load_tokenizer("local")
    eot = tokenizer.convert_tokens_to_ids(data.end_of_turn_token(tokenizer))
    train, held_out = data.load_splits(run)
    model = sft.load_model(resolve_model("local"), config.qlora, cuda=False, checkpointing=False)
    trainer = sft.build_trainer(model, tokenizer, train, [], config, run / "out", cuda=False, checkpointing=False)
    sft.prepare_labels(trainer, eot, max_length)
    sft.use_progress_bar(trainer, False)

    class Timer(TrainerCallback):
        def __init__(self):
            self.times, self.tokens, self.t0, self.n0 = [], [], 0.0, 0

        def on_step_begin(self, args, state, control, **kw):
            self.t0, self.n0 = time.perf_counter(), state.num_input_tokens_seen or 0

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self.t0)
            self.tokens.append((state.num_input_tokens_seen or 0) - self.n0)

    timer = Timer()
    trainer.add_callback(timer)
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    times, tokens = timer.times[1:], timer.tokens[1:]
    return {
        "method": method, "threads": threads, "steps": len(times),
        "s_per_step": statistics.median(times),
        "tokens_per_s": statistics.median(n / t for n, t in zip(tokens, times)),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "loss_first": losses[0], "loss_last": losses[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--methods", nargs="+", default=["lora", "qlora"])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        method, threads = args.one.split(":")
        print(json.dumps(one(method, int(threads), args.steps, args.batch_size, args.max_length)))
        return
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; batch {args.batch_size}, "
          f"max_length {args.max_length}, {args.steps} timed steps (medians)")
    print(f"{'method':6} {'threads':>7} {'s/step':>8} {'tok/s':>8} {'peak RSS GiB':>13} {'loss first->last':>18}")
    for method in args.methods:
        for threads in args.threads:
            out = subprocess.run([sys.executable, __file__, "--one", f"{method}:{threads}", "--steps", str(args.steps),
                                  "--batch-size", str(args.batch_size), "--max-length", str(args.max_length)],
                                 capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            if out.returncode:
                print(f"{method:6} {threads:>7} failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{method:6} {threads:>7} {r['s_per_step']:>8.2f} {r['tokens_per_s']:>8.0f} "
                  f"{r['peak_rss_gib']:>13.2f} {r['loss_first']:>8.3f} -> {r['loss_last']:.3f}")


if __name__ == "__main__":
    main()
