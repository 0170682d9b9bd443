"""`distill run CONFIG.yaml`: generate -> curate -> split -> train -> eval in one resumable command.

Each stage is resumable on its own (generation from run.db, training from its last checkpoint), and
`pipeline.json` in the run directory records which stages finished, so a re-run starts where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from distill.errors import DistillError

STAGES = ("generate", "split", "train", "eval")


class GenerateStage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    teacher: str = "local"
    limit: int | None = Field(None, gt=0)
    seed: int = 0
    curate: bool = True
    label_check: bool = False  # classification: the label round trip (curate/judge.py)
    judge: str | None = None  # teacher spec for the label check and off_topic
    skip_checks: list[str] = Field(default_factory=list)  # curation checks switched off, by name


class RunConfig(BaseModel):
    """The one-shot job. Paths are relative to the config file's folder."""

    model_config = ConfigDict(extra="forbid")
    taxonomy: Path
    out: Path | None = None
    generate: GenerateStage = Field(default_factory=GenerateStage)
    split_fraction: float = Field(0.1, gt=0, lt=1)
    train: dict[str, Any] = Field(default_factory=dict)  # TrainConfig fields
    eval: dict[str, Any] = Field(default_factory=dict)  # EvalConfig fields


def load_run_config(path: Path) -> RunConfig:
    if not path.is_file():
        raise DistillError("run config not found; give the path of a YAML file", path=path)
    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
        config = RunConfig.model_validate(data)
    except YAMLError as exc:
        raise DistillError(f"malformed YAML: {str(exc).splitlines()[0]}", path=path) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        hint = "unknown field; remove it" if err["type"] == "extra_forbidden" else err["msg"]
        raise DistillError(f"{where}: {hint}", path=path) from None
    base = path.parent
    config.taxonomy = base / config.taxonomy
    if config.out is not None:
        config.out = base / config.out
    return config


def run_pipeline(config: RunConfig, say=print) -> dict[str, Any]:
    """Run every stage not yet finished; returns the summary that is also written to pipeline.json."""
    from distill.curate.split import save_split, stratified_split
    from distill.evaluate.report import EvalConfig, evaluate
    from distill.generate.runner import GenerateOptions, default_out, generate
    from distill.records import Example, read_jsonl
    from distill.taxonomy import load_taxonomy
    from distill.train.config import TrainConfig
    from distill.train.sft import default_out_dir, train

    try:
        train_config = TrainConfig(**config.train)
        eval_config = EvalConfig(**config.eval)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise DistillError(f"run config: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    out = config.out or default_out(load_taxonomy(config.taxonomy))
    state_path = out / "pipeline.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"done": {}}

    def finish(stage: str, **summary: Any) -> None:
        state["done"][stage] = {"at": time.time(), **summary}
        out.mkdir(parents=True, exist_ok=True)
        tmp = state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, default=str))
        os.replace(tmp, state_path)

    if "generate" not in state["done"]:
        say("stage 1/4: generate + curate")
        report = generate(GenerateOptions(taxonomy=config.taxonomy, teacher=config.generate.teacher, out=out,
                                          limit=config.generate.limit, seed=config.generate.seed,
                                          curate=config.generate.curate, label_check=config.generate.label_check,
                                          judge=config.generate.judge, skip_checks=config.generate.skip_checks,
                                          progress=False))
        counts = report.stats["counts"]
        if counts["pending"] or counts["failed"]:
            raise DistillError(f"generation left {counts['pending']} pending and {counts['failed']} failed items; "
                               "re-run to resume (add --retry-failed to `distill generate` for failures)")
        finish("generate", **counts)
    if "split" not in state["done"]:
        say("stage 2/4: split")
        examples = [Example.model_validate(row) for row in read_jsonl(out / "dataset.jsonl")]
        if len(examples) < 2:
            raise DistillError(f"only {len(examples)} kept example(s) in {out / 'dataset.jsonl'}: too few to train; "
                               "raise generate.limit or use a stronger teacher")
        split = stratified_split(examples, config.split_fraction, config.generate.seed)
        save_split(out, split)
        for line in split.describe():
            say(f"split: {line}")
        finish("split", train=len(split.train), eval=len(split.eval), strata=len(split.strata), note=split.note)
    adapter = default_out_dir(out)
    if "train" not in state["done"]:
        say("stage 3/4: train")
        result = train(out, train_config, adapter, progress=False, log=say)
        finish("train", **result.model_dump(mode="json"))
    if "eval" not in state["done"]:
        say("stage 4/4: eval")
        result = evaluate(out, adapter, eval_config)
        finish("eval", **result.model_dump(mode="json"))
    return state
