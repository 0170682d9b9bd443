"""Batched greedy generation from the base model and from base+adapter, with one copy of the weights.

The adapter is loaded onto the base once; base answers come from the same model with the adapter switched
off (`disable_adapter`), so evaluation needs the memory of one model, not two.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import cast

from pydantic import BaseModel

from distill.evaluate.constrain import SchemaMask, compile_schemas, within_budget
from distill.models import load_causal_lm
from distill.train.manifest import Manifest, attach_adapter, load_student_tokenizer, read_manifest


class Answer(BaseModel):
    """A greedy answer and whether the model ended its turn (the end-of-turn token) within the budget."""

    text: str
    ended: bool


def load_student(adapter_dir: Path):
    """(PeftModel, tokenizer, manifest) for an adapter written by `distill train`.

    The base is loaded unquantised (fp32 on CPU, bf16 on CUDA) even for QLoRA adapters: on CPU, 4-bit
    inference is slow, and the adapter's delta applies to the same weights up to nf4 rounding.
    """
    manifest = read_manifest(adapter_dir)
    tokenizer = load_student_tokenizer(manifest)
    model = attach_adapter(load_base(manifest), adapter_dir)
    model.eval()
    return model, tokenizer, manifest


def load_base(manifest: Manifest):
    """The adapter's base model, unquantised."""
    return load_for_eval(manifest.base_model)


def load_for_eval(name: str | Path, **kwargs):
    """A causal LM in eval mode: fp32 on CPU (bf16 there is slow), bf16 on CUDA."""
    import torch

    cuda = torch.cuda.is_available()
    model = load_causal_lm(str(name), dtype=torch.bfloat16 if cuda else torch.float32, **kwargs)
    return (model.to("cuda") if cuda else model).eval()


def generate(model, tokenizer, manifest: Manifest, conversations: list[list[dict]], *, max_new_tokens: int = 128,
             batch_size: int = 8, adapter: bool = True, tools: list[list[dict] | None] | None = None,
             schemas: list[dict | None] | None = None) -> list[Answer]:
    """Greedy answers to each conversation (its turns before the answer), in input order.

    `tools`: per conversation, the definitions a template that renders tools is given (None: none).
    `schemas`: per conversation, a JSON Schema its answer is held to (`constrain.py`; None: free), its free text
    capped so the answer closes within `max_new_tokens` (`within_budget`)."""
    import torch

    tokenizer.padding_side = "left"  # decoder-only: pad on the left so every row ends where generation starts
    stop = tokenizer.convert_tokens_to_ids(manifest.eot_token)
    tools = tools or [None] * len(conversations)
    schemas = [None if s is None else within_budget(s, max_new_tokens) for s in schemas or [None] * len(conversations)]
    vocab_size = model.config.vocab_size
    grammars = compile_schemas(tokenizer, vocab_size, stop, schemas) if any(schemas) else [None] * len(schemas)
    prompts = [tokenizer.apply_chat_template(c, tools=t, tokenize=False, add_generation_prompt=True)
               for c, t in zip(conversations, tools)]
    # Similar lengths share a batch (less padding); free rows batch apart from constrained ones, so the free
    # answers come from the very batches an evaluation without --constrained makes.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    batches = [group[start : start + batch_size]
               for group in ([i for i in order if grammars[i] is None], [i for i in order if grammars[i] is not None])
               for start in range(0, len(group), batch_size)]
    answers: list[Answer | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    for batch in batches:
        encoded = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
        held = [grammars[i] for i in batch]
        processors = [SchemaMask(tokenizer, vocab_size, stop, held)] if any(held) else []
        with torch.inference_mode(), _adapter_switch(model, adapter):
            output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                                    pad_token_id=tokenizer.pad_token_id, logits_processor=processors)
        new = output[:, encoded["input_ids"].shape[1] :]
        for i, row in zip(batch, new):
            # A row that stopped early holds the stop token (then padding); one cut at the budget does not.
            answers[i] = Answer(text=tokenizer.decode(row, skip_special_tokens=True).strip(),
                                ended=bool((row == stop).any()))
    return cast(list[Answer], answers)  # every prompt answered


def _adapter_switch(model, adapter: bool):
    return nullcontext() if adapter else model.disable_adapter()
