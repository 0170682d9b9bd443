"""Merge an adapter into a 16-bit copy of its base model.

Always into freshly loaded 16-bit weights, never into the 4-bit ones QLoRA trained against: merging into
quantised weights rounds the LoRA delta away or corrupts it (the well-known "gibberish after merge").
"""

from __future__ import annotations

from pathlib import Path

from distill.errors import DistillError
from distill.train.manifest import attach_adapter, read_manifest, write_manifest

DTYPES = {"bfloat16", "float16"}


def merge_adapter(adapter_dir: Path, out_dir: Path | None = None, dtype: str = "bfloat16") -> Path:
    """Write base+adapter as one plain transformers model (weights, tokenizer, template); return its folder."""
    import torch

    from distill.models import load_causal_lm
    from distill.train.manifest import load_student_tokenizer

    if dtype not in DTYPES:
        raise DistillError(f"merge dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    adapter_dir = Path(adapter_dir)
    manifest = read_manifest(adapter_dir)
    out_dir = Path(out_dir) if out_dir else adapter_dir.with_name(adapter_dir.name + "-merged")
    tokenizer = load_student_tokenizer(manifest)
    base = load_causal_lm(manifest.base_model, dtype=getattr(torch, dtype))  # 16-bit, not quantised
    merged = attach_adapter(base, adapter_dir).merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    manifest.merged_dir = str(out_dir)
    write_manifest(adapter_dir, manifest)
    write_manifest(out_dir, manifest)  # a merged folder says what it was made from (eval and export read it)
    return out_dir
