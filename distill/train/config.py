"""Training configuration: our defaults (not TRL's), loadable from YAML and overridable by flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from distill.errors import DistillError
from distill.userfiles import load_yaml_mapping, located


class TrainConfig(BaseModel):
    """Everything `distill train` needs besides the run directory.

    Fields (all settable in YAML and, for the common ones, by flags):
    - student: "local" (embedded SmolLM2-135M-Instruct), a Hugging Face id, or a model folder.
    - qlora: load the base in 4-bit nf4 with double quantisation (bf16 compute on CUDA). On CPU this runs
      through bitsandbytes' CPU path, slower than plain LoRA (`qlora: false`).
    - lora_r / lora_alpha / lora_dropout / target_modules: the adapter ("all-linear" = every projection).
    - learning_rate, lr_scheduler, warmup_ratio, epochs, max_steps (-1: run the epochs).
    - batch_size (per device), grad_accum, max_length (tokens; longer examples are truncated).
    - packing: None = auto (on only where it is safe and pays: CUDA), True / False to force.
    - eval_split / logging / saving cadence, seed, threads (CPU torch threads; None = auto).
    - merge: also write a merged 16-bit model next to the adapter (never merged into 4-bit weights).
    - resume: continue from the last checkpoint in the output folder when there is one.
    - check_memory: refuse to start when the fit estimate exceeds the memory available.
    - dpo_beta: DPO's beta (`distill train --dpo`): how far the preference-trained student may move from the SFT
      student it starts from (lower: further).
    - reasoning: assistant turns are trained with the teacher's reasoning in a `<think>` block before the
      answer (the student learns to reason first); off: the answer alone.
    """

    model_config = ConfigDict(extra="forbid")

    student: str = "local"
    qlora: bool = True
    lora_r: int = Field(16, gt=0)
    lora_alpha: int = Field(32, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    learning_rate: float = Field(2e-4, gt=0)
    lr_scheduler: str = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    epochs: float = Field(2, gt=0)
    max_steps: int = Field(-1, ge=-1)  # -1: run the epochs
    batch_size: int = Field(4, gt=0)
    grad_accum: int = Field(4, gt=0)
    max_length: int = Field(1024, gt=8)
    packing: bool | None = None
    gradient_checkpointing: bool | None = None  # None: on for CUDA, off on CPU (no memory pressure there)
    eval_steps: int | None = Field(None, gt=0)  # None: evaluate at each epoch end
    save_steps: int = Field(50, gt=0)
    save_total_limit: int = Field(2, gt=0)
    logging_steps: int = Field(5, gt=0)
    eval_before: bool = True  # eval loss of the untouched base, for comparison in the card
    seed: int = 0
    threads: int | None = Field(None, gt=0)
    merge: bool = False
    resume: bool = True
    check_memory: bool = True
    reasoning: bool = False
    dpo_beta: float = Field(0.1, gt=0)

    @field_validator("max_steps")
    @classmethod
    def _some_steps(cls, steps: int) -> int:
        if steps == 0:
            raise ValueError("0 steps would train nothing; give 1 or more, or -1 to run the epochs")
        return steps


FLAG_FIELDS = set(TrainConfig.model_fields)


def load_train_config(path: Path | None = None, **overrides: Any) -> TrainConfig:
    """Read a YAML config (optional), apply flag overrides (None = not given), validate."""
    data: dict[str, Any] = {}
    prefix: tuple = ()
    if path is not None:
        data = load_yaml_mapping(Path(path), "training config", "field: value")
        # A `distill run` config may nest the training section under `train:`.
        if "train" in data and isinstance(data["train"], dict):
            prefix = ("train",)
    values = dict(data["train"] if prefix else data)
    flags = {key: value for key, value in overrides.items() if value is not None}
    values.update(flags)
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        field = exc.errors()[0]["loc"][:1]
        if path is not None and field and field[0] not in flags:  # the file's mistake: name its line
            raise located(exc, data, Path(path), prefix=prefix) from None
        raise DistillError(_first_error(exc), path=path) from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or "config"
    if error["type"] == "extra_forbidden":
        known = ", ".join(sorted(FLAG_FIELDS))
        return f"unknown training config field {field!r} (known: {known})"
    return f"training config field {field!r}: {error['msg'].removeprefix('Value error, ')} (got {error.get('input')!r})"
