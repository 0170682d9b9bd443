"""Merge an adapter into a 16-bit copy of its base model.

Always into freshly loaded 16-bit weights, never into the 4-bit ones QLoRA trained against: merging into
quantised weights rounds the LoRA delta away or corrupts it (the well-known "gibberish after merge").
"""

from __future__ import annotations

from pathlib import Path

from distill.errors import DistillError
from distill.models import load_causal_lm
from distill.owned import OwnedFolder
from distill.train.manifest import MANIFEST_NAME, attach_adapter, load_student_tokenizer, read_manifest, write_manifest

DTYPES = {"bfloat16", "float16"}


def _default_merged_dir(adapter_dir: Path) -> Path:
    return Path(adapter_dir).with_name(Path(adapter_dir).name + "-merged")


def merged_folder(adapter_dir: Path, force: bool = False, out_dir: Path | None = None,
                  force_option: str = "--force") -> OwnedFolder:
    """ADAPTER-merged (or `out_dir`), claimed before any model loads: a folder of the user's is refused
    unless `force` (the command's `force_option`), and so is a file of theirs named like the model's."""
    folder = OwnedFolder.claim(out_dir or _default_merged_dir(adapter_dir), "merged", option="the merged folder",
                               force=force, force_option=force_option)
    folder.check_all(("config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
                      "README.md", MANIFEST_NAME))
    return folder


def merge_adapter(adapter_dir: Path, out_dir: Path | None = None, dtype: str = "bfloat16",
                  force: bool = False) -> Path:
    """Write base+adapter as one plain transformers model (weights, tokenizer, template); return its folder
    (default ADAPTER-merged; `force` writes into a folder of the user's, beside what is there)."""
    import torch

    if dtype not in DTYPES:
        raise DistillError(f"merge dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    adapter_dir = Path(adapter_dir)
    manifest = read_manifest(adapter_dir)
    folder = merged_folder(adapter_dir, force, out_dir)
    out_dir = folder.root
    tokenizer = load_student_tokenizer(manifest)
    base = load_causal_lm(manifest.base_model, dtype=getattr(torch, dtype))  # 16-bit, not quantised
    merged = attach_adapter(base, adapter_dir).merge_and_unload()
    with folder.staging() as stage:  # transformers writes its files, then they are moved in under our rule
        merged.save_pretrained(stage)
        tokenizer.save_pretrained(stage)
    manifest.merged_dir = str(out_dir)
    write_manifest(adapter_dir, manifest)
    write_manifest(out_dir, manifest)  # a merged folder says what it was made from (eval and export read it)
    return out_dir
