"""The measured CPU recipe (issue 12): a `distill run` config end to end, base vs student on the held-out split,
and with --ablation what curation buys: the same training budget on other curations of the same generation,
scored on the same held-out items.

    HF_HUB_OFFLINE=1 nice -n 5 python benchmarks/bench_recipe.py configs/tickets-cpu.yaml --ablation

1. `distill run CONFIG` (library call; resumes like the command): generate -> curate -> split -> train -> eval.
   Prints the headline table of its eval.md, and each stage's wall time with the load average around it.
2. --ablation: the run's run.db (every teacher answer) is copied into OUT/ablation/ARM and curated again there
   (no teacher call is repeated; a label check the run did not make asks the teacher), then each arm trains for
   exactly the optimizer steps the recipe took (same batch, same length: the same budget) on its set minus the
   held-out items and anything overlapping them (curation's own 8-gram decontamination), and is scored on the
   recipe's eval.jsonl:
     uncurated            every parsed example: no checks, no dedup, no decontamination, no label round trip
     curated              checks, exact and near dedup, decontamination; no label round trip
     curated+label_check  the same plus the label round trip (classification only)
   The arm whose curation is the recipe's own is the recipe's run itself (its student and eval are reused).

Everything goes to OUT/bench_recipe.json (OUT: the config's run folder, or --out): figures, wall times, load
averages, the commands. Re-running resumes: finished stages and arms are not redone (--redo-ablation redoes
the arms). --limit / --per-leaf / --out override the config for a smaller run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from distill.run import RunConfig, load_run_config, run_pipeline  # noqa: E402

ARMS = {
    "uncurated": {"curate": False, "label_check": False},
    "curated": {"curate": True, "label_check": False},
    "curated+label_check": {"curate": True, "label_check": True},
}


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (5-min {five:.1f})"


class Clock:
    """Wall time and load average of each named step, kept in the summary as they finish."""

    def __init__(self, summary: dict, path: Path):
        self.summary, self.path = summary, path
        self.current: tuple[str, float, str] | None = None

    def start(self, name: str) -> None:
        self.stop()
        self.current = (name, time.time(), load())
        print(f"[{time.strftime('%H:%M:%S')}] {name}: start, load average {self.current[2]}", flush=True)

    def stop(self) -> None:
        if self.current is None:
            return
        name, began, load_before = self.current
        self.current = None
        took = time.time() - began
        self.summary.setdefault("times", {})[name] = {"seconds": round(took, 1), "load_start": load_before,
                                                      "load_end": load(), "finished": time.strftime("%F %T")}
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {took / 60:.1f} min, load average {load()}", flush=True)
        save(self.summary, self.path)


def save(summary: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def run_recipe(config: RunConfig, out: Path, clock: Clock) -> dict:
    """`distill run` with each stage timed (the pipeline announces each stage as it starts)."""

    def say(line: str) -> None:
        print(line, flush=True)
        if line.startswith("stage "):
            clock.start("recipe: " + line.split(": ", 1)[1])

    state = run_pipeline(config, say=say)
    clock.stop()
    return state


def eval_summary(report: dict) -> dict:
    """The headline numbers of an eval.json: per task, per system, each metric's value and interval."""
    from distill.evaluate.markdown import headline_columns

    out = {}
    for task, block in report["tasks"].items():
        columns = headline_columns(task, block)
        out[task] = {"n": block["n"], "versus_base": block.get("versus_base", {}),
                     "systems": {system: {c: row[c] for c in columns if c in row}
                                 for system, row in block["systems"].items()}}
    return out


def arm_settings(config: RunConfig) -> str:
    """Which arm the recipe's own curation is."""
    if not config.generate.curate:
        return "uncurated"
    return "curated+label_check" if config.generate.label_check else "curated"


def ablation(config: RunConfig, out: Path, summary: dict, clock: Clock, redo: bool) -> None:
    from distill.curate.decontaminate import DecontamConfig, build_index, find_contamination
    from distill.curate.heldout import HeldoutItem
    from distill.evaluate.report import EvalConfig, evaluate
    from distill.generate.runner import GenerateOptions, generate
    from distill.records import read_jsonl, write_jsonl
    from distill.train.config import TrainConfig
    from distill.train.data import read_examples
    from distill.train.sft import train

    task = summary["task"]
    steps = summary["recipe"]["train"]["steps"]
    held_out = read_examples(out / "eval.jsonl")
    held_ids = {e.id for e in held_out}
    index = build_index([HeldoutItem(id=e.id, text=_prompt(e), source="eval") for e in held_out], DecontamConfig())
    own = arm_settings(config)
    arms = summary.setdefault("ablation", {})
    for arm, settings in ARMS.items():
        if settings["label_check"] and task != "classification":
            continue
        if arm == own:
            arms[arm] = {**summary["recipe"]["data"], "steps": steps, "eval": summary["recipe"]["eval"],
                         "source": "the recipe's own run"}
            continue
        if arm in arms and arms[arm].get("eval") and not redo:
            continue
        folder = out / "ablation" / arm
        if redo and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "run.db").exists():
            shutil.copy2(out / "run.db", folder / "run.db")
        clock.start(f"{arm}: curate")
        g = config.generate
        report = generate(GenerateOptions(taxonomy=config.taxonomy, teacher=g.teacher, out=folder, limit=g.limit,
                                          per_leaf=g.per_leaf, seed=g.seed, curate=settings["curate"],
                                          label_check=settings["label_check"], judge=g.judge,
                                          skip_checks=g.skip_checks, progress=False))
        kept = [row for row in read_jsonl(folder / "dataset.jsonl")]
        pool = [row for row in kept if row["id"] not in held_ids]
        hits = {hit.index for hit in find_contamination([_prompt_row(row) for row in pool], index, DecontamConfig())}
        train_rows = [row for i, row in enumerate(pool) if i not in hits]
        write_jsonl(folder / "train.jsonl", train_rows)
        shutil.copy2(out / "eval.jsonl", folder / "eval.jsonl")
        data = {"valid": report.stats["counts"]["valid"], "kept": len(kept), "held_out_removed": len(kept) - len(pool),
                "overlap_removed": len(hits), "train": len(train_rows), "eval": len(held_out)}
        clock.start(f"{arm}: train")
        train_config = TrainConfig(**{**config.train, "max_steps": steps})
        result = train(folder, train_config, folder / "student", progress=False, log=lambda line: None)
        clock.start(f"{arm}: eval")
        evaluated = evaluate(folder, folder / "student", EvalConfig(**config.eval))
        clock.stop()
        arms[arm] = {**data, "steps": result.steps, "train_loss_last": result.train_loss_last,
                     "eval_loss_after": result.eval_loss_after, "eval": eval_summary(evaluated.report)}
        save(summary, out / "bench_recipe.json")


def _prompt(example) -> str:
    return "\n".join(m.content for m in example.messages if m.role == "user")


def _prompt_row(row: dict) -> str:
    return "\n".join(m["content"] for m in row["messages"] if m["role"] == "user")


def _cell(value: dict | None) -> str:
    return "-" if not value else f"{value['value']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"


def print_tables(summary: dict) -> None:
    from distill.evaluate.markdown import headline
    from distill.evaluate.metrics import LABELS

    report = json.loads(Path(summary["recipe"]["eval_json"]).read_text(encoding="utf-8"))
    print("\n".join(headline(report)))
    print("| step | wall time | load average (start -> end) |\n|---|---:|---|")
    for name, t in summary.get("times", {}).items():
        print(f"| {name} | {t['seconds'] / 60:.1f} min | {t['load_start']} -> {t['load_end']} |")
    arms = summary.get("ablation")
    if not arms:
        return
    task = summary["task"]
    columns = list(next(iter(arms.values()))["eval"][task]["systems"]["student"])
    print(f"\nAblation: the same {summary['recipe']['train']['steps']} optimizer steps on each curation, scored on the "
          f"same {summary['recipe']['data']['eval']} held-out items\n")
    print("| training set | examples | " + " | ".join(LABELS[c] for c in columns) + " |")
    print("|---|---:|" + "---|" * len(columns))
    base = next(iter(arms.values()))["eval"][task]["systems"]["base"]
    print("| (base, untrained) | - | " + " | ".join(_cell(base.get(c)) for c in columns) + " |")
    for arm, row in arms.items():
        student = row["eval"][task]["systems"]["student"]
        print(f"| {arm} | {row['train']} | " + " | ".join(_cell(student.get(c)) for c in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--ablation", action="store_true", help="also train and score the other curations")
    parser.add_argument("--redo-ablation", action="store_true")
    parser.add_argument("--out", type=Path, help="run folder (default: the config's out)")
    parser.add_argument("--limit", type=int, help="override generate.limit (a smaller run)")
    parser.add_argument("--per-leaf", type=int, help="override generate.per_leaf")
    args = parser.parse_args()

    from distill.generate.runner import default_out
    from distill.taxonomy import load_taxonomy

    config = load_run_config(args.config)
    if args.out:
        config.out = args.out
    if args.limit:
        config.generate.limit = args.limit
    if args.per_leaf:
        config.generate.per_leaf = args.per_leaf
    out = config.out or default_out(load_taxonomy(config.taxonomy))
    path = out / "bench_recipe.json"
    summary = json.loads(path.read_text()) if path.is_file() else {}
    summary.update({"config": str(args.config), "command": " ".join([Path(sys.executable).name, *sys.argv]),
                    "cores": os.cpu_count(), "torch_threads_env": os.environ.get("OMP_NUM_THREADS")})
    clock = Clock(summary, path)
    state = run_recipe(config, out, clock)
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    report = json.loads((out / "eval.json").read_text(encoding="utf-8"))
    summary["task"] = stats["task"]
    split = state["done"]["split"]
    summary["recipe"] = {
        "counts": stats["counts"], "reject_reasons": stats["reject_reasons"], "judge": stats["curation"].get("judge"),
        "data": {"valid": stats["counts"]["valid"], "kept": stats["counts"]["kept"], "train": split["train"],
                 "eval": split["eval"]},
        "train": {k: state["done"]["train"].get(k) for k in ("steps", "train_loss_first", "train_loss_last",
                                                             "eval_loss_before", "eval_loss_after",
                                                             "seconds_per_step", "tokens_per_second")},
        "eval": eval_summary(report), "eval_json": str(out / "eval.json"),
    }
    save(summary, path)
    if args.ablation:
        ablation(config, out, summary, clock, args.redo_ablation)
    save(summary, path)
    print_tables(summary)
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
