"""`distill run CONFIG.yaml`: generate -> curate -> review -> split -> train -> eval in one resumable command.

This module only sequences the stages, each a `run(run_dir, settings)` on the one `RunDir`. Each stage is
resumable on its own (generation from run.db, training from its last checkpoint), and `pipeline.json` in the
run directory records which stages finished, so a re-run starts where it stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from distill.curate import split
from distill.errors import DistillError, RunFailed
from distill.evaluate import report as evaluation
from distill.evaluate.report import EvalConfig
from distill.executors import generation_executor
from distill.generate import runner as generation
from distill.generate.runner import GenerateOptions, GenerateSettings, default_out
from distill.review import pipeline as review
from distill.review.model import ReviewSettings
from distill.rundir import RunDir
from distill.taxonomy import load_taxonomy
from distill.teachers.http.cost import load_api_config
from distill.teachers.registry import TeacherOptions
from distill.train import sft as training
from distill.train.config import TrainConfig
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
    improve: dict[str, Any] = Field(default_factory=dict)  # `distill improve`'s settings (distill/improve/config.py)


def load_run_config(path: Path) -> RunConfig:
    data = load_yaml_mapping(path, "run config", "taxonomy:, out:, generate:, train: and eval:")
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise located(exc, data, path, page="docs/run-configs.md#the-file") from None
    for section, model in (("train", TrainConfig), ("eval", EvalConfig)):  # their fields, checked now
        try:
            model(**getattr(config, section))
        except ValidationError as exc:
            raise located(exc, data, path, prefix=(section,), page="docs/run-configs.md#the-file") from None
    config.taxonomy = _beside(path, config.taxonomy)
    if config.generate.api_config is not None:
        config.generate.api_config = _beside(path, config.generate.api_config)
    if config.generate.documents is not None:
        config.generate.documents = _beside(path, config.generate.documents)
    if config.out is not None:
        config.out = _beside(path, config.out)
    return config


def _beside(config_file: Path, path: Path) -> Path:
    """A path of the config, relative to its folder, with `..` steps folded (`runs/x`, not `configs/../runs/x`,
    in every message and record); left unfolded when the folder is reached through a link, where `..` means the
    link target's parent and only the system can say which folder that is."""
    if path.is_absolute():
        return path
    folder = config_file.parent
    if any(p.is_symlink() for p in (folder, *folder.parents) if str(p) not in ("", ".")):
        return folder / path
    return Path(os.path.normpath(folder / path))


def generate_options(config: RunConfig, out: Path, retry_failed: bool = False,
                     progress: bool = False) -> GenerateOptions:
    """The run's `GenerateOptions`: the `generate:` section as it stands, its API config file read."""
    stage = config.generate
    settings = stage.model_dump(exclude={"api_config", "retry_failed"}, exclude_unset=True)
    if stage.api_config is not None:
        settings["teacher_options"] = TeacherOptions(**{**stage.teacher_options.model_dump(exclude_none=True),
                                                        "api_config": load_api_config(stage.api_config)})
    return GenerateOptions(**settings, taxonomy=config.taxonomy, out=out, progress=progress,
                           retry_failed=retry_failed or stage.retry_failed)


def run_pipeline(config: RunConfig, say=print, retry_failed: bool = False,
                 force: bool = False, progress: bool = False) -> dict[str, Any]:
    """Run every stage not yet finished; returns the summary that is also written to pipeline.json.

    `retry_failed` (or `generate.retry_failed` in the config) asks the teacher again for failed items.
    With a `review:` section (or a queue built by hand) it stops after generation until the review
    passes its gate (ReviewPending, exit code 4); `force` trains anyway, and the adapter says so.
    `progress` shows generation's and training's progress bars (the CLI, on a terminal)."""
    try:
        train_config = TrainConfig(**config.train)
        eval_config = EvalConfig(**config.eval)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise DistillError(f"run config: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    out = config.out or default_out(load_taxonomy(config.taxonomy))
    prepared = None
    if "generate" not in RunDir(out, "out:").read_pipeline()["done"]:
        # The generation's inputs first: a missing seed file or a bad documents.yaml leaves no folder behind.
        options = generate_options(config, out, retry_failed, progress)
        prepared = generation.prepare(options, generation_executor(options.executor))
    # --force here passes the review gate, so a folder of the user's is refused with no way past but another out:
    run_dir = RunDir.claim(out, option="out:", force_option=None)
    with run_dir.lock():  # the whole pipeline: a second `distill run` on it stops at once
        return _run_stages(config, run_dir, say, retry_failed, force, train_config, eval_config, progress, prepared)


def _run_stages(config: RunConfig, run_dir: RunDir, say: Callable[[str], Any], retry_failed: bool, force: bool,
                train_config: TrainConfig, eval_config: EvalConfig, progress: bool = False,
                prepared: generation.PreparedRun | None = None) -> dict[str, Any]:
    """Each stage's `run(run_dir, settings)` in turn, skipping those pipeline.json records as finished."""
    state = run_dir.read_pipeline()

    def finish(stage: str, **summary: Any) -> None:
        state["done"][stage] = {"at": time.time(), **summary}
        run_dir.write_pipeline(state)

    if "generate" not in state["done"]:
        say("stage 1/4: generate + curate")
        options = generate_options(config, run_dir.root, retry_failed, progress)
        report = generation.run(run_dir, options, generation_executor(options.executor), prepared)
        counts = report.stats["counts"]
        if counts["pending"] or counts["failed"]:
            raise RunFailed(f"generation left {counts['pending']} pending and {counts['failed']} failed items; "
                            "run again to resume, with --retry-failed to ask the teacher again for the failed ones")
        finish("generate", **counts)
    if "split" not in state["done"]:
        review.run(run_dir, config.review, force=force, say=say)
        say("stage 2/4: split")
        kept = len(run_dir.read_dataset_ids())
        if kept < 2:
            raise DistillError(f"only {kept} kept example(s) in {run_dir.dataset}: too few to train; "
                               "raise generate.limit or use a stronger teacher")
        made = split.run(run_dir, split.SplitSettings(fraction=config.split_fraction, seed=config.generate.seed))
        for line in made.describe():
            say(f"split: {line}")
        finish("split", train=len(made.train), eval=len(made.eval), strata=len(made.strata), note=made.note)
    if "train" not in state["done"]:
        say("stage 3/4: train")
        trained = training.run(run_dir, train_config, progress=progress, log=say, force_review=force)
        finish("train", **trained.model_dump(mode="json"))
    if "eval" not in state["done"]:
        say("stage 4/4: eval")
        evaluated = evaluation.run(run_dir, eval_config, run_dir.student)
        finish("eval", **evaluated.model_dump(mode="json"))
    return state
