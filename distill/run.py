"""`distill run CONFIG.yaml`: generate -> curate -> split -> train -> eval in one resumable command.

Each stage is resumable on its own (generation from run.db, training from its last checkpoint), and
`pipeline.json` in the run directory records which stages finished, so a re-run starts where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from distill.errors import DistillError, RunFailed
from distill.owned import OwnedFolder
from distill.generate.runner import GenerateSettings
from distill.review.model import ReviewSettings
from distill.rundir import run_lock
from distill.userfiles import load_yaml_mapping, located

STAGES = ("generate", "split", "train", "eval")


class GenerateStage(GenerateSettings):
    """`generate:`: every setting `distill generate` takes (teacher_options: {base_url, concurrency, batch ...},
    budget_usd, cache, preflight, label_check, judge, skip_checks ...), and the API config file."""

    api_config: Path | None = None  # prices and rate limits (`--api-config`), relative to the config file


class RunConfig(BaseModel):
    """The one-shot job. Paths are relative to the config file's folder."""

    model_config = ConfigDict(extra="forbid")
    taxonomy: Path
    out: Path | None = None
    generate: GenerateStage = Field(default_factory=GenerateStage)
    split_fraction: float = Field(0.1, gt=0, lt=1)
    train: dict[str, Any] = Field(default_factory=dict)  # TrainConfig fields
    eval: dict[str, Any] = Field(default_factory=dict)  # EvalConfig fields
    review: ReviewSettings | None = None  # a human review queue after generation, and its gate


def load_run_config(path: Path) -> RunConfig:
    data = load_yaml_mapping(path, "run config", "taxonomy:, out:, generate:, train: and eval:")
    from distill.evaluate.report import EvalConfig
    from distill.train.config import TrainConfig

    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise located(exc, data, path, page="docs/run-configs.md#the-file") from None
    for section, model in (("train", TrainConfig), ("eval", EvalConfig)):  # their fields, checked now
        try:
            model(**getattr(config, section))
        except ValidationError as exc:
            raise located(exc, data, path, prefix=(section,), page="docs/run-configs.md#the-file") from None
    base = path.parent
    config.taxonomy = base / config.taxonomy
    if config.generate.api_config is not None:
        config.generate.api_config = base / config.generate.api_config
    if config.out is not None:
        config.out = base / config.out
    return config


def generate_options(config: RunConfig, out: Path, retry_failed: bool = False):
    """The run's `GenerateOptions`: the `generate:` section as it stands, its API config file read."""
    from distill.generate.runner import GenerateOptions
    from distill.teachers.cost import load_api_config
    from distill.teachers.registry import TeacherOptions

    stage = config.generate
    settings = stage.model_dump(exclude={"api_config", "retry_failed"}, exclude_unset=True)
    if stage.api_config is not None:
        settings["teacher_options"] = TeacherOptions(**{**stage.teacher_options.model_dump(exclude_none=True),
                                                        "api_config": load_api_config(stage.api_config)})
    return GenerateOptions(**settings, taxonomy=config.taxonomy, out=out, progress=False,
                           retry_failed=retry_failed or stage.retry_failed)


def run_pipeline(config: RunConfig, say=print, retry_failed: bool = False,
                 force: bool = False) -> dict[str, Any]:
    """Run every stage not yet finished; returns the summary that is also written to pipeline.json.

    `retry_failed` (or `generate.retry_failed` in the config) asks the teacher again for failed items.
    With a `review:` section (or a queue built by hand) it stops after generation until the review
    passes its gate (ReviewPending, exit code 4); `force` trains anyway, and the adapter says so."""
    from distill.evaluate.report import EvalConfig
    from distill.generate.runner import claim_run_folder, default_out
    from distill.taxonomy import load_taxonomy
    from distill.train.config import TrainConfig

    try:
        train_config = TrainConfig(**config.train)
        eval_config = EvalConfig(**config.eval)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise DistillError(f"run config: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    out = config.out or default_out(load_taxonomy(config.taxonomy))
    # --force here passes the review gate, so a folder of the user's is refused with no way past but another out:
    claim_run_folder(out, option="out:", force_option=None)
    with run_lock(out, "out:"):  # the whole pipeline: a second `distill run` on it stops at once
        return _run_stages(config, out, say, retry_failed, force, train_config, eval_config)


def _run_stages(config: RunConfig, out: Path, say: Callable[[str], Any], retry_failed: bool, force: bool,
                train_config: Any, eval_config: Any) -> dict[str, Any]:
    from distill.curate.split import save_split, stratified_split
    from distill.evaluate.report import evaluate
    from distill.executors import generation_executor
    from distill.generate.runner import generate
    from distill.records import Example, read_jsonl
    from distill.train.sft import default_out_dir, train

    state_path = out / "pipeline.json"
    try:
        state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {"done": {}}
    except (ValueError, UnicodeDecodeError):
        raise DistillError("pipeline.json is damaged; delete it to run every stage again (each resumes from what "
                           "it saved)", path=state_path) from None

    def finish(stage: str, **summary: Any) -> None:
        state["done"][stage] = {"at": time.time(), **summary}
        OwnedFolder.in_place(out, "run", option="out:").write_text("pipeline.json",
                                                                 json.dumps(state, indent=2, default=str))

    if "generate" not in state["done"]:
        say("stage 1/4: generate + curate")
        options = generate_options(config, out, retry_failed)
        report = generate(options, executor=generation_executor(options.executor))
        counts = report.stats["counts"]
        if counts["pending"] or counts["failed"]:
            raise RunFailed(f"generation left {counts['pending']} pending and {counts['failed']} failed items; "
                            "run again to resume, with --retry-failed to ask the teacher again for the failed ones")
        finish("generate", **counts)
    if "split" not in state["done"]:
        from distill.review.pipeline import review_step

        review_step(out, config.review, force=force, say=say)
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
        result = train(out, train_config, adapter, progress=False, log=say, force_review=force)
        finish("train", **result.model_dump(mode="json"))
    if "eval" not in state["done"]:
        say("stage 4/4: eval")
        result = evaluate(out, adapter, eval_config)
        finish("eval", **result.model_dump(mode="json"))
    return state
