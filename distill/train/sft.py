"""`distill train`: TRL's SFTTrainer with a (Q)LoRA adapter on the run's training split.

The order matters and is the whole story: split -> tokenizer and end-of-turn -> memory check -> model ->
trainer (TRL tokenises and masks the prompt) -> our label alignment and mask check -> eval loss of the
base -> train (resuming from the last checkpoint) -> eval loss -> adapter, manifest, card (-> merge).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from distill.errors import DistillError, Interrupted
from distill.extras import needs
from distill.models import load_causal_lm, load_tokenizer, resolve_model, set_threads
from distill.owned import KNOWN, OwnedFolder
from distill.review.feedback import rebuild
from distill.review.gate import require_pass
from distill.rundir import RunDir
from distill.train import data, manifest as mf, memory
from distill.train.card import render_card
from distill.train.config import TrainConfig
from distill.train.memory import MemoryEstimate
from distill.train.merge import merge_adapter, merged_folder
from distill.train.trainer_args import CHECKPOINTS, shared_args


class TrainResult(BaseModel):
    adapter_dir: Path
    merged_dir: Path | None = None
    steps: int
    train_loss_first: float | None = None
    train_loss_last: float | None = None
    eval_loss_before: float | None = None
    eval_loss_after: float | None = None
    tokens_per_second: float | None = None
    seconds_per_step: float | None = None
    resumed_from: str | None = None
    quantized_layers: int = 0  # bitsandbytes 4-bit linear layers in the trained base (QLoRA), counted on the model
    memory: MemoryEstimate
    mask: data.MaskStats


def default_out_dir(run_dir: Path | RunDir) -> Path:
    return (run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)).student


def train(run_dir: Path, config: TrainConfig, out_dir: Path | None = None, progress: bool = True,
          log: Callable[[str], None] | None = None, force_review: bool = False,
          force_out: bool = False) -> TrainResult:
    """`run` on the run folder at `run_dir` (`distill train`, `distill.train()`)."""
    return run(RunDir(run_dir), config, out_dir, progress=progress, log=log, force_review=force_review,
               force_out=force_out)


@needs("local", "train", purpose="distill train")  # torch and transformers, then trl and peft
def run(run_dir: RunDir, config: TrainConfig, out_dir: Path | None = None, progress: bool = True,
        log: Callable[[str], None] | None = None, force_review: bool = False,
        force_out: bool = False) -> TrainResult:
    """The training stage: an adapter trained on the run's training split, written to `out_dir` (default
    RUN_DIR/student).

    Writes the adapter, `distill_manifest.json` (template, tokenizer hash, data hashes, metrics) and a
    model card `README.md`; checkpoints go to OUT/checkpoints and a re-run resumes from the last one.
    With `config.merge`, also OUT-merged (a 16-bit merged model). `log` receives one-line notices
    (default: stderr when `progress`). A run with a review queue trains only once its review gate
    passes (ReviewPending, exit code 4, otherwise); `force_review` overrides, and says so in the
    manifest and the card. OUT is a folder of its own (`force_out` writes into a folder of the user's,
    beside what is there), claimed before any model loads.
    """
    review = check_review(run_dir, force_review, log or (lambda line: print(line, file=sys.stderr)))
    out_dir = Path(out_dir) if out_dir else run_dir.student
    import torch

    say = log or ((lambda line: print(line, file=sys.stderr)) if progress else (lambda line: None))
    set_threads(config.threads)
    train_examples, eval_examples = data.load_splits(run_dir, seed=config.seed, say=say)
    base_model = resolve_model(config.student)
    tokenizer = load_tokenizer(config.student)
    eot_token = data.end_of_turn_token(tokenizer)
    eot_id = tokenizer.convert_tokens_to_ids(eot_token)

    cuda = torch.cuda.is_available()
    checkpointing = config.gradient_checkpointing if config.gradient_checkpointing is not None else cuda
    memory = check_fit(base_model, config, cuda, checkpointing)
    adapter_folder(out_dir, force_out)  # checked and made now, before the model loads
    if config.merge:
        merged_folder(out_dir, force_out, force_option="--force-out")
    say(memory.summary())
    if config.qlora and not cuda:
        say("note: no CUDA device: QLoRA runs through bitsandbytes' CPU path, slower than plain LoRA "
            "(which fits easily for small students): pass --no-qlora for plain LoRA")

    model = load_model(base_model, config.qlora, cuda, checkpointing)
    trainer = build_trainer(model, tokenizer, train_examples, eval_examples, config, out_dir, cuda, checkpointing)
    mask = prepare_labels(trainer, eot_id, config.max_length)
    if mask.rows_with_eot < mask.rows:
        say(f"note: {mask.rows - mask.rows_with_eot} of {mask.rows} training rows were truncated before "
            f"{eot_token} (max_length {config.max_length}); they teach the answer but not where it stops")

    use_progress_bar(trainer, progress)
    last = last_checkpoint(out_dir / CHECKPOINTS) if config.resume else None
    eval_before = None
    if trainer.eval_dataset is not None and config.eval_before and last is None:
        eval_before = trainer.evaluate()["eval_loss"]
    if last:
        say(f"resuming from {last}")
    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=last)
    except KeyboardInterrupt:
        trainer._save_checkpoint(trainer.model, trial=None)  # full state (optimizer, scheduler, RNG) to resume
        raise Interrupted(f"interrupted at step {trainer.state.global_step}; checkpoint saved under "
                          f"{out_dir / CHECKPOINTS}: run the same command again to resume") from None
    elapsed = time.perf_counter() - started
    eval_after = trainer.evaluate()["eval_loss"] if trainer.eval_dataset is not None else None

    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    steps_run = trainer.state.global_step - (step_of(last) if last else 0)
    tokens = trainer.state.num_input_tokens_seen or 0
    result = TrainResult(
        adapter_dir=out_dir, steps=trainer.state.global_step,
        train_loss_first=losses[0] if losses else None, train_loss_last=losses[-1] if losses else None,
        eval_loss_before=eval_before, eval_loss_after=eval_after,
        tokens_per_second=tokens / elapsed if elapsed and not last else None,
        seconds_per_step=elapsed / steps_run if steps_run else None,
        resumed_from=str(last) if last else None, memory=memory, mask=mask,
        quantized_layers=count_4bit_layers(trainer.model),
    )
    save_outputs(trainer, tokenizer, result, config, base_model, eot_token, run_dir, train_examples, eval_examples,
                 review)
    if config.merge:
        del trainer, model  # free the training copy before loading a 16-bit one
        result.merged_dir = merge_adapter(out_dir)
        say(f"merged 16-bit model written to {result.merged_dir}")
    return result


def adapter_folder(out_dir: Path, force: bool = False) -> OwnedFolder:
    """The adapter's folder, claimed: a folder of the user's is refused (unless `force`), and so is a file of
    theirs named like one of the adapter's; TRL's checkpoints/ is distill's to manage."""
    folder = OwnedFolder.claim(out_dir, "adapter", force=force, force_option="--force-out")
    folder.check_all(name for name in KNOWN["adapter"] if not name.endswith("/"))
    folder.reserve(CHECKPOINTS + "/")
    return folder


def check_review(run_dir: RunDir, force: bool, say: Callable[[str], None]) -> dict:
    """The review gate (distill/review/gate.py) before anything loads; what the manifest records of it.
    The review stage rebuilds the run's files first, so the card reads its current figures."""
    rebuild(run_dir, say=say)

    # An override is said even when quiet (`say` prints to stderr then): it changes what the adapter
    # may be trusted with.
    result = require_pass(run_dir.root, force=force, say=say)
    return {"gate": result.verdict, "forced": force and not result.passed, "message": result.message}


def count_4bit_layers(model) -> int:
    """bitsandbytes 4-bit linear layers in `model`: how a QLoRA run shows it really ran in 4 bits."""
    try:
        from bitsandbytes.nn import Linear4bit
    except ImportError:
        return 0
    return sum(isinstance(module, Linear4bit) for module in model.modules())


def check_fit(base_model: str, config: TrainConfig, cuda: bool, checkpointing: bool) -> MemoryEstimate:
    estimate = memory.estimate(
        memory.model_shape(base_model), qlora=config.qlora, cuda=cuda, lora_r=config.lora_r,
        batch_size=config.batch_size, max_length=config.max_length, gradient_checkpointing=checkpointing,
    )
    if config.check_memory and not estimate.fits:
        raise DistillError(memory.advice(estimate, qlora=config.qlora, batch_size=config.batch_size,
                                         max_length=config.max_length, gradient_checkpointing=checkpointing))
    return estimate


def load_model(base_model: str, qlora: bool, cuda: bool, checkpointing: bool):
    """The base in fp32 (CPU) / bf16 (CUDA), or 4-bit nf4 with double quantisation for QLoRA."""
    import torch

    compute = torch.bfloat16 if cuda else torch.float32  # bf16 on CPU made steps ~10x slower here
    kwargs: dict[str, Any] = {"dtype": compute}
    if cuda:
        from accelerate import PartialState

        kwargs["device_map"] = {"": PartialState().local_process_index}  # one full copy per GPU process
    if qlora:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute, bnb_4bit_quant_storage=compute,  # storage dtype lets FSDP shard it
        )
        kwargs.setdefault("device_map", {"": "cpu"})
    model = load_causal_lm(base_model, **kwargs)
    if qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    return model


def build_trainer(model, tokenizer, train_examples, eval_examples, config: TrainConfig, out_dir: Path, cuda: bool,
                  checkpointing: bool):
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    # Packing is exact only when attention respects the packed boundaries (position ids); it pays on GPUs.
    # On CPU it was measured to bring no speed-up, so "auto" leaves it off there.
    packing = config.packing if config.packing is not None else cuda
    has_eval = bool(eval_examples)
    args = SFTConfig(
        **shared_args(SFTConfig, config, out_dir, cuda, checkpointing),
        per_device_eval_batch_size=config.batch_size,
        packing=packing,
        completion_only_loss=True,
        eval_strategy=("steps" if config.eval_steps else "epoch") if has_eval else "no",
        eval_steps=config.eval_steps,
        include_num_input_tokens_seen="non_padding",
    )
    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=config.target_modules, bias="none", task_type="CAUSAL_LM",
    )
    return SFTTrainer(
        model=model, args=args, processing_class=tokenizer, peft_config=lora,
        train_dataset=data.build_dataset(train_examples, tokenizer, config.reasoning),
        eval_dataset=data.build_dataset(eval_examples, tokenizer, config.reasoning) if has_eval else None,
    )


def prepare_labels(trainer, eot_id: int, max_length: int) -> data.MaskStats:
    """Align TRL's labels (end-of-turn learned, template tail ignored) and refuse a near-empty mask."""
    trainer.train_dataset = data.align_dataset(trainer.train_dataset, eot_id)
    if trainer.eval_dataset is not None:
        trainer.eval_dataset = data.align_dataset(trainer.eval_dataset, eot_id)
    mask = data.mask_stats(trainer.train_dataset, eot_id)
    data.check_mask(mask, max_length)
    return mask


def save_outputs(trainer, tokenizer, result: TrainResult, config: TrainConfig, base_model: str, eot_token: str,
                 run_dir: RunDir, train_examples, eval_examples, review: dict | None = None) -> None:
    out_dir = result.adapter_dir
    folder = OwnedFolder.in_place(out_dir, "adapter", option="--out")  # claimed at the start of `train`
    with folder.staging() as stage:  # PEFT and the tokenizer write where they like: moved in under our rule
        trainer.save_model(str(stage))
        tokenizer.save_pretrained(str(stage))
    manifest = mf.Manifest(
        student=config.student, base_model=base_model, qlora=config.qlora,
        chat_template=tokenizer.chat_template, chat_template_sha256=mf.sha256_text(tokenizer.chat_template),
        tokenizer_sha256=mf.tokenizer_sha256(tokenizer), eot_token=eot_token,
        train_examples=len(train_examples), eval_examples=len(eval_examples),
        train_sha256=mf.sha256_file(run_dir.train), eval_sha256=mf.sha256_file(run_dir.eval),
        config=config.model_dump(), mask=result.mask.model_dump(),
        metrics=result.model_dump(include={"steps", "train_loss_first", "train_loss_last", "eval_loss_before",
                                           "eval_loss_after", "tokens_per_second", "seconds_per_step"}),
        versions=mf.library_versions(), review=review or {},
    )
    mf.write_manifest(out_dir, manifest)
    folder.write_text("README.md", render_card(manifest, train_examples, eval_examples, run_dir.read_stats()))


def last_checkpoint(directory: Path) -> str | None:
    """The newest TRL checkpoint under `directory` (a re-run resumes from it), or None."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(directory)) if directory.is_dir() else None


def step_of(checkpoint: str) -> int:
    """The optimizer step a checkpoint folder (checkpoint-N) was saved at; 0 when its name does not say."""
    try:
        return int(Path(checkpoint).name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def use_progress_bar(trainer, progress: bool) -> None:
    """Our bar (loss, tokens/s) instead of transformers' bar and its raw log dicts."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    # (progress.py subclasses transformers' TrainerCallback: it imports the extra, so it is imported here.)
    from distill.train.progress import LossProgress

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if progress:
        trainer.add_callback(LossProgress())
