"""In-process teacher through transformers: `local` (embedded SmolLM2) or `hf:<model id or folder>`.

Requests go to a continuous-batching engine (decode_engine.py) in a thread of its own: each request
is answered as soon as it ends, not when its batch does, and prompt beginnings already computed are
reused. Models the engine cannot run (sliding-window, recurrent or soft-capped attention) use
transformers' `generate` on padded batches instead. Either way a cancelled request (Ctrl-C) stops
within one decoding step.
"""

from __future__ import annotations

import asyncio
import json
import threading
from functools import partial

import torch
from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor, StoppingCriteria, StoppingCriteriaList
from transformers.utils import logging as transformers_logging

from distill.models import load_causal_lm, load_tokenizer
from distill.records import Usage
from distill.teachers.base import GenerationRequest, GenerationResult, Teacher
from distill.teachers.local.choices import ChoiceTrie, finite_outputs
from distill.teachers.local.decode_engine import DecodeEngine, Job, JobResult, supports
from distill.teachers.local.turns import answered, template_chat

# Rows decoded together. Measured on 2 busy CPU cores (benchmarks/bench_local_teacher.py): see README.
DEFAULT_ROWS = 16
PADDED_BATCH = 8  # `generate` on padded batches: ~45 tok/s at 8 against ~17 at 1 (STACK-NOTES.md)


class TransformersTeacher(Teacher):
    def __init__(self, spec: str, model_name: str, batch_size: int | None = None, device: str | None = None,
                 repetition_penalty: float = 1.15, engine: bool = True, prefix_cache_mb: int = 512,
                 prefill_chunk: int = 64, dtype: str | None = None):
        # Small models loop on a phrase ("You can tell them when you have it...") without a penalty.
        # It counts only generated tokens: transformers' default also penalises every prompt token,
        # and a chat prompt holds the end-of-turn token, "?" and the topic's own words, so the model
        # stopped asking questions, wandered off topic and ran to max_tokens (0 of 24 kept on medical).
        # It changes the answers, so it is part of the spec, and so of every cache key.
        self.repetition_penalty = repetition_penalty
        self.spec = spec if repetition_penalty == 1.0 else f"{spec}?output_repetition_penalty={repetition_penalty:g}"
        transformers_logging.disable_progress_bar()  # our own bar is the one to watch
        self.tokenizer = load_tokenizer(model_name)
        self.tokenizer.padding_side = "left"  # decoder-only: pad on the left so generation continues the prompt
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = getattr(torch, dtype) if dtype else default_dtype(self.device)
        self.model = load_causal_lm(model_name, dtype=self.dtype).to(self.device).eval()
        self.stop_ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        self.stop_ids |= set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.stop_ids.discard(None)
        self.fallback_reason = supports(self.model) if engine else "turned off"
        self._on_tokens = None
        self.engine: DecodeEngine | None = None
        if self.fallback_reason is None:
            # One request a `generate` call and a row for each: the dispatcher hands over a new request
            # as soon as a row is free, so an item's next step never waits for a whole batch.
            self.batch_size, self.concurrency = 1, batch_size or DEFAULT_ROWS
            self.engine = DecodeEngine(self.model, self.stop_ids, max_rows=self.concurrency, prefill_chunk=prefill_chunk,
                                       prefix_cache_bytes=prefix_cache_mb << 20,
                                       repetition_penalty=repetition_penalty)
        else:
            self.batch_size, self.concurrency = batch_size or PADDED_BATCH, 1  # one model, one padded batch at a time
        self._lock = threading.Lock()
        self._tries: dict[str, ChoiceTrie | None] = {}  # schema JSON -> its allowed outputs, once a schema

    def stream_tokens(self, callback) -> bool:
        self.on_tokens = callback
        return True

    @property
    def on_tokens(self):
        """Called with the number of tokens each decoding step made (from the decoding thread): progress."""
        return self._on_tokens

    @on_tokens.setter
    def on_tokens(self, callback) -> None:
        self._on_tokens = callback
        if self.engine is not None:
            self.engine.on_tokens = callback

    def prompt_text(self, request: GenerationRequest) -> str:
        """The request as the model reads it: its chat template's text, tools included (`turns.template_chat`)."""
        messages, tools = template_chat(request, self.tokenizer.chat_template)
        return self.tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        return self.tokenizer(self.prompt_text(request), add_special_tokens=False)["input_ids"]

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        # A verdict schema decodes under its choice trie, which only transformers' generate takes.
        if self.engine is None or any(self._choices(r.json_schema) is not None for r in requests):
            return await self._generate_padded(requests)
        loop = asyncio.get_running_loop()
        jobs, answers = [], []
        for request in requests:
            answer = loop.create_future()
            sampling = request.sampling
            jobs.append(Job(self.prompt_ids(request), sampling.max_tokens, sampling.temperature, sampling.top_p,
                            sampling.seed, done=partial(_settle_from_thread, loop, answer)))
            answers.append(answer)
            self.engine.submit(jobs[-1])
        try:
            done = await asyncio.gather(*answers)
        except asyncio.CancelledError:
            for job in jobs:  # the engine drops them before its next step
                job.cancelled = True
            raise
        return [self._result(request, answer) for request, answer in zip(requests, done)]

    def _result(self, request: GenerationRequest, answer: JobResult) -> GenerationResult:
        if answer.error is not None:
            return GenerationResult(key=request.key, error=answer.error)
        return answered(request, self.tokenizer.decode(answer.tokens, skip_special_tokens=True),
                        "stop" if answer.finished else "length",
                        Usage(prompt_tokens=answer.prompt_tokens, completion_tokens=len(answer.tokens), cost_usd=0.0))

    # -- models the engine cannot run: transformers' generate on padded batches -------------------

    async def _generate_padded(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        # Requests in one batch may differ in sampling settings or schema: run each group on its own.
        groups: dict[tuple[str, str], list[GenerationRequest]] = {}
        for request in requests:
            key = (request.sampling.model_dump_json(), json.dumps(request.json_schema, sort_keys=True))
            groups.setdefault(key, []).append(request)
        results: dict[str, GenerationResult] = {}
        for group in groups.values():
            stop = threading.Event()
            try:
                answered = await asyncio.to_thread(self._generate_batch, group, stop)
            except asyncio.CancelledError:
                stop.set()  # the thread ends at its next decoding step instead of running to max_tokens
                raise
            except Exception as exc:  # a backend failure is a failed result, never a lost item
                answered = [GenerationResult(key=r.key, error=f"{type(exc).__name__}: {exc}") for r in group]
            results.update((r.key, r) for r in answered)
        return [results[r.key] for r in requests]

    def _generate_batch(self, requests: list[GenerationRequest], stop: threading.Event) -> list[GenerationResult]:
        sampling = requests[0].sampling
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)  # the same batch samples the same way on a re-run
        prompts = [self.prompt_text(r) for r in requests]
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
                stopping_criteria=StoppingCriteriaList([_StepWatch(stop, self._on_tokens, prompt_length,
                                                                   self.stop_ids)]),
                pad_token_id=self.tokenizer.pad_token_id,
            )
        if stop.is_set():  # cut short: nothing here is an answer
            return [GenerationResult(key=r.key, error="interrupted") for r in requests]
        new_tokens = output[:, prompt_length:]
        results = []
        for request, tokens, mask in zip(requests, new_tokens, batch["attention_mask"]):
            ids = tokens.tolist()
            finished = any(t in self.stop_ids for t in ids)
            length = next((i for i, t in enumerate(ids) if t in self.stop_ids), len(ids))
            results.append(answered(request, self.tokenizer.decode(ids[:length], skip_special_tokens=True),
                                    "stop" if finished else "length",
                                    Usage(prompt_tokens=int(mask.sum()), completion_tokens=length, cost_usd=0.0)))
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
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        self.model = None


class _StepWatch(StoppingCriteria):
    """Between two decoding steps of `generate`: stop every row when asked, and count the new tokens."""

    def __init__(self, stop: threading.Event, on_tokens, prompt_length: int, stop_ids: set[int]):
        self.stop, self.on_tokens, self.prompt_length, self.stop_ids = stop, on_tokens, prompt_length, stop_ids

    def __call__(self, input_ids, scores, **kwargs):
        if self.on_tokens is not None:
            generated = input_ids[:, self.prompt_length:]
            ended_before = torch.zeros(len(input_ids), dtype=torch.bool)
            for token in self.stop_ids:  # rows that had already ended make no new token
                ended_before |= (generated[:, :-1] == token).any(dim=1)
            self.on_tokens(int((~ended_before).sum()))
        return torch.full((input_ids.shape[0],), self.stop.is_set(), dtype=torch.bool, device=input_ids.device)


def default_dtype(device: str):
    """bfloat16 on a GPU and on CPUs that compute it natively (AMX, AVX512-BF16), else float32.

    On this project's 2-core Xeon (AMX) bfloat16 made the MLP-sized matmuls 1.7x and the 49k-word
    output layer 2.9x cheaper, and halves the keys and values a decoding step reads.
    """
    if device != "cpu":
        return torch.bfloat16
    native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)() or \
        getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return torch.bfloat16 if native else torch.float32


def _settle_from_thread(loop: asyncio.AbstractEventLoop, answer: asyncio.Future, result: JobResult) -> None:
    def settle() -> None:
        if not answer.done():  # cancelled meanwhile
            answer.set_result(result)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop has closed (the run was interrupted): nobody waits for this answer
        pass


def make(spec: str, model: str, options) -> TransformersTeacher:
    name = "local" if spec == "local" else model
    return TransformersTeacher(spec, name, batch_size=options.batch_size,
                               engine=True if options.engine is None else options.engine,
                               prefix_cache_mb=512 if options.prefix_cache_mb is None else options.prefix_cache_mb,
                               dtype=options.dtype)
