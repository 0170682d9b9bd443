"""`distill train --dpo`: TRL's DPOTrainer on preference pairs, after SFT, starting from the run's SFT adapter.

The policy is the SFT adapter, loaded trainable, on the same base; the reference is the SFT model, not the bare
base: TRL, given a PEFT model and no reference model, adds a frozen copy of the policy's adapter as adapter "ref"
and computes the reference log-probabilities through it (`DPOTrainer.compute_ref_log_probs`). The copy is taken
before the first step, so the reference stays the SFT student while the policy moves; `_check_reference` makes
sure it was taken (TRL falls back to the bare base, adapters off, when it cannot add one). One base in memory,
two small adapters on it.

Order: pairs -> SFT manifest and its tokenizer -> out folder claimed -> base + SFT adapter (trainable) -> pairs
rendered as the student's template renders them -> DPOTrainer (adds the reference) -> train, resuming from the
last checkpoint -> the policy's adapter, a manifest that says DPO from which SFT adapter on how many pairs, a card.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from distill.errors import DistillError, Interrupted
from distill.extras import needs
from distill.models import set_threads
from distill.owned import OwnedFolder
from distill.records import jsonl_line
from distill.rundir import RunDir
from distill.tool_calls import chat_for_template, template_renders_tools
from distill.train import manifest as mf
from distill.train.config import TrainConfig
from distill.train.preferences import PreferencePair, read_preferences
from distill.train.sft import adapter_folder, last_checkpoint, load_model, step_of, use_progress_bar
from distill.train.trainer_args import CHECKPOINTS, shared_args


class DPOResult(BaseModel):
    adapter_dir: Path
    sft_adapter: Path
    pairs: int
    steps: int
    loss_first: float | None = None  # DPO's loss: log 2 (0.693) at the first step, where policy == reference
    loss_last: float | None = None
    margin_last: float | None = None  # the chosen turn's reward minus the rejected one's, at the last log
    accuracy_last: float | None = None  # share of pairs whose chosen turn the policy prefers, at the last log
    seconds_per_step: float | None = None
    resumed_from: str | None = None


def train_dpo(run_dir: Path | RunDir, pairs: Path | list[PreferencePair], config: TrainConfig,
              sft_adapter: Path | None = None, out_dir: Path | None = None, progress: bool = False,
              log: Callable[[str], None] | None = None, force_out: bool = False) -> Path:
    """DPO after SFT (`run`), for the improve loop: the preference-trained adapter's folder."""
    return run(RunDir(run_dir) if not isinstance(run_dir, RunDir) else run_dir, pairs, config, sft_adapter, out_dir,
               progress=progress, log=log, force_out=force_out).adapter_dir


@needs("local", "train", purpose="distill train --dpo")
def run(run_dir: RunDir, pairs: Path | list[PreferencePair], config: TrainConfig, sft_adapter: Path | None = None,
        out_dir: Path | None = None, progress: bool = True, log: Callable[[str], None] | None = None,
        force_out: bool = False) -> DPOResult:
    """The SFT adapter (default RUN_DIR/student) trained further with DPO on `pairs` (a preferences.jsonl or the
    pairs themselves), written to `out_dir` (default RUN_DIR/student-dpo) with its manifest and card. The base
    and template are the SFT adapter's (`config.student` is not read); checkpoints go to OUT/checkpoints and a
    re-run resumes from the last one."""
    import torch

    say = log or ((lambda line: print(line, file=sys.stderr)) if progress else (lambda line: None))
    pairs_file: Path | None = None
    if isinstance(pairs, (str, Path)):
        pairs_file = Path(pairs)
        pair_list = read_preferences(pairs_file)
    else:
        pair_list = list(pairs)
    if not pair_list:
        raise DistillError("no preference pairs to train on: the student failed no training prompt, or every "
                           "failed one had the teacher's answer")
    sft_adapter = Path(sft_adapter) if sft_adapter else run_dir.student
    sft = mf.read_manifest(sft_adapter)
    if sft.preference:
        raise DistillError(f"{sft_adapter} is already preference-trained ({sft.preference.get('method')}); give "
                           "the SFT adapter it came from (--sft-adapter)")
    out_dir = Path(out_dir) if out_dir else run_dir.student_dpo
    if out_dir.resolve() == sft_adapter.resolve():
        raise DistillError("--out is the SFT adapter's folder: DPO writes a new adapter beside it; give another "
                           "--out (default RUN_DIR/student-dpo)", path=out_dir)
    set_threads(config.threads)
    tokenizer = mf.load_student_tokenizer(sft)
    adapter_folder(out_dir, force_out)  # checked and made now, before the model loads
    cuda = torch.cuda.is_available()
    checkpointing = config.gradient_checkpointing if config.gradient_checkpointing is not None else cuda
    model = mf.attach_adapter(load_model(sft.base_model, config.qlora, cuda, checkpointing), sft_adapter,
                              trainable=True)
    trainer = build_trainer(model, tokenizer, pair_list, config, out_dir, cuda, checkpointing)
    _check_reference(trainer)
    use_progress_bar(trainer, progress)

    last = last_checkpoint(out_dir / CHECKPOINTS) if config.resume else None
    if last:
        say(f"resuming from {last}")
    say(f"DPO on {len(pair_list)} preference pairs from {sft_adapter} (beta {config.dpo_beta})")
    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=last)
    except KeyboardInterrupt:
        trainer._save_checkpoint(trainer.model, trial=None)  # full state (optimizer, scheduler, RNG) to resume
        raise Interrupted(f"interrupted at step {trainer.state.global_step}; checkpoint saved under "
                          f"{out_dir / CHECKPOINTS}: run the same command again to resume") from None
    elapsed = time.perf_counter() - started
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    steps_run = trainer.state.global_step - (step_of(last) if last else 0)
    result = DPOResult(
        adapter_dir=out_dir, sft_adapter=sft_adapter, pairs=len(pair_list), steps=trainer.state.global_step,
        loss_first=logs[0]["loss"] if logs else None, loss_last=logs[-1]["loss"] if logs else None,
        margin_last=logs[-1].get("rewards/margins") if logs else None,
        accuracy_last=logs[-1].get("rewards/accuracies") if logs else None,
        seconds_per_step=elapsed / steps_run if steps_run else None, resumed_from=str(last) if last else None,
    )
    save_outputs(trainer, tokenizer, sft, result, config, pair_list, pairs_file)
    return result


def dataset_rows(pairs: list[PreferencePair], tokenizer) -> list[dict[str, Any]]:
    """TRL's conversational preference rows, rendered as training and eval render a turn
    (`chat_for_template`): tool calls and results in the student's template or in the `<tool_call>` convention."""
    renders = template_renders_tools(tokenizer.chat_template)
    rows = []
    for pair in pairs:
        sides = {}
        for side in ("chosen", "rejected"):
            chat, tools = chat_for_template(pair.prompt + getattr(pair, side), pair.tools, renders)
            sides[side] = chat
        row: dict[str, Any] = {"prompt": sides["chosen"][:-1], "chosen": sides["chosen"][-1:],
                               "rejected": sides["rejected"][-1:]}
        if renders:
            row["tools"] = json.dumps(pair.tools) if pair.tools else None  # text: one Arrow type a column
        rows.append(row)
    return rows


def build_trainer(model, tokenizer, pairs: list[PreferencePair], config: TrainConfig, out_dir: Path, cuda: bool,
                  checkpointing: bool):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(**shared_args(DPOConfig, config, out_dir, cuda, checkpointing), beta=config.dpo_beta)
    # No ref_model and no peft_config: TRL takes the PEFT model as it is and adds the "ref" adapter (see the top).
    return DPOTrainer(model=model, args=args, processing_class=tokenizer,
                      train_dataset=Dataset.from_list(dataset_rows(pairs, tokenizer)))


def _check_reference(trainer) -> None:
    """The reference must be the SFT adapter's frozen copy: a reference of the bare base would reward moving
    back towards the base, undoing SFT."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if trainer.ref_model is None and "ref" not in getattr(model, "peft_config", {}):
        raise DistillError("TRL could not add the SFT adapter's copy as DPO's reference (its peft version "
                           "refuses a second adapter); upgrade peft (pip install -U peft)")


def save_outputs(trainer, tokenizer, sft: mf.Manifest, result: DPOResult, config: TrainConfig,
                 pairs: list[PreferencePair], pairs_file: Path | None) -> None:
    out_dir = result.adapter_dir
    folder = OwnedFolder.in_place(out_dir, "adapter", option="--out")  # claimed at the start
    model = trainer.accelerator.unwrap_model(trainer.model)
    with folder.staging() as stage:
        # The policy alone: the "ref" adapter is the SFT adapter's copy, already in its own folder.
        model.save_pretrained(str(stage), selected_adapters=["default"])
        tokenizer.save_pretrained(str(stage))
    pairs_sha256 = mf.sha256_text("".join(jsonl_line(pair) for pair in pairs))
    manifest = sft.model_copy(update={
        "config": config.model_dump(),
        "metrics": result.model_dump(include={"steps", "loss_first", "loss_last", "margin_last", "accuracy_last",
                                              "seconds_per_step"}),
        "merged_dir": None,
        "versions": mf.library_versions(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preference": {
            "method": "dpo", "sft_adapter": str(result.sft_adapter.resolve()), "pairs": len(pairs),
            "pairs_file": str(pairs_file) if pairs_file else None, "pairs_sha256": pairs_sha256,
            "beta": config.dpo_beta, "reasons": dict(Counter(pair.reason for pair in pairs).most_common()),
        },
    })
    mf.write_manifest(out_dir, manifest)
    folder.write_text("README.md", render_card(manifest, pairs))


def render_card(manifest: mf.Manifest, pairs: list[PreferencePair]) -> str:
    """The DPO adapter's model card: what it continued from and the pairs it learned from, by leaf and reason."""
    preference = manifest.preference
    leaves = Counter(pair.leaf or "(none)" for pair in pairs)
    reasons = Counter(pair.reason or "(none)" for pair in pairs)
    metrics = manifest.metrics
    loss = (f"{metrics['loss_first']:.3f} -> {metrics['loss_last']:.3f}" if metrics.get("loss_first") is not None
            and metrics.get("loss_last") is not None else "n/a")
    lines = [
        "---", f"base_model: {manifest.base_model}", "library_name: peft", "tags: [distill, lora, trl, sft, dpo]",
        "---", "", f"# LoRA adapter for {manifest.student} (SFT, then DPO)", "",
        f"Preference-trained by `distill train --dpo` on {preference['pairs']} pairs from the student's own "
        f"answers (the teacher's turn chosen, the student's rejected), starting from the SFT adapter "
        f"`{preference['sft_adapter']}`, with that adapter as the reference (beta {preference['beta']}).", "",
        "## Pairs", "", "| leaf | pairs |", "|---|---:|",
        *(f"| {leaf} | {n} |" for leaf, n in leaves.most_common()), "",
        "| why the student's turn lost | pairs |", "|---|---:|",
        *(f"| {reason} | {n} |" for reason, n in reasons.most_common()), "",
        "## Training", "", f"{metrics.get('steps')} steps; DPO loss {loss}.", "",
    ]
    return "\n".join(lines)
