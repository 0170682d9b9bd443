"""The student's own embeddings of texts: its last hidden states, mean-pooled over each text's tokens.

No embedding model is downloaded: the student already on disk (the embedded SmolLM2 by default) is what will
learn from the data, so how far apart it places two examples is what their diversity is worth to it. torch and
transformers are the `local` extra's; they are imported only when a caller asks for embeddings.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from distill.extras import needs
from distill.models import load_causal_lm, load_tokenizer, set_threads


def student_embedder(model: str, *, batch_size: int = 16, max_tokens: int = 256,
                     threads: int | None = None) -> Callable[[list[str]], np.ndarray]:
    """texts -> (n, hidden size) float32 embeddings from `model` ("local", a Hugging Face id on disk or a
    folder), in fp32 on the CPU. The model loads at the first call, once: a run folder that is not there fails
    before torch is imported."""
    loaded: list = []  # [tokenizer, decoder stack], once loaded

    def embed(texts: list[str]) -> np.ndarray:
        with needs("local", purpose="distill taxonomy diversity --embeddings"):
            import torch

            if not loaded:
                loaded.extend(_load(model, threads))
        tokenizer, encoder = loaded
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(texts[start: start + batch_size], padding=True, truncation=True,
                                  max_length=max_tokens, return_tensors="pt")
                states = encoder(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                out.append((states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0))
        return torch.cat(out).numpy() if out else np.empty((0, 0), np.float32)

    return embed


def _load(model: str, threads: int | None) -> tuple:
    import torch

    set_threads(threads)
    tokenizer = load_tokenizer(model)
    tokenizer.padding_side = "right"
    # The decoder stack without the LM head: the vocabulary projection would cost more than the rest of a
    # 135M model's forward pass, and nothing of it is used.
    return tokenizer, load_causal_lm(model, dtype=torch.float32).base_model.eval()
