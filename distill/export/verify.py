"""Read a written GGUF back with transformers' own GGUF loader and compare its logits with the merged model's.

Teacher-forced on a few held-out conversations (prompt and reference answer), so every position of every
sequence is compared: the largest absolute logit difference, the mean KL divergence of the next-token
distributions, and how often the most likely next token agrees. Tolerances, from measurements on SmolLM2-135M
(logit standard deviation about 7):
- f16 from bf16 merged weights is the same numbers (bf16 -> f16 is exact at weight magnitudes): only the
  order of floating-point operations may differ;
- q8_0 rounds each block of 32 weights to 8 bits: measured max |diff| 1.3-1.7, mean KL 0.0024-0.0026, top-1
  agreement 95.7-98.4% (benchmarks/bench_export.py and the export tests); the tolerance leaves about 2x room on
  the difference and 4x on KL, and top-1 agreement may fall to 90% (near-ties flip).
"""

from __future__ import annotations

from pydantic import BaseModel

from distill.records import Example


class Tolerance(BaseModel):
    max_abs_diff: float
    mean_kl: float
    min_top1: float


TOLERANCES = {"f16": Tolerance(max_abs_diff=0.1, mean_kl=1e-4, min_top1=0.99),
              "q8_0": Tolerance(max_abs_diff=2.5, mean_kl=0.01, min_top1=0.90)}


class LogitCheck(BaseModel):
    file: str
    quant: str
    sequences: int
    positions: int
    max_abs_diff: float
    mean_kl: float
    top1_agreement: float
    tolerance: Tolerance
    ok: bool


def probe_sequences(tokenizer, examples: list[Example], count: int = 4, max_tokens: int = 256) -> list[list[int]]:
    """Token ids of up to COUNT whole conversations (system, question, answer) as the chat template renders them."""
    conversations = [[m.model_dump() for m in e.messages] for e in examples if e.response][:count]
    if not conversations:  # no run data at hand: two fixed conversations still exercise template and weights
        conversations = [[{"role": "user", "content": "What colour is the sky on a clear day?"},
                          {"role": "assistant", "content": "Blue."}],
                         [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": '{"answer": 4}'}]]
    return [tokenizer.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"][:max_tokens]
            for c in conversations]


def sequence_logits(model, sequences: list[list[int]]) -> list:
    """The model's logits at every position of each sequence (fp32, on the CPU)."""
    import torch

    device = next(model.parameters()).device
    with torch.inference_mode():
        return [model(torch.tensor([ids], device=device)).logits[0].float().cpu() for ids in sequences]


def compare_logits(reference: list, candidate: list) -> tuple[float, float, float, int]:
    """(max |diff|, mean KL(reference || candidate), top-1 agreement, positions) over every position."""
    max_diff, kl_sum, agree, positions = 0.0, 0.0, 0, 0
    for a, b in zip(reference, candidate):
        max_diff = max(max_diff, (a - b).abs().max().item())
        log_a, log_b = a.log_softmax(-1), b.log_softmax(-1)
        kl_sum += (log_a.exp() * (log_a - log_b)).sum().item()
        agree += (a.argmax(-1) == b.argmax(-1)).sum().item()
        positions += a.shape[0]
    # KL is >= 0; rounding makes it a hair negative when the distributions are equal.
    return max_diff, max(0.0, kl_sum / max(positions, 1)), agree / max(positions, 1), positions


class GgufChecker:
    """Collects the merged model's logits, then holds each GGUF's to its quantization's tolerance.

    Fed every loaded model (`observe`), so an evaluation that loads the forms anyway checks them on the way:
    transformers' GGUF loader is slow (it re-parses the file's metadata), so each file is loaded once.
    """

    def __init__(self, sequences: list[list[int]], quants: dict[str, str]):
        self.sequences, self.quants = sequences, quants  # GGUF file name -> quantization
        self.reference: list | None = None
        self.checks: list[LogitCheck] = []

    def observe(self, form, model) -> None:
        """Called with each loaded form (anything with `kind` and `path`), the merged model before the GGUFs."""
        if form.kind == "merged":
            self.reference = sequence_logits(model, self.sequences)
        elif form.kind == "gguf" and self.reference is not None and form.path.name in self.quants:
            self.checks.append(self.check(form.path.name, sequence_logits(model, self.sequences)))

    def check(self, file: str, logits: list) -> LogitCheck:
        quant = self.quants[file]
        if self.reference is None:
            raise RuntimeError("a GGUF checked before the merged model was observed")
        max_diff, mean_kl, top1, positions = compare_logits(self.reference, logits)
        tolerance = TOLERANCES[quant]
        ok = max_diff <= tolerance.max_abs_diff and mean_kl <= tolerance.mean_kl and top1 >= tolerance.min_top1
        return LogitCheck(file=file, quant=quant, sequences=len(self.sequences), positions=positions,
                          max_abs_diff=max_diff, mean_kl=mean_kl, top1_agreement=top1, tolerance=tolerance, ok=ok)
