"""The training arguments SFT and DPO share: one place for the run's schedule, device and checkpoint settings, so
the two trainers cannot drift apart (a DPO step after SFT saves, logs and seeds as the SFT steps did)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.train.config import TrainConfig

CHECKPOINTS = "checkpoints"


def checkpointing_option(config_class: type, on: bool) -> dict[str, Any]:
    """Activation checkpointing on or off, said explicitly: TRL's configs default it to on, and on CPU (no
    memory pressure) recomputing every layer's activations only costs time. transformers 5 renamed the field
    (`activation_checkpointing`; the old name warns), 4.x has only the old one."""
    fields = getattr(config_class, "__dataclass_fields__", {})
    name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return {name: on}


def shared_args(config_class: type, config: TrainConfig, out_dir: Path, cuda: bool,
                checkpointing: bool) -> dict[str, Any]:
    """The keyword arguments of TRL's `SFTConfig` and `DPOConfig` that both trainers take from `config`."""
    return dict(
        output_dir=str(out_dir / CHECKPOINTS),
        use_cpu=not cuda,
        bf16=cuda,
        fp16=False,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio of the total steps
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        **checkpointing_option(config_class, checkpointing),
        max_length=config.max_length,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=True,
        seed=config.seed,
        dataloader_pin_memory=cuda,
    )
