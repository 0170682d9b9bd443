"""Continuous batching for an in-process transformers model: requests join and leave between decoding steps.

`model.generate` on a padded batch holds every row until the longest one ends and computes each
prompt in full. On 2 CPU cores that gave 11.7 generated tokens/s on 32 chat prompts of ~710 tokens,
the first answers after 116 s. Here each request is a row with its own keys and values: a row that
ends leaves at once and a waiting request takes its place, prompts are computed in chunks between
the decoding steps of the other rows, and a prompt's beginning already computed for an earlier
request comes from the prefix cache (prefix_cache.py).

One forward pass takes every row's next tokens packed into one sequence (a decoding row adds one
token, a row still reading its prompt a chunk), with each token's own position. The model runs its
own layers; only attention is ours (`ATTENTION`, registered with transformers' AttentionInterface):
it writes each row's new keys and values into the row's buffer and attends within the row. So any
model whose layers all use plain full attention runs here; `supports()` says which.

Everything runs in one thread of its own; the asyncio side hands in `Job`s and gets their
`JobResult`s through callbacks. Between two steps the thread drops cancelled jobs, so an
interrupted run stops within one step (at most `prefill_chunk` prompt tokens plus one token a row).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from distill.teachers.local.prefix_cache import PrefixCache

ATTENTION = "distill_rows"
NUCLEUS_K = 256
_current = threading.local()  # the rows of the forward pass running in this thread


@dataclass
class JobResult:
    tokens: list[int]  # generated, the end token excluded
    finished: bool  # ended on an end token (else it reached max_new_tokens)
    prompt_tokens: int
    reused_tokens: int = 0  # prompt tokens whose keys and values came from the prefix cache
    error: str | None = None


@dataclass
class Job:
    """One prompt to continue, and how to sample its continuation."""

    prompt: list[int]
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    done: Callable[[JobResult], None]  # called once, from the engine's thread
    cancelled: bool = False  # set from any thread; the engine drops the job before its next step


@dataclass
class _Row:
    job: Job
    kv: torch.Tensor  # [layers, 2 (keys, values), kv_heads, capacity, head_dim]
    length: int  # positions of kv filled
    todo: list[int]  # tokens still to feed: the rest of the prompt, then the last token sampled
    reused: int
    generator: torch.Generator | None
    generated: list[int] = field(default_factory=list)
    started: bool = False  # has read part of its prompt (the prefix cache was looked up)
    seen: set[int] = field(default_factory=set)  # distinct generated tokens: the repetition penalty's

    @property
    def reading_prompt(self) -> bool:
        return not self.generated


def supports(model) -> str | None:
    """None when the engine can run this model, else why not (the caller falls back to `generate`)."""
    config = model.config
    kinds = set(getattr(config, "layer_types", None) or ["full_attention"])
    if kinds != {"full_attention"}:
        return f"layer types {sorted(kinds)}"
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return "sliding-window attention"
    if getattr(config, "attn_logit_softcapping", None):
        return "attention soft-capping"
    if getattr(config, "is_encoder_decoder", False):
        return "an encoder-decoder model"
    if not getattr(model, "_supports_attention_backend", False):
        return "no pluggable attention"
    return None


def _attend_rows(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention for one layer of a packed forward pass: query/key/value are [1, heads, tokens, head_dim].

    The query heads that share a key-value head are stacked as extra query rows of that head
    ([kv_heads, group * tokens, head_dim]), so keys and values are read as stored: sdpa's own
    `enable_gqa` copied them out per query head, and took 1.8x the time at 32 rows (17.4 against
    9.8 ms a layer). Reading the keys and values is most of a decoding step's cost per row.
    """
    segments = getattr(_current, "segments", None)
    if not segments:  # the model called outside the engine (e.g. by `generate`): plain sdpa
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    layer = module.layer_idx
    heads, kv_heads, head_dim = query.shape[1], key.shape[1], query.shape[3]
    group = heads // kv_heads
    out = query.new_empty(query.shape[0], query.shape[2], heads, head_dim)
    for row, offset, n in segments:
        end = row.length + n
        row.kv[layer, 0, :, row.length:end] = key[0, :, offset:offset + n]
        row.kv[layer, 1, :, row.length:end] = value[0, :, offset:offset + n]
        keys, values = row.kv[layer, 0, :, :end], row.kv[layer, 1, :, :end]
        queries = query[0, :, offset:offset + n].reshape(kv_heads, group * n, head_dim)
        mask = None
        if n > 1:
            # A chunk of prompt sees everything before it and itself causally: the mask's diagonal is
            # shifted by what the row already holds (sdpa's is_causal aligns to the top left instead).
            mask = torch.ones(n, end, dtype=torch.bool, device=query.device).tril(diagonal=row.length).repeat(group, 1)
        attended = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask, scale=scaling)
        out[0, offset:offset + n] = attended.view(heads, n, head_dim).transpose(0, 1)
    return out, None


def _register_attention() -> None:
    AttentionInterface.register(ATTENTION, _attend_rows)


class DecodeEngine:
    def __init__(self, model, stop_ids: set[int], max_rows: int = 16, prefill_chunk: int = 128,
                 prefix_cache_bytes: int = 512 << 20, repetition_penalty: float = 1.0):
        _register_attention()
        model.set_attn_implementation(ATTENTION)
        config = model.config
        self.model = model
        self.stop_ids = stop_ids
        self.max_rows, self.prefill_chunk = max_rows, prefill_chunk
        self.repetition_penalty = repetition_penalty
        self.prefix_cache = PrefixCache(prefix_cache_bytes)
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self._kv_shape = (config.num_hidden_layers, 2, config.num_key_value_heads, head_dim)
        self._dtype = next(model.parameters()).dtype
        self._device = next(model.parameters()).device
        self.on_tokens: Callable[[int], None] | None = None  # new tokens after each step (progress)
        self.rows: list[_Row] = []
        self._waiting: list[Job] = []
        self._wake = threading.Condition()
        self._closed = False
        self._max_threads = torch.get_num_threads()  # what the process allows: never more than that
        self._threads_checked = 0.0
        self._thread = threading.Thread(target=self._run, name="distill-decode", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._wake:
            self._waiting.append(job)
            self._wake.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Fail what is left and stop the thread (within one step)."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout)

    # -- the engine's thread --------------------------------------------------------------------

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._wake:
                while not self._closed and not self._waiting and not self.rows:
                    self._wake.wait()
                if self._closed:
                    break
                admitted = self._waiting[: self.max_rows - len(self.rows)]
                del self._waiting[: len(admitted)]
            self.rows = [row for row in self.rows if not self._dropped(row.job)]
            for job in admitted:
                if self._dropped(job):
                    continue
                try:
                    self.rows.append(self._admit(job))
                except Exception as exc:  # a request the engine cannot take (its buffer does not fit) fails
                    # alone: raised here, it would end this thread and every caller would wait forever
                    job.done(JobResult([], False, len(job.prompt), error=f"{type(exc).__name__}: {exc}"))
            if self.rows:
                self._choose_threads()
                try:
                    self._step()
                except Exception as exc:  # a failed step fails its rows, never the engine
                    for row in self.rows:
                        row.job.done(JobResult([], False, len(row.job.prompt), error=f"{type(exc).__name__}: {exc}"))
                    self.rows = []
        for job in [row.job for row in self.rows] + self._waiting:
            job.done(JobResult([], False, len(job.prompt), error="interrupted"))
        self.rows, self._waiting = [], []

    def _choose_threads(self, every_s: float = 20.0) -> None:
        """One torch thread while other work keeps the cores busy, all of them otherwise.

        On 2 cores shared with other jobs (load average 10-20) a step at 16 rows took 3.5-3.8 CPU
        seconds on 2 threads against 0.4-0.7 on one, and 4-9x the wall time: each thread waits for
        the other at every operation while it is descheduled. Alone on the machine two are faster.
        The load average counts our own threads, so they are taken off it.
        """
        now = time.monotonic()
        if self._max_threads <= 1 or now - self._threads_checked < every_s:
            return
        self._threads_checked = now
        others = os.getloadavg()[0] - torch.get_num_threads()
        wanted = 1 if others >= 0.5 else self._max_threads
        if wanted != torch.get_num_threads():
            torch.set_num_threads(wanted)

    @staticmethod
    def _dropped(job: Job) -> bool:
        if job.cancelled:
            job.done(JobResult([], False, len(job.prompt), error="cancelled"))
        return job.cancelled

    def _admit(self, job: Job) -> _Row:
        kv = torch.empty(*self._kv_shape[:3], len(job.prompt) + job.max_new_tokens, self._kv_shape[3],
                         dtype=self._dtype, device=self._device)
        generator = None
        if job.temperature > 0:  # a generator a row: its samples do not depend on the other rows
            generator = torch.Generator(device=self._device)
            generator.manual_seed(job.seed if job.seed is not None else int(time.monotonic_ns()))
        return _Row(job, kv, 0, list(job.prompt), 0, generator)

    def _reuse_prefix(self, row: _Row) -> None:
        """Copy the longest stored beginning of the row's prompt into its buffer, just before it is read.

        Looked up only now, not on admission: rows read their prompts one after another, so a row
        finds what the rows read before it stored (on medical.yaml, their system turns and seed turns).
        """
        row.started = True
        prompt = row.job.prompt
        blocks = self.prefix_cache.lookup(prompt)
        if not blocks:
            return
        stored = len(blocks) * self.prefix_cache.block
        row.kv[:, :, :, :stored] = torch.cat(blocks, dim=3)
        row.reused = min(stored, len(prompt) - 1)  # the prompt's last token is read again: it gives the logits
        row.length, row.todo = row.reused, prompt[row.reused:]

    def _step(self) -> None:
        """One forward pass: every decoding row's next token, and prompt chunks for rows still reading."""
        segments: list[tuple[_Row, int, int]] = []  # (row, where its tokens start in `ids`, how many)
        ids: list[int] = []
        positions: list[int] = []
        last: list[int] = []  # where each row that finishes its prompt (or decodes) has its last token
        budget = self.prefill_chunk
        for row in self.rows:
            if row.reading_prompt:
                if budget <= 0:
                    continue
                if not row.started:
                    self._reuse_prefix(row)
                n = min(len(row.todo), budget)
                budget -= n
            else:
                n = 1
            segments.append((row, len(ids), n))
            ids += row.todo[:n]
            positions += range(row.length, row.length + n)
            if n == len(row.todo):
                last.append(len(ids) - 1)
        _current.segments = segments
        try:
            logits = self.model(input_ids=torch.tensor([ids], device=self._device),
                                position_ids=torch.tensor([positions], device=self._device), use_cache=False,
                                logits_to_keep=torch.tensor(last, dtype=torch.long, device=self._device)).logits[0]
        finally:
            _current.segments = ()
        answering = []
        for row, _, n in segments:
            row.length += n
            row.todo = row.todo[n:]
            if row.todo:
                continue  # more prompt to read
            if row.reading_prompt and self.prefix_cache.max_bytes > 0:
                self.prefix_cache.insert(row.job.prompt, row.kv)
            answering.append(row)
        for row, token in zip(answering, self._choose(answering, logits.float())):
            if token in self.stop_ids:
                self._finish(row, finished=True)
                continue
            row.generated.append(token)
            row.seen.add(token)
            row.todo = [token]
            if len(row.generated) >= row.job.max_new_tokens:
                self._finish(row, finished=False)
        self.rows = [row for row in self.rows if row.todo]
        if self.on_tokens is not None and answering:
            self.on_tokens(len(answering))

    def _finish(self, row: _Row, finished: bool) -> None:
        row.todo = []
        row.job.done(JobResult(row.generated, finished, len(row.job.prompt), row.reused))

    def _choose(self, rows: list[_Row], logits: torch.Tensor) -> list[int]:
        """Each row's next token: repetition penalty over its generated tokens only, then greedy or
        temperature and top-p (as transformers' TopPLogitsWarper: keep a token while the tokens more
        likely than it hold less than top_p)."""
        penalty = self.repetition_penalty
        if penalty != 1.0:
            for i, row in enumerate(rows):
                if row.seen:
                    seen = torch.tensor(list(row.seen), device=logits.device)
                    scores = logits[i, seen]
                    logits[i, seen] = torch.where(scores < 0, scores * penalty, scores / penalty)
        tokens = logits.argmax(-1).tolist()
        sampled = [i for i, row in enumerate(rows) if row.job.temperature > 0]
        if not sampled:
            return tokens
        temperature = torch.tensor([rows[i].job.temperature for i in sampled], device=logits.device)
        probs = (logits[sampled] / temperature[:, None]).softmax(-1)
        # The nucleus almost always lies among the most likely few hundred tokens: a top-k instead of
        # sorting all 49k (a sort a row was 9 ms of a 440 ms step at 16 rows); sorted in full otherwise.
        top, order = probs.topk(min(NUCLEUS_K, probs.shape[-1]), dim=-1)
        ahead = top.cumsum(-1) - top
        for j, i in enumerate(sampled):
            row = rows[i]
            p, before = top[j], ahead[j]
            ids: torch.Tensor | None = order[j]  # token ids of `p`'s entries; None: all, in order
            if row.job.top_p >= 1.0:
                p, ids = probs[j], None
            elif before[-1] + p[-1] < row.job.top_p:  # the nucleus reaches past the top-k
                p, ids = probs[j].sort(descending=True)
                before = p.cumsum(-1) - p
            if ids is not None:
                keep = before < row.job.top_p
                p, ids = p[keep], ids[keep]
            pick = int(torch.multinomial(p, 1, generator=row.generator))
            tokens[i] = int(ids[pick]) if ids is not None else pick
        return tokens
