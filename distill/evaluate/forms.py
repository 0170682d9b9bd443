"""The forms a student can be evaluated in: the LoRA adapter, the merged 16-bit model, a GGUF file.

Each form carries the manifest written at training (a merged folder and an exported GGUF's folder hold a
copy), so every form is prompted with the same chat template and stopped at the same end-of-turn token,
and the base model is known. GGUF files are read by transformers' own GGUF loader (dequantised to fp32):
the scores show what the file's weights and metadata lose, not llama.cpp's kernels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from distill.errors import DistillError
from distill.evaluate.generate import load_for_eval
from distill.train.manifest import MANIFEST_NAME, Manifest, read_manifest

Kind = Literal["adapter", "merged", "gguf"]
ADAPTER_NAME = "student"  # the adapter's system name in eval.json since before the other forms existed


class ModelForm(BaseModel):
    name: str  # its system name in eval.json / eval.md
    kind: Kind
    path: Path


def detect_form(path: Path) -> ModelForm:
    """What PATH holds: a .gguf file, a merged model folder (config.json, no adapter), else an adapter folder."""
    path = Path(path)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise DistillError("GGUF file not found", path=path)
        return ModelForm(name=f"gguf-{gguf_quant(path)}", kind="gguf", path=path)
    if not path.is_dir():
        raise DistillError("student folder does not exist; give the adapter folder `distill train` wrote "
                           "(default RUN_DIR/student), a merged model folder or a .gguf file", path=path)
    if (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
        return ModelForm(name="merged", kind="merged", path=path)
    return ModelForm(name=ADAPTER_NAME, kind="adapter", path=path)


def detect_forms(paths: list[Path]) -> list[ModelForm]:
    """Forms in the given order, names made unique (two GGUFs of one quantization are told apart by file name)."""
    forms = [detect_form(path) for path in paths]
    names = [form.name for form in forms]
    for form in forms:
        if names.count(form.name) > 1:
            form.name = form.path.stem if form.kind == "gguf" else f"{form.name}:{form.path.name}"
    if len({form.name for form in forms}) < len(forms):
        raise DistillError("the same model was given twice to --student")
    return forms


def gguf_quant(path: Path) -> str:
    """The file type llama.cpp reports for the file ("f16", "q8_0", ...)."""
    from gguf import GGUFReader, LlamaFileType

    try:
        field = GGUFReader(path).fields.get("general.file_type")
    except (ValueError, OSError) as exc:
        raise DistillError(f"not a readable GGUF file ({exc})", path=path) from None
    if field is None:
        return "unknown"
    value = int(field.parts[field.data[0]][0])
    try:
        return LlamaFileType(value).name.removeprefix("MOSTLY_").removeprefix("ALL_").lower()
    except ValueError:
        return f"type{value}"


def form_manifest(form: ModelForm) -> Manifest:
    folder = form.path.parent if form.kind == "gguf" else form.path
    if form.kind != "adapter" and not (folder / MANIFEST_NAME).is_file():
        raise DistillError(f"no {MANIFEST_NAME} beside this {form.kind} model: evaluate models written by "
                           "`distill train --merge` or `distill export-model`", path=form.path)
    return read_manifest(folder)


def shared_manifest(forms: list[ModelForm]) -> Manifest:
    """The manifest every form agrees on (same base, same tokenizer), or a clear error."""
    manifests = [form_manifest(form) for form in forms]
    first = manifests[0]
    for form, manifest in zip(forms[1:], manifests[1:]):
        if (manifest.base_model, manifest.tokenizer_sha256) != (first.base_model, first.tokenizer_sha256):
            raise DistillError(f"{form.path} was trained from {manifest.base_model}, {forms[0].path} from "
                               f"{first.base_model}: evaluate forms of one student together")
    return first


def load_form(form: ModelForm):
    """The model of a merged or GGUF form, as `load_for_eval` loads every model of an evaluation."""
    if form.kind == "gguf":
        return load_for_eval(form.path.parent, gguf_file=form.path.name)
    if form.kind == "merged":
        return load_for_eval(form.path)
    raise ValueError("adapters load through distill.evaluate.generate.load_student")
