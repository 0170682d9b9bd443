"""Write a merged transformers model as a GGUF file for llama.cpp, Ollama and LM Studio, with the `gguf` package.

Llama-architecture models first (SmolLM2 is `LlamaForCausalLM`); anything else is a clear error. What the file
holds, and why:
- tensors renamed by gguf's own name map for the architecture; the query and key projections reordered from
  the rotate-half layout transformers uses to the interleaved pairs llama.cpp's rotary embedding expects
  (transformers' GGUF loader undoes exactly this); 1-D tensors (norms) stay F32, as llama.cpp's converter does;
- the hyper-parameters under `llama.*`, and authorship metadata (`general.*`) read by gguf's `Metadata` from
  the model folder's card and config (base model, license, languages, tags);
- the tokenizer: the byte-level BPE vocabulary with token types (special added tokens CONTROL), merges,
  special token ids, the add-BOS flag and the chat template the student was trained with; the pre-tokenizer
  name is read off the tokenizer's own pre-tokenizer, so llama.cpp splits text the way training did.
Tensors are streamed: one tensor in memory at a time, written to a temporary file renamed at the end, so a
crash never leaves a half-written GGUF behind.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from pydantic import BaseModel

from distill.errors import DistillError
from distill.owned import OwnedFolder

# name -> (tensor type for 2-D weights, the file type llama.cpp reports)
QUANT_TYPES = ("f16", "q8_0")
SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)


class GgufFile(BaseModel):
    path: Path
    quant: str
    bytes: int
    tensors: int
    parameters: int
    seconds: float
    pre_tokenizer: str


def write_gguf(model_dir: Path, out_path: Path, quant: str = "q8_0", *, chat_template: str | None = None,
               name: str | None = None, progress: Callable[[int, int], None] | None = None) -> GgufFile:
    """Write MODEL_DIR (a merged transformers folder) as OUT_PATH in `quant` ("f16" or "q8_0")."""
    import gguf

    if quant not in QUANT_TYPES:
        raise DistillError(f"--gguf must be one of {', '.join(QUANT_TYPES)}, not {quant!r}")
    started = time.perf_counter()
    model_dir, out_path = Path(model_dir), Path(out_path)
    config = _read_config(model_dir)
    weights = _SafetensorsFolder(model_dir)
    tensor_type, file_type = {
        "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
        "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    }[quant]
    plan = list(_tensor_plan(config, weights, tensor_type))
    parameters = sum(int(np.prod(shape)) for _, _, shape, _ in plan)

    folder = OwnedFolder.in_place(out_path.parent, "model-export", option="--out")
    with folder.replacing(out_path.name) as tmp:  # never over a file distill did not write
        writer = gguf.GGUFWriter(tmp, "llama")
        try:
            _add_model_metadata(writer, model_dir, config, name, parameters)
            writer.add_file_type(file_type)
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
            pre = _add_tokenizer(writer, model_dir, config, chat_template)
            for gguf_name, _, shape, qtype in plan:
                writer.add_tensor_info(gguf_name, *_stored_shape(shape, qtype), raw_dtype=qtype)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            for done, (gguf_name, hf_name, shape, qtype) in enumerate(plan, 1):
                writer.write_tensor_data(_convert(weights.read(hf_name), gguf_name, qtype, config))
                if progress:
                    progress(done, len(plan))
        finally:
            writer.close()
    return GgufFile(path=out_path, quant=quant, bytes=out_path.stat().st_size, tensors=len(plan),
                    parameters=parameters, seconds=time.perf_counter() - started, pre_tokenizer=pre)


# --- the model ------------------------------------------------------------------------------------------------

def _read_config(model_dir: Path) -> dict:
    path = model_dir / "config.json"
    if not path.is_file():
        raise DistillError("no config.json: not a transformers model folder (merge the adapter first)",
                           path=model_dir)
    config = json.loads(path.read_text(encoding="utf-8"))
    architecture = (config.get("architectures") or ["(none)"])[0]
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise DistillError(
            f"architecture {architecture} is not supported by distill's GGUF writer (supported: "
            f"{', '.join(SUPPORTED_ARCHITECTURES)}); convert this model with llama.cpp's convert_hf_to_gguf.py",
            path=path)
    rope = config.get("rope_scaling") or config.get("rope_parameters") or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        raise DistillError(f"rope scaling {rope.get('rope_type', rope.get('type'))!r} is not supported by "
                           "distill's GGUF writer; convert with llama.cpp's convert_hf_to_gguf.py", path=path)
    if config.get("hidden_act", "silu") != "silu":
        raise DistillError(f"activation {config['hidden_act']!r} is not what llama.cpp's llama expects (silu)",
                           path=path)
    return config


class _SafetensorsFolder:
    """The weights of a folder, one or several safetensors files, read one tensor at a time."""

    def __init__(self, model_dir: Path):
        index = model_dir / "model.safetensors.index.json"
        if index.is_file():
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            self.files = {name: model_dir / file for name, file in weight_map.items()}
        elif (model_dir / "model.safetensors").is_file():
            from safetensors import safe_open

            single = model_dir / "model.safetensors"
            with safe_open(single, framework="pt") as handle:
                self.files = {name: single for name in handle.keys()}
        else:
            raise DistillError("no model.safetensors: save the merged model with safetensors", path=model_dir)

    def names(self) -> list[str]:
        return list(self.files)

    def shape(self, name: str) -> tuple[int, ...]:
        from safetensors import safe_open

        with safe_open(self.files[name], framework="pt") as handle:
            return tuple(handle.get_slice(name).get_shape())

    def read(self, name: str) -> np.ndarray:
        from safetensors import safe_open

        with safe_open(self.files[name], framework="pt") as handle:
            return handle.get_tensor(name).float().numpy()  # via torch: numpy has no bfloat16


def _tensor_plan(config: dict, weights: _SafetensorsFolder, tensor_type) -> Iterator[tuple]:
    """(gguf name, transformers name, shape, stored type) for every tensor, in file order."""
    import gguf

    tied = config.get("tie_word_embeddings", False)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    unknown = []
    for hf_name in weights.names():
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue  # recomputed by llama.cpp / the same tensor as token_embd
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            unknown.append(hf_name)
            continue
        shape = weights.shape(hf_name)
        yield gguf_name, hf_name, shape, _stored_type(shape, tensor_type)
    if unknown:
        raise DistillError(f"tensors with no GGUF name for the llama architecture: {', '.join(unknown[:5])}"
                           f"{' ...' if len(unknown) > 5 else ''}; this model is not a plain Llama")


def _stored_type(shape: tuple[int, ...], tensor_type):
    import gguf

    if len(shape) == 1:
        return gguf.GGMLQuantizationType.F32  # norms: tiny, and llama.cpp keeps them F32
    if tensor_type == gguf.GGMLQuantizationType.Q8_0 and shape[-1] % gguf.GGML_QUANT_SIZES[tensor_type][0]:
        return gguf.GGMLQuantizationType.F16  # rows not a whole number of 32-value blocks
    return tensor_type


def _stored_shape(shape: tuple[int, ...], qtype) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, bytes) as GGUFWriter.add_tensor_info wants them: quantized types as a byte shape."""
    import gguf
    from gguf.quants import quant_shape_to_byte_shape

    if qtype == gguf.GGMLQuantizationType.F32:
        return shape, np.dtype(np.float32), int(np.prod(shape)) * 4
    if qtype == gguf.GGMLQuantizationType.F16:
        return shape, np.dtype(np.float16), int(np.prod(shape)) * 2
    byte_shape = quant_shape_to_byte_shape(shape, qtype)
    return byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape))


def _convert(array: np.ndarray, gguf_name: str, qtype, config: dict) -> np.ndarray:
    from gguf.quants import quantize

    if gguf_name.endswith("attn_q.weight"):
        array = interleave_rope(array, config["num_attention_heads"])
    elif gguf_name.endswith("attn_k.weight"):
        array = interleave_rope(array, config.get("num_key_value_heads") or config["num_attention_heads"])
    return quantize(np.ascontiguousarray(array, dtype=np.float32), qtype)


def interleave_rope(weight: np.ndarray, heads: int) -> np.ndarray:
    """Rows of a query/key projection from rotate-half order (transformers) to interleaved pairs (llama.cpp).

    Within each head, transformers rotates dimension i with i + d/2; llama.cpp rotates 2i with 2i + 1.
    """
    half = weight.shape[0] // heads // 2
    return weight.reshape(heads, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _add_model_metadata(writer, model_dir: Path, config: dict, name: str | None, parameters: int) -> None:
    import gguf

    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    rope = config.get("rope_parameters") or {}
    metadata = gguf.Metadata.load(None, model_dir, name, parameters)  # card YAML + config: base model, license
    if metadata.name is None:
        metadata.name = model_dir.name
    if metadata.size_label is None:
        metadata.size_label = gguf.size_label(parameters, 0, 0, 0)  # "135M", as llama.cpp's converter names it
    metadata.set_gguf_meta_model(writer)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads") or heads)
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config["hidden_size"] // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)


# --- the tokenizer ------------------------------------------------------------------------------------------

def _add_tokenizer(writer, model_dir: Path, config: dict, chat_template: str | None) -> str:
    """Vocabulary, token types, merges, special ids and template; returns the pre-tokenizer name written."""
    import gguf

    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise DistillError("no tokenizer.json: the GGUF writer needs a fast (tokenizers) tokenizer", path=model_dir)
    spec = json.loads(path.read_text(encoding="utf-8"))
    model = spec.get("model", {})
    byte_level = (spec.get("decoder") or {}).get("type") == "ByteLevel"
    if model.get("type") != "BPE" or model.get("byte_fallback") or not byte_level:
        raise DistillError("only byte-level BPE tokenizers (GPT-2 style, as SmolLM2's) are supported by distill's "
                           "GGUF writer; convert with llama.cpp's convert_hf_to_gguf.py", path=path)
    pre = pre_tokenizer_name(spec.get("pre_tokenizer"))
    tokens, types = token_table(spec, config["vocab_size"])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=len(tokens))
    if chat_template is not None:
        special.chat_template = chat_template  # the template the student was trained with (manifest)
    special.add_special_token.setdefault("bos", _adds_bos(spec))
    special.add_to_gguf(writer, quiet=True)
    writer.add_add_space_prefix(False)
    return pre


def pre_tokenizer_name(pre_tokenizer: dict | None) -> str:
    """llama.cpp's name for the way this tokenizer splits text before BPE, or a clear error.

    - GPT-2's regex inside ByteLevel: "gpt-2" (the embedded SmolLM2 as transformers converts it);
    - single digits split first, then GPT-2's regex: "smollm" (SmolLM / SmolLM2 as published; the name the
      original SmolLM2 GGUF carries).
    """
    def byte_level(step: dict) -> bool:
        return step.get("type") == "ByteLevel" and step.get("use_regex", True) and not step.get("add_prefix_space")

    if pre_tokenizer and byte_level(pre_tokenizer):
        return "gpt-2"
    steps = (pre_tokenizer or {}).get("pretokenizers") or []
    if (len(steps) == 2 and steps[0].get("type") == "Digits" and steps[0].get("individual_digits")
            and byte_level(steps[1])):
        return "smollm"
    raise DistillError(f"this tokenizer's pre-tokenizer is not one distill's GGUF writer knows "
                       f"({json.dumps(pre_tokenizer)[:120]}); convert with llama.cpp's convert_hf_to_gguf.py")


def token_table(spec: dict, vocab_size: int) -> tuple[list[str], list[int]]:
    """Every id's token text and llama.cpp token type; ids the tokenizer lacks become unused padding."""
    import gguf

    tokens: dict[int, str] = {index: text for text, index in spec["model"]["vocab"].items()}
    types: dict[int, int] = dict.fromkeys(tokens, gguf.TokenType.NORMAL)
    for added in spec.get("added_tokens", []):
        tokens[added["id"]] = added["content"]
        types[added["id"]] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    size = max(vocab_size, max(tokens) + 1)
    return ([tokens.get(i, f"[PAD{i}]") for i in range(size)],
            [int(types.get(i, gguf.TokenType.UNUSED)) for i in range(size)])


def _adds_bos(spec: dict) -> bool:
    """Whether encoding plain text starts with a special token (the post-processor's single template)."""
    processor = spec.get("post_processor") or {}
    steps = processor.get("processors", [processor])
    return any("SpecialToken" in (step.get("single") or [{}])[0] for step in steps
               if step.get("type") == "TemplateProcessing")
