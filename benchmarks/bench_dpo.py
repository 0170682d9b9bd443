"""DPO after SFT against SFT alone, on the same held-out split (issue 23, scope 3).

    HF_HUB_OFFLINE=1 nice -n 10 python benchmarks/bench_dpo.py configs/tickets-cpu.yaml --per-leaf 4 --out runs/dpo-4

1. `distill run CONFIG` (resumes like the command): generate -> curate -> split -> SFT -> eval (base vs SFT).
2. The SFT student answers every TRAINING prompt (greedy, distill.evaluate's generation; never a held-out one);
   each answer is judged against the teacher's as a classification: a JSON object whose label is in the set
   (else `schema_invalid`) and equal to the teacher's (else `label_mismatch`). These are the Attempts.
3. `preference_pairs` keeps the failed ones (teacher chosen, student rejected) -> OUT/preferences.jsonl.
4. DPO from the SFT adapter on those pairs -> OUT/student-dpo; `distill eval` of it on the same eval.jsonl
   -> OUT/eval-dpo/eval.json.
Everything goes to OUT/bench_dpo.json: the pairs by reason, both students' headline figures with intervals, the
wall time of each step and the load average around it. Re-running reuses the finished steps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_recipe import eval_summary  # noqa: E402

from distill.evaluate.metrics import extract_label, parse_json_object  # noqa: E402
from distill.improve.pairs import preference_pairs  # noqa: E402
from distill.improve.records import Attempt  # noqa: E402
from distill.records import Example, Message, read_examples  # noqa: E402
from distill.run import load_run_config, run_pipeline  # noqa: E402
from distill.rundir import PREFERENCES, RunDir  # noqa: E402
from distill.train.config import TrainConfig  # noqa: E402
from distill.train.preferences import read_preferences, write_preferences  # noqa: E402


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (5-min {five:.1f})"


def timed(summary: dict, name: str, started: float) -> None:
    summary.setdefault("minutes", {})[name] = round((time.perf_counter() - started) / 60, 2)
    summary.setdefault("load", {})[name] = load()


def gold_label(example: Example) -> str | None:
    reference = parse_json_object(example.messages[-1].content) or {}
    label = reference.get("label")
    return label if isinstance(label, str) else None


def attempts_on_training_split(out: Path, max_new_tokens: int, batch_size: int) -> list[Attempt]:
    """The SFT student's answer to each training prompt, judged against the teacher's label."""
    from distill.evaluate.generate import generate, load_student

    train = [example for example in read_examples(out / "train.jsonl") if gold_label(example)]
    labels = sorted({gold_label(example) or "" for example in train})
    model, tokenizer, manifest = load_student(out / "student")
    prompts = [[m.model_dump() for m in example.messages[:-1]] for example in train]
    answers = generate(model, tokenizer, manifest, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    attempts = []
    for example, answer in zip(train, answers):
        gold, said = gold_label(example), extract_label(answer.text, labels)
        parsed = parse_json_object(answer.text)
        if parsed is None or said not in labels:
            passed, reason = False, "schema_invalid"
        else:
            passed, reason = said == gold, None if said == gold else "label_mismatch"
        attempts.append(Attempt(
            example_id=example.id, leaf=example.meta.taxonomy_path or "", task="classification",
            turn=len(example.messages) - 1, prompt=example.messages[:-1], reference=example.messages[-1],
            answer=Message(role="assistant", content=answer.text), passed=passed, reason=reason,
            detail=f"student {said!r}, teacher {gold!r}",
        ))
    return attempts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--per-leaf", type=int)
    parser.add_argument("--dpo-epochs", type=float, default=3)
    parser.add_argument("--dpo-lr", type=float, default=1e-4)
    parser.add_argument("--dpo-beta", type=float, default=0.1)
    parser.add_argument("--dpo-max-steps", type=int, default=-1, help="stop DPO after N steps (-1: the epochs)")
    args = parser.parse_args()

    from distill.evaluate.report import EvalConfig, evaluate
    from distill.train.dpo import run as train_dpo

    config = load_run_config(args.config)
    if args.out:
        config.out = args.out
    if args.per_leaf:
        config.generate.per_leaf = args.per_leaf
    assert config.out is not None, "give --out or out: in the config"
    out = config.out
    path = out / "bench_dpo.json"
    summary = json.loads(path.read_text()) if path.is_file() else {}
    summary.update({"config": str(args.config), "command": " ".join([Path(sys.executable).name, *sys.argv])})

    started = time.perf_counter()
    state = run_pipeline(config, say=lambda line: print(line, flush=True))
    if "sft run (generate, curate, split, train, eval)" not in summary.get("minutes", {}):
        timed(summary, "sft run (generate, curate, split, train, eval)", started)
    summary["split"] = state["done"]["split"]
    summary["sft_train"] = {k: state["done"]["train"].get(k) for k in ("steps", "train_loss_first", "train_loss_last")}

    if "attempts" in summary and (out / PREFERENCES).is_file():  # a re-run reuses the finished attempts
        pairs = read_preferences(out / PREFERENCES)
    else:
        started = time.perf_counter()
        eval_settings = {"max_new_tokens": 96, **config.eval}
        attempts = attempts_on_training_split(out, eval_settings["max_new_tokens"],
                                              eval_settings.get("batch_size", 8))
        pairs = preference_pairs(attempts)
        write_preferences(out, pairs)
        timed(summary, "attempts on the training split", started)
        reasons: dict[str, int] = {}
        for attempt in attempts:
            reasons[attempt.reason or "passed"] = reasons.get(attempt.reason or "passed", 0) + 1
        summary["attempts"] = {"n": len(attempts), "by_reason": reasons, "pairs": len(pairs)}
        path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"attempts: {summary['attempts']}", flush=True)

    started = time.perf_counter()
    train = TrainConfig(**{**config.train, "epochs": args.dpo_epochs, "learning_rate": args.dpo_lr,
                           "dpo_beta": args.dpo_beta, "batch_size": 2, "grad_accum": 1, "logging_steps": 1,
                           "warmup_ratio": 0.0, "max_steps": args.dpo_max_steps})
    result = train_dpo(RunDir(out), pairs, train, out / "student", progress=False, log=print)
    timed(summary, "dpo", started)
    summary["dpo_train"] = result.model_dump(mode="json")

    started = time.perf_counter()
    dpo_eval = evaluate(out, out / "student-dpo", EvalConfig(**{**config.eval, "out_dir": out / "eval-dpo"}))
    timed(summary, "eval of the DPO student", started)
    summary["eval"] = {"sft": eval_summary(json.loads((out / "eval.json").read_text(encoding="utf-8"))),
                       "dpo": eval_summary(dpo_eval.report)}
    path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    for name in ("sft", "dpo"):
        for task, block in summary["eval"][name].items():
            print(name, task, json.dumps(block["systems"].get("student")))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
