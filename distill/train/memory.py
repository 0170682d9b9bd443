"""Will it fit? A back-of-the-envelope memory estimate made before any weight is loaded.

Rough by design (within ~30% on the models we tried); its job is to turn an out-of-memory crash an hour
in into a one-line refusal that says what to change.
"""

from __future__ import annotations

import os

from pydantic import BaseModel

from distill.errors import DistillError

GIB = 1024**3


class MemoryEstimate(BaseModel):
    device: str  # "cuda" or "cpu"
    parameters: int
    trainable: int
    weights_gib: float
    adapter_and_optimizer_gib: float
    activations_gib: float
    total_gib: float
    available_gib: float

    @property
    def fits(self) -> bool:
        return self.total_gib <= self.available_gib

    def summary(self) -> str:
        return (f"memory estimate on {self.device}: {self.total_gib:.1f} GiB (weights {self.weights_gib:.2f}, "
                f"adapter+optimizer {self.adapter_and_optimizer_gib:.2f}, activations {self.activations_gib:.2f}) "
                f"of {self.available_gib:.1f} GiB available")


def model_shape(model_path: str) -> dict:
    """Parameter counts and sizes from the config alone (meta device: nothing is allocated)."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(model_path)
    except OSError as exc:
        raise DistillError(f"cannot read the config of model {model_path!r}: {str(exc).splitlines()[0]}") from None
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    total = sum(p.numel() for p in model.parameters())
    linear_layers = [m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "lm_head" not in n]
    return {
        "total": total,
        "linear": linear,
        "lora_shapes": [(m.in_features, m.out_features) for m in linear_layers],
        "hidden": getattr(config, "hidden_size", 1024),
        "layers": getattr(config, "num_hidden_layers", 12),
        "vocab": getattr(config, "vocab_size", 32000),
        "heads": getattr(config, "num_attention_heads", 16),
        "tied": bool(getattr(config, "tie_word_embeddings", False)),
    }


def estimate(shape: dict, *, qlora: bool, cuda: bool, lora_r: int, batch_size: int, max_length: int,
             gradient_checkpointing: bool) -> MemoryEstimate:
    """Bytes for weights + LoRA (weights, grads, Adam) + activations + logits, then the device's free memory."""
    weight_bytes = 2 if cuda else 4  # bf16 on CUDA, fp32 on CPU
    quantisable = shape["linear"] - (0 if shape["tied"] else shape["vocab"] * shape["hidden"])  # lm_head stays
    if qlora:
        # nf4: 4 bits + ~0.127 bits of double-quantised absmax per weight.
        weights = quantisable * 0.516 + (shape["total"] - quantisable) * weight_bytes
    else:
        weights = shape["total"] * weight_bytes
    trainable = sum(lora_r * (i + o) for i, o in shape["lora_shapes"])
    adapter = trainable * (4 + 4 + 8)  # fp32 weights, grads, two Adam moments
    tokens = batch_size * max_length
    act_bytes = 2 if cuda else 4
    # ~34 activations of width `hidden` per token and layer kept for backward (Korthikanti et al.), plus
    # attention scores; checkpointing keeps one per layer. Logits + their softmax/grad in fp32.
    per_layer = tokens * shape["hidden"] * act_bytes * (34 / 2) + batch_size * shape["heads"] * max_length**2 * act_bytes
    layers = 1 if gradient_checkpointing else shape["layers"]
    activations = per_layer * layers + (shape["layers"] * tokens * shape["hidden"] * act_bytes if gradient_checkpointing else 0)
    activations += tokens * shape["vocab"] * 4 * 3
    overhead = 0.5 * GIB if cuda else 1.0 * GIB  # CUDA context / Python + libraries
    total = weights + adapter + activations + overhead
    return MemoryEstimate(
        device="cuda" if cuda else "cpu", parameters=shape["total"], trainable=trainable,
        weights_gib=weights / GIB, adapter_and_optimizer_gib=adapter / GIB, activations_gib=activations / GIB,
        total_gib=total / GIB, available_gib=available_memory(cuda) / GIB,
    )


def available_memory(cuda: bool) -> int:
    if cuda:
        import torch

        free, _ = torch.cuda.mem_get_info()
        return free
    override = os.environ.get("DISTILL_MEMORY_LIMIT_GIB")  # for containers whose cgroup limit psutil misses
    if override:
        return int(float(override) * GIB)
    import psutil

    return psutil.virtual_memory().available


def advice(est: MemoryEstimate, *, qlora: bool, batch_size: int, max_length: int, gradient_checkpointing: bool) -> str:
    """What to change, biggest saving first."""
    steps = []
    if est.activations_gib > est.weights_gib:
        if batch_size > 1:
            steps.append(f"--batch-size {max(1, batch_size // 2)} (raise grad_accum to keep the effective batch)")
        steps.append(f"--max-length {max(128, max_length // 2)}")
        if not gradient_checkpointing:
            steps.append("gradient_checkpointing: true")
    if not qlora:
        steps.append("--qlora (4-bit base weights)")
    steps.append("a smaller --student")
    return (f"will not fit: {est.summary()}. Try: " + "; ".join(steps)
            + " (or check_memory: false to try anyway)")
