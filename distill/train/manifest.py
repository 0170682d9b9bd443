"""The adapter's manifest: which base, which template and tokenizer, which data, what came out.

Evaluation and export read it back so they format prompts exactly as training did; a tokenizer whose
hash differs from the recorded one is refused rather than silently producing garbage.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from distill.errors import DistillError
from distill.models import load_tokenizer
from distill.owned import OwnedFolder

MANIFEST_NAME = "distill_manifest.json"


class Manifest(BaseModel):
    student: str  # as the user gave it ("local", an id, a folder)
    base_model: str  # what it resolved to
    qlora: bool
    chat_template: str
    chat_template_sha256: str
    tokenizer_sha256: str
    eot_token: str
    train_examples: int
    eval_examples: int
    train_sha256: str  # of the split files, so "which data" has an answer
    eval_sha256: str
    config: dict[str, Any]
    mask: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    merged_dir: str | None = None
    review: dict[str, Any] = Field(default_factory=dict)  # the review gate: verdict, forced (--force), message
    # Set when the adapter was preference-trained after SFT (`distill train --dpo`): the method, the SFT adapter it
    # continued from, the pairs (count, file hash) and beta. Empty for an SFT adapter.
    preference: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tokenizer_sha256(tokenizer) -> str:
    """Hash of what decides token ids: the vocabulary, merges and special tokens, not file layout."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        payload = backend.to_str()
    else:
        payload = json.dumps(sorted(tokenizer.get_vocab().items()))
    payload += json.dumps(sorted(map(str, tokenizer.all_special_tokens)))
    return sha256_text(payload)


def library_versions() -> dict[str, str]:
    versions = {}
    for name in ("distill", "torch", "transformers", "trl", "peft", "bitsandbytes"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return versions


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """DIRECTORY/distill_manifest.json (never over a file of that name distill did not write)."""
    return OwnedFolder.in_place(directory, option="the folder").write_text(MANIFEST_NAME,
                                                                          manifest.model_dump_json(indent=2))


def read_manifest(directory: Path) -> Manifest:
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise DistillError(f"no {MANIFEST_NAME}: not an adapter written by `distill train`", path=directory)
    try:
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise DistillError(f"unreadable manifest: {exc.errors()[0]['msg']}", path=path) from None


def attach_adapter(base, adapter_dir: Path, trainable: bool = False):
    """`base` with the adapter in `adapter_dir` on it (a PEFT model; its weights trainable with `trainable`, to
    train it further). A damaged adapter file (truncated, overwritten, not JSON) is one line naming the file, not
    the library's traceback."""
    from peft import PeftModel
    from safetensors import SafetensorError

    adapter_dir = Path(adapter_dir)
    try:
        return PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=trainable)
    except (SafetensorError, ValueError, OSError) as exc:
        if isinstance(exc, SafetensorError):
            weights = adapter_dir / "adapter_model.safetensors"
            damaged = weights if weights.exists() else adapter_dir / "adapter_model.bin"
        elif isinstance(exc, OSError):
            damaged = Path(exc.filename) if exc.filename else adapter_dir
        else:  # PEFT's ValueError and json's: the adapter's config
            damaged = adapter_dir / "adapter_config.json"
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DistillError(f"damaged adapter file ({reason}); train again (or restore the adapter folder from "
                           "a copy)", path=damaged) from None


def load_student_tokenizer(manifest: Manifest):
    """The base tokenizer with the recorded template, refused if its vocabulary changed since training."""
    tokenizer = load_tokenizer(manifest.base_model)
    if tokenizer_sha256(tokenizer) != manifest.tokenizer_sha256:
        raise DistillError(
            f"the tokenizer of {manifest.base_model} differs from the one the adapter was trained with "
            "(hash mismatch): evaluate or export with the same base model"
        )
    tokenizer.chat_template = manifest.chat_template
    return tokenizer
