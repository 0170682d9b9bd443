"""In-process teacher through transformers: `local` (embedded SmolLM2) or `hf:<model id or folder>`.

Batched generation with left padding and the model's own chat template. Generation runs in a worker
thread so the event loop (progress bar, store writes) keeps going.
"""

from __future__ import annotations

import asyncio
import json
import threading

from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor
from transformers.utils import logging as transformers_logging

from distill.records import Usage
from distill.teachers.base import GenerationRequest, GenerationResult, Teacher
from distill.teachers.choices import ChoiceTrie, finite_outputs


class TransformersTeacher(Teacher):
    concurrency = 1  # one model, one forward pass at a time; batching gives the throughput

    def __init__(self, spec: str, model_name: str, batch_size: int = 8, device: str | None = None,
                 repetition_penalty: float = 1.15):
        import torch

        from distill.models import load_causal_lm, load_tokenizer

        # Small models loop on a phrase ("You can tell them when you have it...") without a penalty.
        # It counts only generated tokens: transformers' default also penalises every prompt token,
        # and a chat prompt holds the end-of-turn token, "?" and the topic's own words, so the model
        # stopped asking questions, wandered off topic and ran to max_tokens (0 of 24 kept on medical).
        # It changes the answers, so it is part of the spec, and so of every cache key.
        self.repetition_penalty = repetition_penalty
        self.spec = spec if repetition_penalty == 1.0 else f"{spec}?output_repetition_penalty={repetition_penalty:g}"
        self.batch_size = batch_size
        transformers_logging.disable_progress_bar()  # our own bar is the one to watch
        self.tokenizer = load_tokenizer(model_name)
        self.tokenizer.padding_side = "left"  # decoder-only: pad on the left so generation continues the prompt
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = load_causal_lm(model_name, dtype=dtype).to(self.device).eval()
        self._lock = threading.Lock()
        self._tries: dict[str, ChoiceTrie | None] = {}  # schema JSON -> its allowed outputs, once a schema

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        # Requests in one batch may differ in sampling settings or schema: run each group on its own.
        groups: dict[tuple[str, str], list[GenerationRequest]] = {}
        for request in requests:
            key = (request.sampling.model_dump_json(), json.dumps(request.json_schema, sort_keys=True))
            groups.setdefault(key, []).append(request)
        results: dict[str, GenerationResult] = {}
        for group in groups.values():
            try:
                answered = await asyncio.to_thread(self._generate_batch, group)
            except Exception as exc:  # a backend failure is a failed result, never a lost item
                answered = [GenerationResult(key=r.key, error=f"{type(exc).__name__}: {exc}") for r in group]
            results.update((r.key, r) for r in answered)
        return [results[r.key] for r in requests]

    def _generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        import torch

        sampling = requests[0].sampling
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)  # the same batch samples the same way on a re-run
        prompts = [
            self.tokenizer.apply_chat_template(
                [m.model_dump() for m in r.messages], tokenize=False, add_generation_prompt=True
            )
            for r in requests
        ]
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        sample = sampling.temperature > 0
        prompt_length = batch["input_ids"].shape[1]  # left padding: every row's prompt ends here
        processors = LogitsProcessorList()
        if self.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(self.repetition_penalty, prompt_ignore_length=prompt_length))
        trie = self._choices(requests[0].json_schema)
        constrain = None
        if trie is not None:  # a verdict schema: only its few valid JSON texts can come out
            constrain = lambda row, ids: trie.allowed(ids[prompt_length:].tolist())  # noqa: E731
        with self._lock, torch.inference_mode():
            output = self.model.generate(
                **batch,
                max_new_tokens=sampling.max_tokens,
                do_sample=sample,
                temperature=sampling.temperature if sample else None,
                top_p=sampling.top_p if sample else None,
                top_k=None,
                logits_processor=processors,
                prefix_allowed_tokens_fn=constrain,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = output[:, batch["input_ids"].shape[1]:]
        stop_ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        results = []
        for request, tokens, mask in zip(requests, new_tokens, batch["attention_mask"]):
            ids = tokens.tolist()
            finished = any(t in stop_ids for t in ids)
            length = next((i for i, t in enumerate(ids) if t in stop_ids), len(ids))
            results.append(
                GenerationResult(
                    key=request.key,
                    text=self.tokenizer.decode(ids[:length], skip_special_tokens=True),
                    finish_reason="stop" if finished else "length",
                    usage=Usage(prompt_tokens=int(mask.sum()), completion_tokens=length, cost_usd=0.0),
                )
            )
        return results

    def _choices(self, schema: dict | None) -> ChoiceTrie | None:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._tries:
            outputs = finite_outputs(schema)
            self._tries[key] = None if outputs is None else ChoiceTrie(
                [self.tokenizer(text, add_special_tokens=False)["input_ids"] for text in outputs],
                end_id=self.tokenizer.eos_token_id)
        return self._tries[key]

    def close(self) -> None:
        self.model = None


def make(spec: str, model: str, options) -> TransformersTeacher:
    name = "local" if spec == "local" else model
    return TransformersTeacher(spec, name, batch_size=options.batch_size or 8)
